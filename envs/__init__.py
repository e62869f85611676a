"""The suite's worlds, one package each, and `SUITE`, the catalogue that registers them.

A world is a folder here: its package declares ``TASK`` (usually
``Task.from_world(...)``) and ``SUITE_ENV``, and `SUITE` finds it by discovery
(`rlhf_gym.worlds.suite.discover`). Every env is made by one generic assembly,
`rlhf_gym.worlds.assembly.make_vector_env`, told the task by the registered spec. Worlds
import only the kit's light public surface (`rlhf_gym.worlds`), so ``import rlhf_gym``
stays light: the models load when an env is made. ``docs/adding_a_world.md`` says how to
add one.
"""

from __future__ import annotations

from rlhf_gym.worlds.suite import SuiteEnv, discover

SUITE: tuple[SuiteEnv, ...] = discover(__name__, __path__)
"""Every world's env, sorted by env id."""

__all__ = ["SUITE", "SuiteEnv"]
