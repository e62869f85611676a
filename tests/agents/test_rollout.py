"""KV-cached rollouts through the env agree with a full-context forward pass."""

from __future__ import annotations

import torch

from rlhf_gym.agents.lm_policy import CausalLMPolicy
from rlhf_gym.agents.rollout import collect_episodes


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
