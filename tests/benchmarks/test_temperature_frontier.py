"""benchmarks/temperature_frontier.py: the exact KL of a colder or greedy policy, and its table."""

from __future__ import annotations

import pytest
import torch

from rlhf_gym.env.rollout import collect_episodes
from rlhf_gym.lm.policy import CausalLMPolicy


@pytest.fixture(scope="module")
def frontier(load_script):
    return load_script("temperature_frontier")


def _kl(frontier, make_toy_env, toy_dir, temperature: float, greedy: bool = False) -> torch.Tensor:
    env = make_toy_env(6, autoreset_mode="disabled", max_new_tokens=8)
    reference = CausalLMPolicy.from_pretrained(toy_dir / "policy", temperature=0.7)
    policy = CausalLMPolicy.from_pretrained(toy_dir / "policy", temperature=temperature)
    batch = collect_episodes(env, policy, seed=2, generator=torch.Generator().manual_seed(0), greedy=greedy)
    return frontier.sequence_kl(batch, policy, reference, env.max_prompt_tokens, greedy)


def test_kl_is_zero_at_the_reference_temperature_and_grows_colder(frontier, make_toy_env, toy_dir):
    same = _kl(frontier, make_toy_env, toy_dir, 0.7)
    assert torch.allclose(same, torch.zeros_like(same), atol=1e-5)
    assert (_kl(frontier, make_toy_env, toy_dir, 0.4) > 1e-3).all()


def test_greedy_kl_is_the_cold_limit_of_sampling(frontier, make_toy_env, toy_dir):
    """Sampling at T -> 0 is greedy decoding, so the two KL formulas must agree there."""
    greedy = _kl(frontier, make_toy_env, toy_dir, 1.0, greedy=True)
    cold = _kl(frontier, make_toy_env, toy_dir, 0.005)
    assert (greedy > 0).all()
    assert torch.allclose(cold, greedy, rtol=0.02)


def test_frontier_on_the_shipped_env(frontier):
    config = frontier.Config(prompts=8, batch_prompts=8, temperatures=(0.7, 0.3, 0.0), threads=1)
    rows = frontier.frontier(config)
    assert [r["temperature"] for r in rows] == [0.7, 0.3, 0.0]
    assert abs(rows[0]["kl"]) < 1e-4 and rows[1]["kl"] > 0 and rows[2]["kl"] > 0
    assert all(0 <= r["gold"] <= 1 and r["response_length"] > 0 for r in rows)


def test_prompts_must_fill_whole_batches(frontier):
    with pytest.raises(ValueError, match=r"prompts \(10\) must be a multiple of batch_prompts \(4\)"):
        frontier.frontier(frontier.Config(prompts=10, batch_prompts=4))
