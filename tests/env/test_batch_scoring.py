"""Batch scoring (``batch_scoring=True``, DISABLED mode): a batch's episodes are scored in one
reward call when its last row ends, with the same scores as scoring each row when it ends."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlhf_gym.env.rollout import collect_episodes
from rlhf_gym.lm.policy import CausalLMPolicy

NUM_ENVS, NEW_TOKENS = 6, 6


class CountingReward:
    """Wraps a reward model: counts calls and the rows each call scores."""

    def __init__(self, inner):
        self.inner, self.calls = inner, []

    def score(self, prompts, responses):
        self.calls.append(len(responses))
        return self.inner.score(prompts, responses)


def _actions(env, seed: int) -> np.ndarray:
    """(NEW_TOKENS, N) token ids in which rows end with EOS at different steps (row i at step i, some never)."""
    rng = np.random.default_rng(seed)
    actions = rng.integers(10, env.vocab_size, size=(NEW_TOKENS, env.num_envs))
    actions[actions == env.eos_token_id] = 11
    for row in range(env.num_envs - 2):  # the last two rows are truncated
        actions[row, row] = env.eos_token_id
    return actions


def _play(env, actions: np.ndarray, seed: int = 5):
    env.reset(seed=seed)
    rewards, infos, flags = [], [], []
    for step_actions in actions:
        _, reward, terminated, truncated, info = env.step(torch.as_tensor(step_actions))
        rewards.append(reward.clone())
        infos.append(info)
        flags.append((terminated | truncated).clone())
        if bool(env.finished.all()):
            break
    return rewards, infos, flags


def test_one_call_at_the_last_end_with_the_same_scores(make_toy_env, toy_preference_model):
    per_step = CountingReward(toy_preference_model)
    together = CountingReward(toy_preference_model)
    env_a = make_toy_env(NUM_ENVS, autoreset_mode="disabled", max_new_tokens=NEW_TOKENS, missing_eos_penalty=0.5,
                         preference_model=per_step)
    env_b = make_toy_env(NUM_ENVS, autoreset_mode="disabled", max_new_tokens=NEW_TOKENS, missing_eos_penalty=0.5,
                         preference_model=together, batch_scoring=True)
    actions = _actions(env_a, 0)
    rewards_a, infos_a, flags_a = _play(env_a, actions)
    rewards_b, infos_b, flags_b = _play(env_b, actions)

    assert len(per_step.calls) > 1 and together.calls == [NUM_ENVS]  # one call, every row
    assert all(torch.equal(a, b) for a, b in zip(flags_a, flags_b))  # the flags do not move
    for reward, info in zip(rewards_b[:-1], infos_b[:-1]):  # before the last end: nothing scored
        assert not reward.any() and "_proxy" not in info
    last = infos_b[-1]
    assert last["_proxy"].all() and last["_gold"].all()
    per_row = torch.stack(rewards_a).sum(0)  # each row's one non-zero reward, wherever it came
    torch.testing.assert_close(rewards_b[-1], per_row, atol=1e-5, rtol=0)
    for key in ("proxy", "penalty", "gold", "response_length", "response_text"):
        merged = np.empty(NUM_ENVS, dtype=last[key].dtype)
        for info in infos_a:
            if f"_{key}" in info:
                merged[info[f"_{key}"]] = info[key][info[f"_{key}"]]
        if merged.dtype == object:
            assert list(merged) == list(last[key])
        else:
            np.testing.assert_allclose(last[key], merged, atol=1e-5)
    assert (last["penalty"] < 0).sum() == 2  # the two truncated rows


def test_a_reset_discards_unscored_episodes(make_toy_env, toy_preference_model):
    counting = CountingReward(toy_preference_model)
    env = make_toy_env(NUM_ENVS, autoreset_mode="disabled", max_new_tokens=NEW_TOKENS, preference_model=counting,
                       batch_scoring=True)
    actions = _actions(env, 1)
    env.reset(seed=0)
    env.step(torch.as_tensor(actions[0]))  # row 0 ends, unscored
    env.reset(seed=1)
    rewards, infos, _ = _play(env, actions, seed=1)
    assert counting.calls == [NUM_ENVS] and infos[-1]["_proxy"].sum() == NUM_ENVS


def test_batch_scoring_needs_disabled_mode(make_toy_env):
    with pytest.raises(ValueError, match="batch_scoring needs autoreset_mode DISABLED"):
        make_toy_env(2, batch_scoring=True)
    env = make_toy_env(2)
    with pytest.raises(ValueError, match="SAME_STEP"):
        env.batch_scoring = True
    assert env.batch_scoring is False
    with pytest.raises(TypeError, match="must be a bool"):
        make_toy_env(2, autoreset_mode="disabled", batch_scoring="yes")


def test_a_non_finite_score_at_the_last_end_leaves_the_env_intact(make_toy_env):
    class NaNOnce:
        def __init__(self):
            self.fail = True

        def score(self, prompts, responses):
            if self.fail:
                self.fail = False
                return torch.full((len(responses),), float("nan"))
            return torch.zeros(len(responses))

    env = make_toy_env(2, autoreset_mode="disabled", max_new_tokens=2, preference_model=NaNOnce(), batch_scoring=True)
    env.reset(seed=0)
    env.step(torch.tensor([env.eos_token_id, 12]))
    before = (env._input_ids.clone(), env._attention_mask.clone(), env.finished)
    with pytest.raises(RuntimeError, match="non-finite"):
        env.step(torch.tensor([12, 12]))
    assert torch.equal(env._input_ids, before[0]) and torch.equal(env._attention_mask, before[1])
    assert torch.equal(env.finished, before[2])
    _, reward, _, truncated, info = env.step(torch.tensor([12, 12]))  # the retry scores both rows
    assert truncated.tolist() == [False, True] and info["_proxy"].all() and not reward.any()


@pytest.mark.parametrize("group_size", [1, 2])
def test_collect_episodes_scores_together_as_it_scored_apart(make_toy_env, toy_dir, toy_preference_model, group_size):
    policy = CausalLMPolicy.from_pretrained(toy_dir / "policy", temperature=1.0)
    counting = CountingReward(toy_preference_model)
    env = make_toy_env(8, autoreset_mode="disabled", max_new_tokens=8, missing_eos_penalty=1.0,
                       preference_model=counting, group_size=group_size)
    apart = collect_episodes(env, policy, seed=4, generator=torch.Generator().manual_seed(4), score_together=False)
    calls_apart = len(counting.calls)
    together = collect_episodes(env, policy, seed=4, generator=torch.Generator().manual_seed(4))
    assert len(counting.calls) - calls_apart == 1 and calls_apart >= 1
    assert env.batch_scoring is False  # restored
    assert torch.equal(apart.input_ids, together.input_ids) and apart.response_texts == together.response_texts
    for key in ("scores", "preference", "penalty", "gold", "logprobs"):
        torch.testing.assert_close(getattr(together, key), getattr(apart, key), atol=1e-5, rtol=0)
    assert torch.equal(apart.terminated, together.terminated)
