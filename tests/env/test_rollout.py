"""KV-cached rollouts through the env agree with a full-context forward pass."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from rlhf_gym.env.rollout import collect_episodes, paired_gold
from rlhf_gym.lm.policy import CausalLMPolicy


def test_kv_cache_rollout_logprobs_match_full_forward(make_toy_env, toy_dir):
    policy = CausalLMPolicy.from_pretrained(toy_dir / "policy", temperature=0.7)
    env = make_toy_env(6, autoreset_mode="disabled", max_new_tokens=8)
    batch = collect_episodes(env, policy, seed=3, generator=torch.Generator().manual_seed(0))
    assert batch.response_lengths.min() >= 1 and batch.response_mask.any()
    with torch.no_grad():
        full, _ = policy.token_logprobs(batch.input_ids, batch.attention_mask, env.max_prompt_tokens)
    mask = batch.response_mask
    assert torch.allclose(batch.logprobs[mask], full[mask], atol=1e-5)
    assert (batch.logprobs[~mask] == 0).all()


def test_rollout_is_reproducible_and_scores_match_env(make_toy_env, toy_dir, toy_preference_model):
    policy = CausalLMPolicy.from_pretrained(toy_dir / "policy", temperature=1.0)
    env = make_toy_env(4, autoreset_mode="disabled", max_new_tokens=6)
    a = collect_episodes(env, policy, seed=1, generator=torch.Generator().manual_seed(5))
    b = collect_episodes(env, policy, seed=1, generator=torch.Generator().manual_seed(5))
    c = collect_episodes(env, policy, seed=1, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a.input_ids, b.input_ids) and torch.equal(a.scores, b.scores)
    assert not torch.equal(a.input_ids, c.input_ids)
    prompts = [p.text for p in env.prompts]
    expected = toy_preference_model.score(prompts, a.response_texts)
    assert torch.allclose(a.scores, expected, atol=1e-5)
    assert torch.allclose(a.preference, expected, atol=1e-5)  # no missing-EOS penalty here
    assert torch.isfinite(a.gold).all()


def test_paired_gold_pairs_posts_and_sampling_streams(make_toy_env, toy_dir):
    def length_gold(prompts, responses):  # a judge that tells any two different responses apart
        return np.array([len(r) / 40 for r in responses], dtype=np.float64)

    env = make_toy_env(4, autoreset_mode="disabled", max_new_tokens=6, gold_judge=length_gold)
    policy = CausalLMPolicy.from_pretrained(toy_dir / "policy", temperature=1.0)
    same = paired_gold(env, policy, copy.deepcopy(policy), posts=10, seed=3)
    # The same policy on the same posts and stream: every difference is exactly zero.
    assert same.posts == 10 and same.change == 0.0 and same.sem == 0.0
    greedier = CausalLMPolicy.from_pretrained(toy_dir / "policy", temperature=0.3)
    other = paired_gold(env, greedier, policy, posts=10, seed=3)
    assert other.baseline_gold == same.baseline_gold  # the baseline side is the same episodes
    assert other.change == pytest.approx(other.policy_gold - other.baseline_gold) and other.sem > 0
    with pytest.raises(ValueError, match="posts must be >= 2"):
        paired_gold(env, policy, policy, posts=1, seed=0)
