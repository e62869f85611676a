"""The suite's worlds, one package each, and `SUITE`, the catalogue that registers them.

Each world's module defines ``TASK`` (an `rlhf_gym.env.task.Task`). Every env is made by
one generic assembly: `rlhf_gym.registration.make_vector_env` looks the task up and calls
`rlhf_gym.env.task.make_vector_env`, told the task by the registered spec. This file
imports nothing, so ``import rlhf_gym`` stays light; a world loads when one of its envs is
made or its task is looked up (`rlhf_gym.get_task`).
"""

from __future__ import annotations

from dataclasses import dataclass


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


SUITE: tuple[SuiteEnv, ...] = (
    SuiteEnv(
        "RLHF-Summarize-v0",
        "summarize",
        "rlhf_gym.envs.summarize",
        "TL;DR summarisation of generated Reddit-style posts; learned preference reward, gold judge.",
    ),
)
