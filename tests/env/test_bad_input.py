"""Bad input gets a clear error naming the bad value, and leaves the env unchanged."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlhf_gym.rewards.preference_model import PreferenceModel


def _state(env):
    return (env._input_ids.clone(), env._attention_mask.clone(), env._num_generated.clone(), env.prompts)


def _assert_unchanged(env, state):
    ids, mask, num, prompts = state
    assert torch.equal(env._input_ids, ids) and torch.equal(env._attention_mask, mask)
    assert torch.equal(env._num_generated, num) and env.prompts == prompts


def test_step_before_reset(make_toy_env):
    with pytest.raises(RuntimeError, match="reset"):
        make_toy_env(2).step(torch.zeros(2, dtype=torch.long))


@pytest.mark.parametrize(
    "actions, error, message",
    [
        (torch.tensor([0, 10_000]), ValueError, r"\[0, \d+\).*10000"),
        (torch.tensor([-1, 0]), ValueError, r"-1"),
        (np.array([0, 1, 2]), ValueError, r"shape \(2,\).*\(3,\)"),
        (torch.zeros((2, 1), dtype=torch.long), ValueError, r"\(2, 1\)"),
        (torch.tensor([0.0, 1.0]), TypeError, "float32"),
        (np.array([np.nan, 1.0]), TypeError, "float64"),
        (np.array([True, False]), TypeError, "bool"),
        ([0, 1], TypeError, "list"),
    ],
)
def test_bad_actions_raise_and_leave_state(make_toy_env, actions, error, message):
    env = make_toy_env(2)
    env.reset(seed=0)
    state = _state(env)
    with pytest.raises(error, match=message):
        env.step(actions)
    _assert_unchanged(env, state)


class NaNPreferenceModel(PreferenceModel):
    def score(self, prompts, responses):
        scores = super().score(prompts, responses)
        scores[0] = float("nan")
        return scores


def test_nan_reward_raises_and_leaves_state(make_toy_env, toy_preference_model):
    nan_model = NaNPreferenceModel(toy_preference_model.model, toy_preference_model.tokenizer)
    env = make_toy_env(2, preference_model=nan_model)
    env.reset(seed=0)
    state = _state(env)
    with pytest.raises(RuntimeError, match="non-finite.*unchanged"):
        env.step(torch.full((2,), env.eos_token_id))
    _assert_unchanged(env, state)


def test_bad_reset_mask(make_toy_env):
    env = make_toy_env(2)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="bool array of shape"):
        env.reset(options={"reset_mask": np.array([1, 0])})
    with pytest.raises(ValueError, match="unknown reset options"):
        env.reset(options={"mask": None})


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"group_size": 3}, "multiple of group_size"),
        ({"autoreset_mode": "sometimes"}, "autoreset_mode"),
        ({"missing_eos_penalty": float("nan")}, "missing_eos_penalty"),
    ],
)
def test_bad_constructor_arguments(make_toy_env, overrides, message):
    with pytest.raises(ValueError, match=message):
        make_toy_env(4, **overrides)


def test_bad_seed(make_toy_env):
    env = make_toy_env(2)
    with pytest.raises(ValueError, match="seeds"):
        env.reset(seed=-1)
    with pytest.raises(ValueError, match="expected 2 seeds"):
        env.reset(seed=[1, 2, 3])
