"""rlhf-gym: token-level Gymnasium environments for RLHF on language.

``import rlhf_gym`` registers the suite (e.g. ``gym.make("RLHF-Summarize-v0")``); the heavy
modules (torch, transformers) load only when an env or class is first used.

Packages, by role (``docs/architecture.md`` has the data flow and the import rules):

- ``rlhf_gym.env``: the runtime env (`TokenVectorEnv`, `TokenEnv`), tasks, rollouts;
- ``rlhf_gym.rewards``: the learned rewards (`PreferenceModel`, `PreferenceEnsemble`);
- ``rlhf_gym.lm``: language-model helpers (`CausalLMPolicy`, loading, sampling);
- ``rlhf_gym.pipeline``: training a world's shipped assets;
- ``rlhf_gym.envs``: the worlds; ``rlhf_gym.agents``: the baselines.

For your own agent: ``rlhf_gym.get_task(env_id)`` gives a task's shipped SFT policy,
tokenizer, preference model, gold judge and protocol temperature.
"""

from __future__ import annotations

import importlib
from typing import Any

from rlhf_gym.registration import SUITE, get_task, register_envs

__version__ = "0.1.0"

_LAZY = {
    # the env
    "TokenVectorEnv": "rlhf_gym.env.vector_env",
    "TokenEnv": "rlhf_gym.env.single_env",
    "Task": "rlhf_gym.worlds.task",
    "World": "rlhf_gym.worlds.world",
    "Prompt": "rlhf_gym.env.prompts",
    "GeneratedPromptSource": "rlhf_gym.env.prompts",
    "DatasetPromptSource": "rlhf_gym.env.prompts",
    "EpisodeBatch": "rlhf_gym.env.rollout",
    "collect_episodes": "rlhf_gym.env.rollout",
    "paired_gold": "rlhf_gym.env.rollout",
    "KLRewardWrapper": "rlhf_gym.env.kl_penalty",
    # the rewards
    "PreferenceModel": "rlhf_gym.rewards.preference_model",
    "PreferenceEnsemble": "rlhf_gym.rewards.preference_ensemble",
    "load_reward_model": "rlhf_gym.rewards.loading",
    "RewardModel": "rlhf_gym.rewards.reward_model",
    "register_reward_scorer": "rlhf_gym.rewards.reward_model",
    # language-model helpers for your own agent
    "CausalLMPolicy": "rlhf_gym.lm.policy",
    "per_token_kl": "rlhf_gym.lm.policy",
    "position_ids_from_attention_mask": "rlhf_gym.lm.layout",
    "MissingArtifactError": "rlhf_gym.lm.loading",
    # the leaderboard's evaluation protocol
    "evaluate": "rlhf_gym.leaderboard.evaluate",
}

__all__ = ["SUITE", "get_task", "register_envs", "__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'rlhf_gym' has no attribute {name!r}")


register_envs()
