"""Shared fixtures: a toy task built from tiny random models saved to and loaded from disk.

Everything is created in a temp dir and loaded by path through the same code a user
runs (``load_tokenizer``, ``PreferenceModel.from_pretrained``), so loading is tested
without any hub access.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from rlhf_gym.env.prompts import GeneratedPromptSource, Prompt
from rlhf_gym.env.vector_env import TokenVectorEnv
from rlhf_gym.lm.loading import load_tokenizer
from rlhf_gym.pipeline.tiny_models import TinyGPT2Size, tiny_causal_lm, tiny_sequence_classifier
from rlhf_gym.pipeline.tokenizer_training import train_bpe_tokenizer
from rlhf_gym.rewards.preference_model import PreferenceModel

TINY = TinyGPT2Size(n_layer=1, n_embd=32, n_head=2, n_positions=256)
ANIMALS = ["cat", "dog", "owl", "fox", "bee", "yak"]


def toy_prompt(post_id: int) -> tuple[str, str, dict[str, Any]]:
    """A toy 'post' whose reference summary names its animal and count."""
    rng = np.random.default_rng(post_id)
    animal = ANIMALS[int(rng.integers(len(ANIMALS)))]
    count = int(rng.integers(2, 40))
    filler = " ".join(rng.choice(["so", "then", "really", "the", "yard", "today"], size=int(rng.integers(3, 20))))
    text = f"POST: I saw {count} {animal}s in the yard {filler}.\nTL;DR:"
    return text, f" {count} {animal}s", {"animal": animal, "count": count}


def toy_gold_judge(prompts: Sequence[Prompt], responses: Sequence[str]) -> np.ndarray:
    """1 point for the animal, 1 for the count, halved; a toy stand-in for a task's judge."""
    scores = []
    for prompt, response in zip(prompts, responses, strict=True):
        words = response.split()
        scores.append(0.5 * (prompt.record["animal"] + "s" in words) + 0.5 * (str(prompt.record["count"]) in words))
    return np.asarray(scores, dtype=np.float64)


@pytest.fixture(scope="session", autouse=True)
def sb3_log_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """SB3 models without a logger write a dated folder under /tmp; keep those in pytest's."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SB3_LOGDIR", str(tmp_path_factory.mktemp("sb3_logs")))
        yield


@pytest.fixture(scope="session")
def toy_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with a trained toy tokenizer, a random tiny policy and preference model."""
    root = tmp_path_factory.mktemp("toy_assets")
    corpus = []
    for i in range(400):
        text, reference, _ = toy_prompt(i)
        corpus.append(text + reference)
    tokenizer = train_bpe_tokenizer(corpus, vocab_size=300)
    tokenizer.save_pretrained(root / "tokenizer")
    tokenizer = load_tokenizer(str(root / "tokenizer"))
    tiny_causal_lm(tokenizer, TINY, seed=0).save_pretrained(root / "policy")
    tokenizer.save_pretrained(root / "policy")
    preference = PreferenceModel(tiny_sequence_classifier(tokenizer, TINY, seed=1), tokenizer)
    preference.save_pretrained(root / "preference_model")
    return root


@pytest.fixture(scope="session")
def toy_tokenizer(toy_dir: Path):
    return load_tokenizer(str(toy_dir / "tokenizer"))


@pytest.fixture(scope="session")
def toy_preference_model(toy_dir: Path) -> PreferenceModel:
    return PreferenceModel.from_pretrained(toy_dir / "preference_model")


@pytest.fixture(scope="session")
def toy_prompt_source() -> GeneratedPromptSource:
    return GeneratedPromptSource(toy_prompt, (0, 1000))


@pytest.fixture
def make_toy_env(toy_tokenizer, toy_preference_model, toy_prompt_source) -> Callable[..., TokenVectorEnv]:
    """Factory of toy `TokenVectorEnv`s; keyword arguments override the defaults."""

    def make(num_envs: int = 4, **overrides: Any) -> TokenVectorEnv:
        kwargs: dict[str, Any] = dict(
            prompt_source=toy_prompt_source,
            tokenizer=toy_tokenizer,
            preference_model=toy_preference_model,
            gold_judge=toy_gold_judge,
            max_prompt_tokens=40,
            max_new_tokens=5,
        )
        kwargs.update(overrides)
        return TokenVectorEnv(num_envs, **kwargs)

    return make


@pytest.fixture(scope="session")
def random_actions() -> Callable[..., np.ndarray]:
    """``(rng, num_envs, vocab_size, eos) -> (N,) int64``: EOS over-represented so episodes end both ways."""

    def sample(rng: np.random.Generator, num_envs: int, vocab_size: int, eos: int, p_eos: float = 0.25) -> np.ndarray:
        actions = rng.integers(0, vocab_size, size=num_envs)
        return np.where(rng.random(num_envs) < p_eos, eos, actions).astype(np.int64)

    return sample


# One thread: at these model sizes it is as fast as two when idle, and ~70x faster when
# another process competes for the 2 cores (measured while building assets).
torch.set_num_threads(1)
