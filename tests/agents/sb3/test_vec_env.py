"""SB3VecEnv: exact round trip against the batched env, SB3's VecEnv contract, SB3 wrappers."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3.common.vec_env import VecEnv, VecMonitor, VecNormalize

from rlhf_gym.agents.sb3.vec_env import SB3VecEnv
from rlhf_gym.env.kl_penalty import KLRewardWrapper

NUM_ENVS = 4


def _actions(rng: np.random.Generator, vocab_size: int, eos: int) -> np.ndarray:
    actions = rng.integers(0, vocab_size, size=NUM_ENVS)
    return np.where(rng.random(NUM_ENVS) < 0.3, eos, actions).astype(np.int64)


def test_round_trip_matches_the_batched_env_exactly(make_toy_env):
    """Same seed, same actions: identical observations, rewards, dones and episode infos."""
    raw = make_toy_env(NUM_ENVS)
    bridge = SB3VecEnv(make_toy_env(NUM_ENVS))
    obs_raw, _ = raw.reset(seed=7)
    bridge.seed(7)
    obs = bridge.reset()
    for key in ("input_ids", "attention_mask"):
        np.testing.assert_array_equal(obs[key], obs_raw[key].numpy())
    rng = np.random.default_rng(0)
    finished = 0
    for _ in range(30):
        actions = _actions(rng, raw.vocab_size, raw.eos_token_id)
        obs_raw, rew_raw, term, trunc, info_raw = raw.step(torch.as_tensor(actions))
        obs, rewards, dones, infos = bridge.step(actions)
        for key in ("input_ids", "attention_mask"):
            assert obs[key].dtype == np.int64
            np.testing.assert_array_equal(obs[key], obs_raw[key].numpy())
        np.testing.assert_array_equal(rewards, rew_raw.numpy())
        np.testing.assert_array_equal(dones, (term | trunc).numpy())
        for i in np.flatnonzero(dones):
            finished += 1
            for key in ("input_ids", "attention_mask"):
                np.testing.assert_array_equal(infos[i]["terminal_observation"][key], info_raw["final_obs"][key][i].numpy())
            final = info_raw["final_info"]
            for key in ("preference", "penalty", "gold", "response_length", "prompt_index", "response_text"):
                assert infos[i][key] == final[key][i]
            assert infos[i]["truncated"] == bool(trunc[i])
            assert bridge.reset_infos[i]["prompt_index"] == info_raw["prompt_index"][i]
    assert finished >= 10


def test_seed_applies_to_the_next_reset_only(make_toy_env):
    """``seed(s); reset()`` equals ``reset(seed=s)``; a later reset continues the streams."""
    bridge = SB3VecEnv(make_toy_env(NUM_ENVS))
    assert bridge.seed(3) == [3, 4, 5, 6]
    first = bridge.reset()
    second = bridge.reset()
    raw = make_toy_env(NUM_ENVS)
    expected, _ = raw.reset(seed=3)
    np.testing.assert_array_equal(first["input_ids"], expected["input_ids"].numpy())
    assert not np.array_equal(first["input_ids"], second["input_ids"])  # new prompts, no re-seed
    bridge.seed(3)
    np.testing.assert_array_equal(bridge.reset()["input_ids"], first["input_ids"])


def test_vec_env_contract(make_toy_env):
    """What SB3's algorithms rely on, checked the way SB3's ``check_env`` checks a Gym env."""
    bridge = SB3VecEnv(make_toy_env(NUM_ENVS))
    assert isinstance(bridge, VecEnv) and bridge.num_envs == NUM_ENVS
    space = bridge.observation_space
    assert isinstance(space, gym.spaces.Dict) and isinstance(bridge.action_space, gym.spaces.Discrete)
    obs = bridge.reset()
    assert len(bridge.reset_infos) == NUM_ENVS
    rng = np.random.default_rng(1)
    for _ in range(12):
        for i in range(NUM_ENVS):
            assert space.contains({key: value[i] for key, value in obs.items()})
        actions = np.array([bridge.action_space.sample() for _ in range(NUM_ENVS)])
        actions[rng.random(NUM_ENVS) < 0.3] = bridge.core.eos_token_id
        obs, rewards, dones, infos = bridge.step(actions)
        assert rewards.shape == (NUM_ENVS,) and rewards.dtype == np.float32
        assert dones.shape == (NUM_ENVS,) and dones.dtype == np.bool_
        assert isinstance(infos, list) and len(infos) == NUM_ENVS and all(isinstance(i, dict) for i in infos)
        for i, info in enumerate(infos):
            assert type(info["TimeLimit.truncated"]) is bool and not info["TimeLimit.truncated"]
            assert ("terminal_observation" in info) == bool(dones[i])
            if dones[i]:
                assert space.contains(info["terminal_observation"])
    # step_async / step_wait split, and the checks on misuse
    bridge.step_async(np.zeros(NUM_ENVS, dtype=np.int64))
    bridge.step_wait()
    with pytest.raises(RuntimeError, match="step_async"):
        bridge.step_wait()
    with pytest.raises(ValueError, match="shape"):
        bridge.step(np.zeros(NUM_ENVS + 1, dtype=np.int64))
    bridge.close()


def test_time_limit_flag_follows_bootstrap_truncation(make_toy_env):
    """Truncation is reported as a time limit (SB3 bootstraps it) only when asked for."""
    for bootstrap in (False, True):
        bridge = SB3VecEnv(make_toy_env(NUM_ENVS), bootstrap_truncation=bootstrap)
        bridge.reset()
        non_eos = (bridge.core.eos_token_id + 1) % bridge.core.vocab_size
        for _ in range(bridge.core.max_new_tokens):
            _, _, dones, infos = bridge.step(np.full(NUM_ENVS, non_eos))
        assert dones.all()
        assert all(info["truncated"] for info in infos)
        assert all(info["TimeLimit.truncated"] is bootstrap for info in infos)


def test_attributes_methods_and_wrappers(make_toy_env, reference):
    kl_env = KLRewardWrapper(make_toy_env(NUM_ENVS), reference(0.7), beta=0.1)
    bridge = SB3VecEnv(kl_env)
    bridge.reset()
    assert bridge.get_attr("beta") == [0.1] * NUM_ENVS  # found on the wrapper
    assert bridge.get_attr("max_new_tokens", indices=[1, 2]) == [5, 5]  # found on the core env
    assert bridge.get_attr("render_mode") == [None] * NUM_ENVS
    bridge.set_attr("beta", 0.2)
    assert kl_env.beta == 0.2
    with pytest.raises(ValueError, match="sub-envs"):
        bridge.set_attr("beta", 0.3, indices=[0])
    with pytest.raises(AttributeError):
        bridge.get_attr("no_such_attribute")
    prompts = bridge.env_method("reference_logprobs", bridge._obs)
    assert len(prompts) == NUM_ENVS and prompts[0].shape == (NUM_ENVS, bridge.core.vocab_size)
    with pytest.raises(ValueError, match="sub-envs"):
        bridge.env_method("close", indices=0)
    assert bridge.env_is_wrapped(KLRewardWrapper) == [True] * NUM_ENVS
    assert bridge.env_is_wrapped(gym.Wrapper, indices=[0]) == [False]
    assert bridge.has_attr("action_masks")


def test_action_masks_default_and_provider(make_toy_env):
    bridge = SB3VecEnv(make_toy_env(NUM_ENVS))
    with pytest.raises(RuntimeError, match="reset"):
        bridge.action_masks()
    bridge.reset()
    vocab = bridge.core.vocab_size
    assert bridge.action_masks().shape == (NUM_ENVS, vocab) and bridge.action_masks().all()
    allowed = torch.zeros(NUM_ENVS, vocab, dtype=torch.bool)
    allowed[:, :7] = True
    bridge.mask_provider = lambda obs: allowed
    rows = bridge.env_method("action_masks")  # what sb3-contrib's get_action_masks calls
    assert len(rows) == NUM_ENVS and np.array_equal(np.stack(rows), allowed.numpy())
    bridge.mask_provider = lambda obs: allowed[:, :5]
    with pytest.raises(ValueError, match="shape"):
        bridge.action_masks()
    bridge.mask_provider = lambda obs: torch.zeros(NUM_ENVS, vocab, dtype=torch.bool)
    with pytest.raises(ValueError, match="no token"):
        bridge.action_masks()


def test_needs_same_step_autoreset(make_toy_env):
    with pytest.raises(ValueError, match="same_step"):
        SB3VecEnv(make_toy_env(NUM_ENVS, autoreset_mode="next_step"))
    with pytest.raises(TypeError, match="TokenVectorEnv"):
        SB3VecEnv(gym.make_vec("CartPole-v1", num_envs=2, vectorization_mode="sync"))


def test_vec_monitor_counts_episodes(make_toy_env):
    monitor = VecMonitor(SB3VecEnv(make_toy_env(NUM_ENVS)))
    monitor.seed(0)
    monitor.reset()
    returns = np.zeros(NUM_ENVS)
    rng = np.random.default_rng(2)
    episodes = 0
    for _ in range(20):
        _, rewards, dones, infos = monitor.step(_actions(rng, monitor.unwrapped.core.vocab_size, monitor.unwrapped.core.eos_token_id))
        returns += rewards
        for i in np.flatnonzero(dones):
            episodes += 1
            assert infos[i]["episode"]["l"] == infos[i]["response_length"]
            assert infos[i]["episode"]["r"] == pytest.approx(returns[i], abs=1e-5)
            assert infos[i]["episode"]["r"] == pytest.approx(infos[i]["preference"] + infos[i]["penalty"], abs=1e-5)
        returns[dones] = 0
    assert episodes > 0


def test_vec_normalize_without_observation_normalisation(make_toy_env):
    """Rewards are normalised, token ids pass through untouched (also in terminal observations)."""
    raw = make_toy_env(NUM_ENVS)
    normalized = VecNormalize(SB3VecEnv(make_toy_env(NUM_ENVS)), norm_obs=False, norm_reward=True, gamma=1.0)
    normalized.seed(5)
    obs = normalized.reset()
    obs_raw, _ = raw.reset(seed=5)
    np.testing.assert_array_equal(obs["input_ids"], obs_raw["input_ids"].numpy())
    rng = np.random.default_rng(3)
    for _ in range(15):
        actions = _actions(rng, raw.vocab_size, raw.eos_token_id)
        obs, _, dones, infos = normalized.step(actions)
        obs_raw, rew_raw, _, _, info_raw = raw.step(torch.as_tensor(actions))
        np.testing.assert_array_equal(obs["input_ids"], obs_raw["input_ids"].numpy())
        assert obs["input_ids"].dtype == np.int64
        np.testing.assert_allclose(normalized.get_original_reward(), rew_raw.numpy())
        for i in np.flatnonzero(dones):
            np.testing.assert_array_equal(infos[i]["terminal_observation"]["input_ids"], info_raw["final_obs"]["input_ids"][i].numpy())
