"""Registers the suite's environments with Gymnasium (``import rlhf_gym`` does this).

Entry points are strings, so registering imports neither torch nor transformers; they load
when an env is made. ``max_episode_steps`` is left unset on purpose: the env truncates
itself at ``max_new_tokens`` (a kwarg users may change), and a registered TimeLimit would
disagree with it whenever they do, cutting episodes before they are scored.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym


@dataclass(frozen=True)
class SuiteEnv:
    """One registered environment of the suite."""

    env_id: str
    module: str  # holds `make_env` and `make_vector_env`
    summary: str


SUITE: tuple[SuiteEnv, ...] = (
    SuiteEnv(
        "RLHF-Summarize-v0",
        "rlhf_gym.envs.summarize",
        "TL;DR summarisation of generated Reddit-style posts; learned preference reward, gold judge.",
    ),
)


def register_envs() -> None:
    """Register every env of `SUITE` (idempotent)."""
    for env in SUITE:
        if env.env_id in gym.registry:
            continue
        gym.register(
            id=env.env_id,
            entry_point=f"{env.module}:make_env",
            vector_entry_point=f"{env.module}:make_vector_env",
            max_episode_steps=None,
            nondeterministic=False,
        )
