"""rlhf-gym: token-level Gymnasium environments for RLHF on language.

``import rlhf_gym`` registers the suite (e.g. ``gym.make("RLHF-Summarize-v0")``); the heavy
modules (torch, transformers) load only when an env or class is first used.
"""

from __future__ import annotations

import importlib
from typing import Any

from rlhf_gym.registration import SUITE, register_envs

__version__ = "0.1.0"

_LAZY = {
    "TokenVectorEnv": "rlhf_gym.env.vector_env",
    "TokenEnv": "rlhf_gym.env.single_env",
    "PreferenceModel": "rlhf_gym.rewards.preference_model",
    "PreferenceEnsemble": "rlhf_gym.rewards.preference_ensemble",
    "Prompt": "rlhf_gym.env.prompts",
    "GeneratedPromptSource": "rlhf_gym.env.prompts",
    "DatasetPromptSource": "rlhf_gym.env.prompts",
    "MissingArtifactError": "rlhf_gym.lm.loading",
}

__all__ = ["SUITE", "register_envs", "__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'rlhf_gym' has no attribute {name!r}")


register_envs()
