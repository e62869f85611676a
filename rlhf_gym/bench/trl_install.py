"""TRL beside the project, never inside it: each version in its own folder under ``.bench/``.

TRL is what the training benchmarks (`rlhf_gym.bench.training`, `rlhf_gym.bench.learning`)
measure against, not something the package runs on. So it is installed with ``--no-deps``
into a target folder, ``.bench/trl-VERSION`` (with ``accelerate`` and ``psutil``, the two
of its requirements the project does not already bring), and only the TRL side's worker
process gets that folder on its ``PYTHONPATH``. The project's own torch, transformers and
datasets serve both sides, so the comparison runs on the same library versions.

Two versions, because TRL dropped its PPO trainer after 1.12: PPO is measured against
trl 1.12.0 (``trl.experimental.ppo.PPOTrainer``), RLOO and GRPO against the newest release
(`TRL_FOR`).

    python -m rlhf_gym.bench.trl_install            # installs every version the benchmarks use
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

TRL_FOR: dict[str, str] = {"ppo": "1.12.0", "rloo": "1.16.0", "grpo": "1.16.0"}
"""The TRL release each of our algorithms is compared with (1.12.0 is the last with PPO)."""

EXTRA_PACKAGES: tuple[str, ...] = ("accelerate", "psutil")
"""TRL's requirements that the project's own environment lacks (the rest it already has)."""

ROOT_VARIABLE = "RLHF_GYM_BENCH_DIR"
"""Overrides where the TRL folders live (default: ``.bench`` in the working directory)."""

_COMPLETE = ".complete"  # written last: a folder without it is a broken install, redone


class TRLUnavailableError(RuntimeError):
    """TRL is not installed beside the project and pip could not install it (one line, with the fix)."""


def default_root() -> Path:
    """``$RLHF_GYM_BENCH_DIR``, else ``./.bench``."""
    return Path(os.environ.get(ROOT_VARIABLE, ".bench"))


def trl_folder(version: str, root: Path | None = None) -> Path:
    """Where trl ``version`` lives (installed or not)."""
    return (root if root is not None else default_root()) / f"trl-{version}"


def is_installed(version: str, root: Path | None = None) -> bool:
    """Whether a complete install of trl ``version`` is in its folder."""
    folder = trl_folder(version, root)
    return (folder / _COMPLETE).is_file() and (folder / "trl" / "__init__.py").is_file()


def ensure_trl(
    version: str, root: Path | None = None, *, install: bool = True, pip: Sequence[str] = (sys.executable, "-m", "pip")
) -> Path:
    """The folder holding trl ``version``, installed there first if it is missing.

    Args:
        version: a TRL release, such as ``"1.12.0"``.
        root: the folder of TRL folders (default `default_root`).
        install: False: never run pip, only find an existing install.
        pip: the pip command (tests substitute one that fails).

    Returns:
        The folder to put on the TRL worker's ``PYTHONPATH``.

    Raises:
        TRLUnavailableError: not installed, and ``install`` is False or pip failed.
    """
    folder = trl_folder(version, root)
    if is_installed(version, root):
        return folder
    command = [*pip, "install", "--quiet", "--disable-pip-version-check", "--no-deps", "--target"]
    by_hand = f"pip install --no-deps --target {folder} trl=={version} {' '.join(EXTRA_PACKAGES)}"
    if not install:
        raise TRLUnavailableError(f"trl {version} is not installed in {folder}; install it with: {by_hand}")
    staging = folder.with_name(f"{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.parent.mkdir(parents=True, exist_ok=True)
    try:
        result = subprocess.run([*command, str(staging), f"trl=={version}", *EXTRA_PACKAGES],
                                capture_output=True, text=True, check=False)
    except OSError as error:  # the pip command itself cannot start
        shutil.rmtree(staging, ignore_errors=True)
        raise TRLUnavailableError(f"cannot run pip ({error}) to install trl {version}; install it with: {by_hand}") from None
    if result.returncode != 0 or not (staging / "trl" / "__init__.py").is_file():
        shutil.rmtree(staging, ignore_errors=True)
        lines = [line.strip() for line in (result.stderr or result.stdout).splitlines() if line.strip()]
        reason = lines[-1] if lines else f"exit status {result.returncode}"
        raise TRLUnavailableError(f"pip could not install trl {version} into {folder} ({reason}); install it with: {by_hand}")
    (staging / _COMPLETE).write_text(f"trl=={version} {' '.join(EXTRA_PACKAGES)}\n")
    shutil.rmtree(folder, ignore_errors=True)  # a broken earlier attempt
    staging.rename(folder)
    return folder


if __name__ == "__main__":
    for trl_version in sorted(set(TRL_FOR.values())):
        print(f"trl {trl_version}: {ensure_trl(trl_version)}")
