"""Fixtures for the agent tests: a toy env with a trivially learnable reward."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from rlhf_gym.env.vector_env import TokenVectorEnv
from rlhf_gym.lm.loading import load_tokenizer
from rlhf_gym.pipeline.tiny_models import TinyGPT2Size, tiny_sequence_classifier
from rlhf_gym.pipeline.tokenizer_training import train_bpe_tokenizer
from rlhf_gym.rewards.preference_model import PreferenceModel


class LowTokenPreference(PreferenceModel):
    """A trivially learnable preference: the share of response tokens with id < V/4."""

    def score(self, prompts, responses):
        rows = self.tokenizer(list(responses), add_special_tokens=False)["input_ids"]
        limit = len(self.tokenizer) // 4
        return torch.tensor([sum(t < limit for t in r) / max(len(r), 1) for r in rows], dtype=torch.float32)


@pytest.fixture
def register_toy_env(toy_tokenizer, toy_preference_model, toy_prompt_source) -> Callable[..., str]:
    """``register(env_id, low_tokens=False, gold_judge=None) -> env_id``: a toy task (P = 32,
    T = 6) behind ``gym.make_vec``, rewarded by the toy preference model or by `LowTokenPreference`
    (or, as the real tasks do, by the one a ``reward_model`` path names)."""

    def animal_judge(prompts, responses):
        return np.array([float(p.record["animal"] in r) for p, r in zip(prompts, responses)])

    def register(env_id: str, low_tokens: bool = False, gold_judge=None) -> str:
        preference = LowTokenPreference(toy_preference_model.model, toy_tokenizer) if low_tokens else toy_preference_model

        def make_vec(num_envs=1, split="train", **kwargs):
            kwargs.pop("max_episode_steps", None)
            reward_model = kwargs.pop("reward_model", None)
            chosen = PreferenceModel.from_pretrained(reward_model) if reward_model is not None else preference
            return TokenVectorEnv(
                num_envs, prompt_source=toy_prompt_source, tokenizer=toy_tokenizer, preference_model=chosen,
                gold_judge=gold_judge or animal_judge, max_prompt_tokens=32, max_new_tokens=kwargs.pop("max_new_tokens", 6),
                **kwargs,
            )

        if env_id in gym.registry:
            del gym.registry[env_id]
        gym.register(env_id, entry_point=None, vector_entry_point=make_vec)
        return env_id

    return register


@pytest.fixture(scope="session")
def other_vocabulary_preference_dir(tmp_path_factory: pytest.TempPathFactory, toy_tokenizer) -> Path:
    """A tiny preference model with its own, smaller BPE vocabulary than the toy policy's."""
    root = tmp_path_factory.mktemp("other_vocabulary_rm")
    corpus = [f"POST: the {word} went {i} times to the yard\nTL;DR: {word}" for i in range(60) for word in ("cat", "owl", "yak")]
    tokenizer = train_bpe_tokenizer(corpus, vocab_size=270)
    tokenizer.save_pretrained(root / "tokenizer")
    tokenizer = load_tokenizer(str(root / "tokenizer"))
    assert len(tokenizer) < len(toy_tokenizer)  # the toy policy's ids would overrun its embedding
    model = tiny_sequence_classifier(tokenizer, TinyGPT2Size(n_layer=1, n_embd=32, n_head=2, n_positions=256), seed=2)
    PreferenceModel(model, tokenizer).save_pretrained(root / "preference_model")
    return root / "preference_model"
