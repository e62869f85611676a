"""The single env: Gymnasium and SB3 compliance, Python scalar types, episode discipline."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from rlhf_gym.env.single_env import TokenEnv


@pytest.fixture
def single_env(make_toy_env):
    return TokenEnv(make_toy_env(1, autoreset_mode=AutoresetMode.DISABLED), render_mode="ansi")


def test_gymnasium_check_env(single_env):
    gym_check_env(single_env, skip_render_check=False)


def test_sb3_check_env(single_env):
    sb3_check_env(single_env, warn=True)


def test_python_scalar_types_and_numpy_observations(single_env):
    obs, info = single_env.reset(seed=0)
    assert set(obs) == {"input_ids", "attention_mask"}
    assert all(isinstance(v, np.ndarray) and v.dtype == np.int64 for v in obs.values())
    assert obs in single_env.observation_space
    eos = single_env.vector_env.eos_token_id
    obs, reward, terminated, truncated, info = single_env.step(eos)
    assert type(reward) is float and type(terminated) is bool and type(truncated) is bool
    assert terminated and reward != 0.0
    assert isinstance(info["response_text"], str) and isinstance(info["preference"], float)
    assert isinstance(info["response_length"], int) and info["response_length"] == 1


def test_stepping_a_finished_episode_raises(single_env):
    single_env.reset(seed=0)
    single_env.step(single_env.vector_env.eos_token_id)
    with pytest.raises(RuntimeError, match="reset"):
        single_env.step(0)


def test_render_ansi_shows_prompt_and_response(single_env):
    single_env.reset(seed=0)
    text_before = single_env.render()
    single_env.step(5)
    assert single_env.render().startswith(text_before) and len(single_env.render()) > len(text_before)


def test_wrong_action_shape_rejected(single_env):
    single_env.reset(seed=0)
    with pytest.raises(ValueError, match="single token id"):
        single_env.step(np.array([1, 2]))


def test_single_env_rejects_a_batched_core(make_toy_env):
    with pytest.raises(ValueError, match="num_envs=2"):
        TokenEnv(make_toy_env(2, autoreset_mode="disabled"))
