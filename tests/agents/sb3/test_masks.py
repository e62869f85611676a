"""NLPO top-p masks: the nucleus rule, the reference's actions inside the masks, the refresh callback."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from sb3_contrib import MaskablePPO

from rlhf_gym.agents.sb3.masks import MaskModelRefresh, TopPMaskProvider, top_p_mask
from rlhf_gym.agents.sb3.policy import MaskableCausalLMActorCriticPolicy
from rlhf_gym.agents.sb3.vec_env import SB3VecEnv
from rlhf_gym.lm.observation_reader import next_token_outputs

TOP_P = 0.9


def test_top_p_mask_is_the_smallest_nucleus():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(64, 50, generator=generator) * 2
    for top_p in (0.3, 0.9, 1.0):
        mask = top_p_mask(logits, top_p)
        probs = torch.softmax(logits, -1)
        kept = (probs * mask).sum(-1)
        assert bool((kept >= top_p - 1e-6).all())
        assert bool(mask[torch.arange(64), probs.argmax(-1)].all())
        # minimal: dropping the least likely kept token falls below top_p
        smallest_kept = torch.where(mask, probs, torch.full_like(probs, 2.0)).min(-1).values
        assert bool((kept - smallest_kept < top_p).all())
        # a nucleus: every kept token is at least as likely as every dropped one
        largest_dropped = torch.where(mask, torch.full_like(probs, -1.0), probs).max(-1).values
        assert bool((smallest_kept >= largest_dropped).all())
    for bad in (0.0, -0.5, 1.5):
        with pytest.raises(ValueError, match="top_p"):
            top_p_mask(logits, bad)


def test_masks_contain_the_references_greedy_and_most_sampled_actions(make_toy_env, reference):
    """With the mask model = the reference (NLPO's start), the reference's greedy token is always
    allowed and its samples fall inside the masks with probability >= top_p."""
    ref = reference(0.7)
    env = make_toy_env(8, max_new_tokens=6)
    provider = TopPMaskProvider(copy.deepcopy(ref.model), prompt_width=env.max_prompt_tokens,
                                vocab_size=env.vocab_size, top_p=TOP_P, temperature=ref.temperature)
    bridge = SB3VecEnv(env, mask_provider=provider)
    bridge.seed(0)
    bridge.reset()
    generator = torch.Generator().manual_seed(0)
    inside = total = 0
    for _ in range(20):
        masks = torch.as_tensor(bridge.action_masks())  # (N, V)
        with torch.no_grad():
            logits, _ = next_token_outputs(ref.model, bridge._obs["input_ids"], bridge._obs["attention_mask"],
                                           env.max_prompt_tokens, vocab_size=env.vocab_size)
        probs = torch.softmax(logits / ref.temperature, -1)
        assert bool(masks[torch.arange(8), probs.argmax(-1)].all())
        assert bool(((probs * masks).sum(-1) >= TOP_P - 1e-5).all())
        samples = torch.multinomial(probs, 200, replacement=True, generator=generator)  # (N, 200)
        inside += int(masks.gather(1, samples).sum())
        total += samples.numel()
        bridge.step(samples[:, 0].numpy())
    assert inside / total >= TOP_P - 0.02  # 32,000 samples: 2 points is > 10 standard errors


def test_refresh_copies_the_policy_into_the_mask_model(make_toy_env, reference, policy_path):
    ref = reference(0.7)
    env = make_toy_env(2)
    provider = TopPMaskProvider(copy.deepcopy(ref.model), prompt_width=env.max_prompt_tokens,
                                vocab_size=env.vocab_size, top_p=TOP_P)
    model = MaskablePPO(
        MaskableCausalLMActorCriticPolicy, SB3VecEnv(env, mask_provider=provider), n_steps=8, batch_size=16, n_epochs=1,
        learning_rate=1e-2, policy_kwargs=dict(model_name_or_path=policy_path, prompt_width=env.max_prompt_tokens), seed=0,
    )
    refresh = MaskModelRefresh(provider, every=2)
    model.learn(16 * 3, callback=refresh)  # rollouts start after 0, 1, 2 iterations: one refresh
    assert provider.refreshes == 1
    policy_weights = model.policy.lm.state_dict()
    mask_weights = provider.model.state_dict()
    # refreshed after iteration 2, the policy then trained one more iteration
    assert any(not torch.equal(policy_weights[k], mask_weights[k]) for k in policy_weights)
    assert not any(p.requires_grad for p in provider.model.parameters())
    with pytest.raises(ValueError, match="refresh"):
        MaskModelRefresh(provider, every=0)


def test_maskable_ppo_acts_inside_the_masks(make_toy_env, reference, policy_path):
    """Every action MaskablePPO takes during rollouts is allowed by the provider's mask."""
    ref = reference(0.7)
    env = make_toy_env(2)
    provider = TopPMaskProvider(copy.deepcopy(ref.model), prompt_width=env.max_prompt_tokens,
                                vocab_size=env.vocab_size, top_p=0.5)
    model = MaskablePPO(
        MaskableCausalLMActorCriticPolicy, SB3VecEnv(env, mask_provider=provider), n_steps=16, batch_size=32,
        n_epochs=1, policy_kwargs=dict(model_name_or_path=policy_path, prompt_width=env.max_prompt_tokens), seed=0,
    )
    model.learn(32)
    buffer = model.rollout_buffer
    masks = buffer.action_masks.reshape(-1, env.vocab_size).astype(bool)
    actions = buffer.actions.reshape(-1).astype(np.int64)
    assert masks[np.arange(actions.size), actions].all()
    assert masks.sum(-1).mean() < env.vocab_size / 2  # the masks do restrict


def test_cached_masks_equal_uncached_ones_along_episodes_and_after_a_refresh(make_toy_env, reference):
    ref = reference(0.7)
    env = make_toy_env(4)
    cached, uncached = (
        TopPMaskProvider(copy.deepcopy(ref.model), prompt_width=env.max_prompt_tokens, vocab_size=env.vocab_size,
                         top_p=TOP_P, cache_prompts=flag)
        for flag in (True, False)
    )
    other = copy.deepcopy(ref.model)
    with torch.no_grad():
        for param in other.parameters():
            param.add_(0.05 * torch.randn_like(param))
    obs, _ = env.reset(seed=4)
    generator = torch.Generator().manual_seed(4)
    for step in range(6):
        if step == 3:  # NLPO's refresh mid-rollout: the cache must not serve the old model's prompts
            cached.refresh_from(other)
            uncached.refresh_from(other)
        assert torch.equal(cached(obs), uncached(obs))
        obs, *_ = env.step(torch.randint(env.vocab_size, (env.num_envs,), generator=generator))
