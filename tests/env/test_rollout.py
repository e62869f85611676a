"""KV-cached rollouts through the env agree with a full-context forward pass."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from rlhf_gym.env.rollout import collect_episodes, paired_gold
from rlhf_gym.lm.layout import position_ids_from_attention_mask
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


@pytest.mark.parametrize("group_size", [2, 4])
def test_sharing_group_prompts_gives_the_same_episodes(make_toy_env, toy_dir, group_size):
    """One prompt forward per group, its cache repeated k times, is the per-row prefill to
    float precision: greedy episodes are token for token the same, sampled ones start alike,
    and the rows of a group then decode independently from their own cache rows."""
    policy = CausalLMPolicy.from_pretrained(toy_dir / "policy", temperature=0.7)
    env = make_toy_env(8, autoreset_mode="disabled", max_new_tokens=8, group_size=group_size)
    width = env.max_prompt_tokens

    def rollout(share: bool, greedy: bool):
        generator = torch.Generator().manual_seed(1)
        return collect_episodes(env, policy, seed=2, generator=generator, greedy=greedy, share_group_prompts=share)

    shared, unshared = rollout(True, greedy=True), rollout(False, greedy=True)
    assert torch.equal(shared.input_ids, unshared.input_ids) and torch.equal(shared.response_mask, unshared.response_mask)
    assert shared.response_texts == unshared.response_texts
    assert torch.allclose(shared.logprobs, unshared.logprobs, atol=1e-5)
    assert torch.allclose(shared.scores, unshared.scores, atol=1e-5)

    shared, unshared = rollout(True, greedy=False), rollout(False, greedy=False)
    # The first token is drawn from the same distribution with the same stream (a flip would
    # need a uniform draw within float error of a CDF boundary).
    assert torch.equal(shared.input_ids[:, : width + 1], unshared.input_ids[:, : width + 1])
    assert torch.allclose(shared.logprobs[:, 0], unshared.logprobs[:, 0], atol=1e-5)
    responses = shared.input_ids[:, width:].reshape(-1, group_size, env.max_new_tokens)
    assert (responses != responses[:, :1]).any(), "the rows of a group should sample different responses"
    with torch.no_grad():
        full, _ = policy.token_logprobs(shared.input_ids, shared.attention_mask, width)
    mask = shared.response_mask
    assert torch.allclose(shared.logprobs[mask], full[mask], atol=1e-5)  # each row's own cache


@pytest.mark.parametrize("group_size", [2, 4])
def test_the_prompt_is_forwarded_once_per_group(make_toy_env, toy_dir, monkeypatch, group_size):
    policy = CausalLMPolicy.from_pretrained(toy_dir / "policy", temperature=0.7)
    env = make_toy_env(8, autoreset_mode="disabled", max_new_tokens=4, group_size=group_size)
    prompt_rows: list[int] = []  # batch size of every forward over the prompt block
    forward = policy.model.forward

    def counting_forward(*args, **kwargs):
        if kwargs["input_ids"].shape[1] > 1:  # the prompt block (decode steps feed one column)
            prompt_rows.append(kwargs["input_ids"].shape[0])
        return forward(*args, **kwargs)

    monkeypatch.setattr(policy.model, "forward", counting_forward)
    collect_episodes(env, policy, seed=0, generator=torch.Generator().manual_seed(0))
    assert prompt_rows == [8 // group_size]
    collect_episodes(env, policy, seed=0, generator=torch.Generator().manual_seed(0), share_group_prompts=False)
    assert prompt_rows == [8 // group_size, 8]


class _ClaimsGroupsOfTwo:
    """A wrapper that reports ``group_size = 2`` for an env that draws a prompt per row."""

    group_size = 2

    def __init__(self, env):
        self.env = env

    def __getattr__(self, name):
        return getattr(self.env, name)


def test_sharing_rejects_groups_whose_prompts_differ(make_toy_env, toy_dir):
    """An env built with group_size=1 behind a wrapper claiming groups of 2: the rows that
    differ from their group's first row are named, and no prompt is guessed."""
    policy = CausalLMPolicy.from_pretrained(toy_dir / "policy", temperature=0.7)
    inner = make_toy_env(4, autoreset_mode="disabled", max_new_tokens=4)
    obs, _ = inner.reset(seed=0)
    prompts = obs["input_ids"][:, : inner.max_prompt_tokens]
    differing = [row for row in (1, 3) if not torch.equal(prompts[row], prompts[row - 1])]
    assert differing == [1, 3]  # four different posts
    env = _ClaimsGroupsOfTwo(inner)
    with pytest.raises(ValueError, match=r"rows \[1, 3\] do not share the prompt block"):
        collect_episodes(env, policy, seed=0, generator=torch.Generator().manual_seed(0))
    collect_episodes(env, policy, seed=0, generator=torch.Generator().manual_seed(0), share_group_prompts=False)
    # The check also reads the attention mask, and the group size must divide the batch.
    mask = obs["attention_mask"][:2, : inner.max_prompt_tokens].clone()
    ids = prompts[[0, 0]]
    mask[1, -1] = 0
    with pytest.raises(ValueError, match=r"rows \[1\]"):
        policy.prefill_groups(ids, mask, 2)
    with pytest.raises(ValueError, match="divide the batch size 4"):
        policy.prefill_groups(prompts, obs["attention_mask"][:, : inner.max_prompt_tokens], 3)


def test_updates_skip_shared_padding_without_changing_logprobs_or_values(make_toy_env, toy_dir):
    # The PPO-style forwards drop prompt columns that are padding in every row: with the
    # batch widened by 40 more of them, log-probs and values are unchanged.
    from rlhf_gym.agents.value_model import ValueModel
    from rlhf_gym.lm.layout import trim_shared_left_padding

    policy = CausalLMPolicy.from_pretrained(toy_dir / "policy", temperature=0.7)
    env = make_toy_env(5, autoreset_mode="disabled", max_new_tokens=8)
    batch = collect_episodes(env, policy, seed=2, generator=torch.Generator().manual_seed(1))
    width = env.max_prompt_tokens
    pad = torch.zeros(batch.input_ids.shape[0], 40, dtype=batch.input_ids.dtype)
    wide_ids, wide_mask = torch.cat([pad, batch.input_ids], 1), torch.cat([pad, batch.attention_mask], 1)
    trimmed_ids, _mask, trimmed_width = trim_shared_left_padding(wide_ids, wide_mask, width + 40)
    assert trimmed_width <= width and trimmed_ids.shape[1] <= batch.input_ids.shape[1]
    value = ValueModel.create("head", None, policy, env.tokenizer, reward_is_preference=False)
    with torch.no_grad():
        narrow, _ = policy.token_logprobs(batch.input_ids, batch.attention_mask, width)
        wide, _ = policy.token_logprobs(wide_ids, wide_mask, width + 40)
        assert torch.allclose(narrow, wide, atol=1e-5)
        assert torch.allclose(value(batch.input_ids, batch.attention_mask, width), value(wide_ids, wide_mask, width + 40), atol=1e-5)


def test_token_logprobs_entropies_are_a_statistic(make_toy_env, toy_dir):
    """Entropies carry no gradient, equal the tempered distribution's, and are skipped on request."""
    policy = CausalLMPolicy.from_pretrained(toy_dir / "policy", temperature=0.7)
    env = make_toy_env(3, autoreset_mode="disabled", max_new_tokens=5)
    batch = collect_episodes(env, policy, seed=0, generator=torch.Generator().manual_seed(0))
    width = env.max_prompt_tokens
    logprobs, entropy = policy.token_logprobs(batch.input_ids, batch.attention_mask, width)
    only, none = policy.token_logprobs(batch.input_ids, batch.attention_mask, width, entropy=False)
    assert none is None and torch.equal(logprobs, only)
    assert logprobs.requires_grad and not entropy.requires_grad
    with torch.no_grad():
        dist = torch.distributions.Categorical(logits=policy.response_logits(batch.input_ids, batch.attention_mask, width))
    torch.testing.assert_close(entropy, dist.entropy())


@pytest.mark.parametrize("group_size", [1, 2])
def test_prefill_skips_shared_padding_with_the_same_logits(make_toy_env, toy_dir, group_size):
    """Extra all-padding columns on the left change neither the logits nor the decode; the
    cache holds only the batch's own width."""
    policy = CausalLMPolicy.from_pretrained(toy_dir / "policy", temperature=1.0)
    env = make_toy_env(4, autoreset_mode="disabled", max_new_tokens=4, group_size=group_size)
    obs, _ = env.reset(seed=2)
    width = env.max_prompt_tokens
    ids, mask = obs["input_ids"][:, :width], obs["attention_mask"][:, :width]
    wide_ids = torch.cat([torch.full((4, 30), env.pad_token_id), ids], dim=1)
    wide_mask = torch.cat([torch.zeros((4, 30), dtype=torch.long), mask], dim=1)
    prefill = (lambda i, m: policy.prefill_groups(i, m, group_size)) if group_size > 1 else policy.prefill
    with torch.no_grad():
        narrow_logits, narrow_state = prefill(ids, mask)
        wide_logits, wide_state = prefill(wide_ids, wide_mask)
        own_width = width - int(mask.any(0).long().argmax())  # from the first column some row uses
        assert wide_state.attention_mask.shape[1] == narrow_state.attention_mask.shape[1] == own_width
        torch.testing.assert_close(wide_logits, narrow_logits)
        tokens = torch.tensor([5, 6, 7, 8])
        torch.testing.assert_close(policy.decode(tokens, wide_state), policy.decode(tokens, narrow_state))


def test_logprobs_and_values_skip_columns_after_every_response(make_toy_env, toy_dir, toy_preference_model):
    """Extra all-padding response columns on the right change no per-token result; they come back as 0."""
    from rlhf_gym.agents.value_model import ValueModel

    policy = CausalLMPolicy.from_pretrained(toy_dir / "policy", temperature=0.7)
    env = make_toy_env(3, autoreset_mode="disabled", max_new_tokens=5)
    batch = collect_episodes(env, policy, seed=1, generator=torch.Generator().manual_seed(1))
    width, extra = env.max_prompt_tokens, 7
    wide_ids = torch.cat([batch.input_ids, torch.full((3, extra), env.pad_token_id)], dim=1)
    wide_mask = torch.cat([batch.attention_mask, torch.zeros((3, extra), dtype=torch.long)], dim=1)
    value = ValueModel.create("preference-model", toy_preference_model, policy, env.tokenizer, reward_is_preference=True)
    with torch.no_grad():
        narrow_lp, narrow_entropy = policy.token_logprobs(batch.input_ids, batch.attention_mask, width)
        wide_lp, wide_entropy = policy.token_logprobs(wide_ids, wide_mask, width)
        narrow_v, wide_v = value(batch.input_ids, batch.attention_mask, width), value(wide_ids, wide_mask, width)
    for narrow, wide in ((narrow_lp, wide_lp), (narrow_entropy, wide_entropy), (narrow_v, wide_v)):
        assert wide.shape == (3, 5 + extra)
        torch.testing.assert_close(wide[:, :5], narrow)
    assert not wide_lp[:, 5:].any() and not wide_entropy[:, 5:].any() and not wide_v[:, 6:].any()
    with torch.no_grad():  # the state after the longest response: read from kept columns, as the full buffer gives it
        hidden = value.backbone(input_ids=wide_ids, attention_mask=wide_mask,
                                position_ids=position_ids_from_attention_mask(wide_mask)).last_hidden_state
        full = value.head(hidden[:, width - 1 : -1]).squeeze(-1)
    torch.testing.assert_close(wide_v[:, 5], full[:, 5])
    torch.testing.assert_close(narrow_lp[batch.response_mask], batch.logprobs[batch.response_mask], atol=1e-5, rtol=0)
