"""The prompt token cache: the same ids as tokenising afresh, reused while prompts recur, never stale."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlhf_gym.env.prompt_tokens import PromptTokenCache
from rlhf_gym.env.prompts import Prompt
from rlhf_gym.lm.layout import decode_exact, tokenize_left_truncated


def _prompts(source, indices):
    return source.get_many(list(indices))


def test_cached_ids_equal_fresh_tokenisation(toy_tokenizer, toy_prompt_source):
    cache = PromptTokenCache(toy_tokenizer, max_tokens=12)
    prompts = _prompts(toy_prompt_source, [3, 7, 3, 11])
    first = cache.token_ids(prompts)
    again = cache.token_ids(prompts)
    fresh = tokenize_left_truncated(toy_tokenizer, [p.text for p in prompts], 12)
    for a, b, expected in zip(first, again, fresh, strict=True):
        assert a.tolist() == b.tolist() == expected
        assert len(a) <= 12
    assert (cache.misses, cache.hits) == (3, 4)  # index 3 is tokenised once, even within one call


def test_a_changed_text_at_a_cached_index_is_tokenised_anew(toy_tokenizer):
    cache = PromptTokenCache(toy_tokenizer, max_tokens=40)
    old = cache.token_ids([Prompt("POST: a cat.\nTL;DR:", index=0)])[0]
    new = cache.token_ids([Prompt("POST: two dogs and an owl.\nTL;DR:", index=0)])[0]
    assert new.tolist() == tokenize_left_truncated(toy_tokenizer, ["POST: two dogs and an owl.\nTL;DR:"], 40)[0]
    assert new.tolist() != old.tolist()


def test_capacity_evicts_the_oldest_and_zero_keeps_nothing(toy_tokenizer, toy_prompt_source):
    cache = PromptTokenCache(toy_tokenizer, max_tokens=40, capacity=2)
    cache.token_ids(_prompts(toy_prompt_source, [1, 2, 3]))
    assert len(cache) == 2
    cache.token_ids(_prompts(toy_prompt_source, [1]))  # evicted: tokenised again
    assert cache.misses == 4
    off = PromptTokenCache(toy_tokenizer, max_tokens=40, capacity=0)
    off.token_ids(_prompts(toy_prompt_source, [1, 1]))
    off.token_ids(_prompts(toy_prompt_source, [1]))
    assert (len(off), off.misses) == (0, 2)


@pytest.mark.parametrize("capacity", [-1, 1.5, True, "8"])
def test_bad_capacity_is_rejected(toy_tokenizer, capacity):
    with pytest.raises(ValueError, match="capacity must be an integer >= 0"):
        PromptTokenCache(toy_tokenizer, max_tokens=8, capacity=capacity)


def test_cached_ids_are_read_only(toy_tokenizer, toy_prompt_source):
    ids = PromptTokenCache(toy_tokenizer, max_tokens=40).token_ids(_prompts(toy_prompt_source, [5]))[0]
    with pytest.raises(ValueError):
        ids[0] = 0


def test_env_with_and_without_the_cache_plays_identical_episodes(make_toy_env, random_actions):
    """Same seed and actions: observations, rewards and infos match step for step, with group rows sharing prompts."""
    cached, uncached = make_toy_env(8, group_size=2), make_toy_env(8, group_size=2, prompt_cache_size=0)
    obs_a, _ = cached.reset(seed=3)
    obs_b, _ = uncached.reset(seed=3)
    rng = np.random.default_rng(0)
    for _ in range(40):
        actions = random_actions(rng, 8, cached.vocab_size, cached.eos_token_id)
        obs_a, reward_a, term_a, trunc_a, info_a = cached.step(actions)
        obs_b, reward_b, term_b, trunc_b, info_b = uncached.step(actions)
        for key in obs_a:
            assert torch.equal(obs_a[key], obs_b[key])
        assert torch.equal(reward_a, reward_b) and torch.equal(term_a | trunc_a, term_b | trunc_b)
        if "final_info" in info_a:
            assert info_a["final_info"]["response_text"].tolist() == info_b["final_info"]["response_text"].tolist()
    assert cached._prompt_tokens.hits > 0 and cached._prompt_tokens.misses < uncached._prompt_tokens.misses


def test_a_prompt_without_tokens_raises_and_leaves_the_streams(make_toy_env, toy_prompt_source):
    class EmptyAt:  # the toy source, but prompt 0 of each draw is replaced by an empty text
        def __len__(self):
            return len(toy_prompt_source)

        def get_many(self, indices):
            return [Prompt("", index=i) for i in indices]

    env = make_toy_env(2)
    env.reset(seed=0)
    counts = env._episode_counts.copy()
    env.prompt_source = EmptyAt()
    with pytest.raises(ValueError, match="tokenise to no tokens"):
        env.reset()
    assert env._episode_counts.tolist() == counts.tolist()


def test_decode_exact_matches_batch_decode(toy_tokenizer):
    texts = ["POST: I saw 3 cats.\nTL;DR: 3 cats", " dogs  and  owls ,", ""]
    rows = [toy_tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    rows.append([toy_tokenizer.eos_token_id, toy_tokenizer.pad_token_id, *rows[0]])  # special tokens are kept
    expected = toy_tokenizer.batch_decode(rows, skip_special_tokens=False, clean_up_tokenization_spaces=False)
    assert decode_exact(toy_tokenizer, rows) == expected
    assert decode_exact(toy_tokenizer, [np.asarray(r) for r in rows]) == expected
