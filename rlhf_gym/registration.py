"""Registers the suite's environments with Gymnasium, and finds a task by its env id.

``import rlhf_gym`` registers every env of `rlhf_gym.envs.SUITE`. Entry points are
strings, so registering imports neither torch nor transformers; they load when an env is
made. ``max_episode_steps`` is left unset on purpose: the env truncates itself at
``max_new_tokens`` (a kwarg users may change), and a registered TimeLimit would disagree
with it whenever they do, cutting episodes before they are scored.
"""

from __future__ import annotations

import importlib
from typing import Any

import gymnasium as gym

from rlhf_gym.envs import SUITE, SuiteEnv


def register_envs() -> None:
    """Register every env of `SUITE` (idempotent)."""
    for env in SUITE:
        if env.env_id in gym.registry:
            continue
        gym.register(
            id=env.env_id,
            entry_point="rlhf_gym.registration:make_env",
            vector_entry_point="rlhf_gym.registration:make_vector_env",
            kwargs={"task": env.env_id},  # the one generic assembly, told which task
            max_episode_steps=None,
            nondeterministic=False,
        )


def suite_env(name: str) -> SuiteEnv:
    """The suite entry of an env id (``"RLHF-Summarize-v0"``) or task name (``"summarize"``).

    Raises:
        KeyError: no env of the suite has that id or task name (the message lists them).
    """
    for env in SUITE:
        if name in (env.env_id, env.task_name):
            return env
    known = ", ".join(f"{env.env_id} ({env.task_name})" for env in SUITE)
    raise KeyError(f"unknown env or task {name!r}; the suite has: {known}")


def get_task(name: str):  # -> rlhf_gym.worlds.task.Task (not imported here: registering stays light)
    """A task's declaration by env id or task name: its shipped SFT policy, tokenizer,
    preference model, gold judge, protocol temperature and build recipe.

    Example:
        >>> import rlhf_gym
        >>> task = rlhf_gym.get_task("RLHF-Summarize-v0")
        >>> task.name, task.temperature, task.policy_path().name
        ('summarize', 0.7, 'sft_policy')

    Raises:
        KeyError: an unknown env id or task name.
    """
    return importlib.import_module(suite_env(name).module).TASK


def make_vector_env(num_envs: int = 1, *, task: str, **kwargs: Any):  # -> TokenVectorEnv
    """The vector entry point of every env of the suite: ``gym.make_vec(env_id, ...)`` passes
    the spec's ``task=env_id``; `rlhf_gym.worlds.assembly.make_vector_env` assembles it."""
    from rlhf_gym.worlds.assembly import make_vector_env as assemble  # torch loads when an env is made

    return assemble(num_envs, task=get_task(task), **kwargs)


def make_env(*, task: str, **kwargs: Any):  # -> TokenEnv
    """The entry point of every env of the suite: ``gym.make(env_id, ...)``."""
    from rlhf_gym.worlds.assembly import make_env as assemble

    return assemble(task=get_task(task), **kwargs)


__all__ = ["SUITE", "SuiteEnv", "get_task", "make_env", "make_vector_env", "register_envs", "suite_env"]
