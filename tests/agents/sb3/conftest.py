"""Fixtures for the SB3 adapter tests: a toy env id registered with Gymnasium, a frozen reference."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from rlhf_gym.env.prompts import Prompt
from rlhf_gym.env.vector_env import TokenVectorEnv
from rlhf_gym.lm.policy import CausalLMPolicy

TOY_ENV_ID = "Toy-SB3-v0"
TOY_PROMPT_TOKENS = 32
TOY_NEW_TOKENS = 5


def animal_judge(prompts: Sequence[Prompt], responses: Sequence[str]) -> np.ndarray:
    """Toy gold score: 1 if the response names the post's animal."""
    return np.array([float(p.record["animal"] in r) for p, r in zip(prompts, responses, strict=True)])


@pytest.fixture(scope="session")
def toy_env_id(toy_tokenizer, toy_preference_model, toy_prompt_source) -> str:
    """``Toy-SB3-v0``: the toy task behind ``gym.make_vec`` (P = 32, T = 5), as ``train`` makes envs."""

    def make_vec(num_envs: int = 1, split: str = "train", **kwargs: Any) -> TokenVectorEnv:
        kwargs.pop("max_episode_steps", None)
        return TokenVectorEnv(
            num_envs,
            prompt_source=toy_prompt_source,
            tokenizer=toy_tokenizer,
            preference_model=toy_preference_model,
            gold_judge=animal_judge,
            max_prompt_tokens=TOY_PROMPT_TOKENS,
            max_new_tokens=kwargs.pop("max_new_tokens", TOY_NEW_TOKENS),
            **kwargs,
        )

    if TOY_ENV_ID in gym.registry:
        del gym.registry[TOY_ENV_ID]
    gym.register(TOY_ENV_ID, entry_point=None, vector_entry_point=make_vec)
    return TOY_ENV_ID


@pytest.fixture
def policy_path(toy_dir: Path) -> str:
    """The toy SFT policy's folder (what ``policy_kwargs["model_name_or_path"]`` takes)."""
    return str(toy_dir / "policy")


@pytest.fixture
def reference(toy_dir: Path) -> Callable[..., CausalLMPolicy]:
    """Factory of frozen reference policies at a given temperature."""

    def make(temperature: float = 0.7) -> CausalLMPolicy:
        return CausalLMPolicy.from_pretrained(toy_dir / "policy", temperature=temperature).eval().requires_grad_(False)

    return make
