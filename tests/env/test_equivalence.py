"""The batched env equals N single envs in Gymnasium's SyncVectorEnv, in every autoreset mode."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rlhf_gym.env.single_env import TokenEnv


def per_row(info: dict[str, Any], num_envs: int) -> dict[int, dict[str, Any]]:
    """A vector info (or observation) as ``{row: {key: plain value}}``, masks applied.

    Works on both layouts: ours (tensors, and ``final_obs`` as a dict of (N, L) tensors)
    and SyncVectorEnv's (numpy and object arrays, nested dicts with their own masks).
    """
    rows: dict[int, dict[str, Any]] = {r: {} for r in range(num_envs)}
    for key, value in info.items():
        if key.startswith("_"):
            continue
        mask = np.asarray(info.get(f"_{key}", np.ones(num_envs, bool)))
        nested = per_row(value, num_envs) if isinstance(value, dict) else None
        for r in np.flatnonzero(mask):
            rows[int(r)][key] = nested[int(r)] if nested is not None else plain(value[r])
    return rows


def plain(value: Any) -> Any:
    if isinstance(value, dict):  # SyncVectorEnv's final_obs: an object array of obs dicts
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, torch.Tensor):
        value = value.cpu().numpy()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def assert_same(a: Any, b: Any, path: str = "") -> None:
    """Exact equality, except floats (preference scores) to 1e-5: one batched forward pass
    and N one-row passes round differently in the last bits of float32."""
    if isinstance(a, dict) and isinstance(b, dict):
        assert set(a) == set(b), f"{path}: keys {sorted(a)} != {sorted(b)}"
        for key in a:
            assert_same(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, float) or isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-5, abs=1e-5), f"{path}: {a} != {b}"
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


@pytest.mark.parametrize("mode", list(AutoresetMode))
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(num_envs=st.integers(1, 4), seed=st.integers(0, 2**31), action_seed=st.integers(0, 2**31))
def test_batched_env_matches_sync_vector_env(make_toy_env, random_actions, num_envs, seed, mode, action_seed):
    batched = make_toy_env(num_envs, max_new_tokens=3, autoreset_mode=mode)
    sync = SyncVectorEnv(
        [lambda: TokenEnv(make_toy_env(1, max_new_tokens=3, autoreset_mode=AutoresetMode.DISABLED))] * num_envs,
        autoreset_mode=mode,
    )
    n = num_envs
    b_obs, b_info = batched.reset(seed=seed)
    s_obs, s_info = sync.reset(seed=seed)
    assert_same(per_row(b_obs, n), per_row(s_obs, n), "reset obs")
    assert_same(per_row(b_info, n), per_row(s_info, n), "reset info")
    rng = np.random.default_rng(action_seed)
    for step in range(10):
        actions = random_actions(rng, num_envs, batched.vocab_size, batched.eos_token_id)
        b_obs, b_rew, b_term, b_trunc, b_info = batched.step(torch.from_numpy(actions))
        s_obs, s_rew, s_term, s_trunc, s_info = sync.step(actions)
        assert_same(per_row(b_obs, n), per_row(s_obs, n), f"step {step} obs")
        np.testing.assert_allclose(b_rew.numpy().astype(np.float64), s_rew, rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(b_rew.numpy() == 0, s_rew == 0)
        np.testing.assert_array_equal(b_term.numpy(), s_term)
        np.testing.assert_array_equal(b_trunc.numpy(), s_trunc)
        assert_same(per_row(b_info, n), per_row(s_info, n), f"step {step} info")
        if mode == AutoresetMode.DISABLED:
            done = b_term.numpy() | b_trunc.numpy()
            if done.any():  # Gymnasium's DISABLED contract: reset finished envs before stepping
                b_obs, b_info = batched.reset(options={"reset_mask": done})
                s_obs, s_info = sync.reset(options={"reset_mask": done})
                assert_same(per_row(b_obs, n), per_row(s_obs, n), "masked reset obs")
                assert_same(per_row(b_info, n), per_row(s_info, n), "masked reset info")


def test_the_comparison_can_fail(make_toy_env):
    """Guard against a vacuous comparison: different seeds and scores are told apart."""
    a, b = make_toy_env(2), make_toy_env(2)
    assert per_row(a.reset(seed=0)[0], 2) != per_row(b.reset(seed=1)[0], 2)
    with pytest.raises(AssertionError):
        assert_same({0: {"preference": 0.5}}, {0: {"preference": 0.51}})
