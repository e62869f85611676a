"""A world's entry in the suite (`SuiteEnv`), and the discovery of every world's entry.

A world is a folder under ``envs/`` (installed as ``rlhf_gym.envs.<folder>``) whose
package declares ``SUITE_ENV``. `discover` finds them all by walking the catalogue's
folders, so adding a world edits no list and no ``pyproject.toml``. Importing a world's
package must stay light (numpy at most): ``import rlhf_gym`` registers the suite.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rlhf_gym.worlds.task import Task


@dataclass(frozen=True)
class SuiteEnv:
    """One registered environment of the suite.

    Attributes:
        env_id: the Gymnasium id.
        task_name: the short name of its task (``rlhf-gym build-assets NAME``).
        module: the world's module, which holds ``TASK``.
        summary: one line for ``rlhf-gym envs``.
    """

    env_id: str
    task_name: str
    module: str
    summary: str

    @classmethod
    def of(cls, task: Task, module: str, summary: str | None = None) -> SuiteEnv:
        """The entry of ``task``, declared in ``module`` (pass ``__name__``); the summary
        defaults to its world's."""
        if summary is None:
            summary = task.world.summary if task.world is not None else ""
        return cls(task.env_id, task.name, module, summary)


def discover(package: str, paths: Iterable[str]) -> tuple[SuiteEnv, ...]:
    """Every ``SUITE_ENV`` declared by a subpackage of ``package`` (found on ``paths``),
    sorted by env id.

    Raises:
        RuntimeError: two worlds declare the same env id or task name, or a world's
            ``SUITE_ENV`` names another module.
    """
    found: list[SuiteEnv] = []
    for info in pkgutil.iter_modules(list(paths)):
        if not info.ispkg or info.name.startswith(("_", ".")):
            continue
        module = importlib.import_module(f"{package}.{info.name}")
        entry = getattr(module, "SUITE_ENV", None)
        if entry is None:
            continue  # a helper package, not a world
        if entry.module != module.__name__:
            raise RuntimeError(f"{module.__name__}.SUITE_ENV names module {entry.module!r}; pass __name__")
        found.append(entry)
    for key in ("env_id", "task_name"):
        values = [getattr(e, key) for e in found]
        duplicates = sorted({v for v in values if values.count(v) > 1})
        if duplicates:
            raise RuntimeError(f"two worlds declare the same {key}: {duplicates}")
    return tuple(sorted(found, key=lambda e: e.env_id))
