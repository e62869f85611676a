"""Shared fixtures of the leaderboard tests: a stand-in protocol and a valid submission.

`leaderboard_protocol` patches `rlhf_gym.leaderboard.validate.get_protocol`, so that
validating a submission neither computes the real protocol hash (which builds the env and
hashes the shipped assets) nor depends on the current protocol's values.
"""

from __future__ import annotations

import copy
from types import SimpleNamespace
from typing import Any

import pytest

ENV_ID = "RLHF-Summarize-v0"

FAKE_PROTOCOL = SimpleNamespace(env_id=ENV_ID, version="summarize-test-v1", hash="sha256:" + "0123456789abcdef" * 4)
"""A protocol stand-in with the attributes `validate` reads (``env_id``, ``version``, ``hash``)."""

SAMPLED_METRICS: dict[str, float] = {
    "gold": 0.52, "gold_change": 0.07, "gold_change_sem": 0.012, "win_rate": 0.41, "proxy_reward": 1.35,
    "kl": 4.2, "rouge_l": 0.31, "bleu": 12.5, "perplexity": 3.8, "distinct_1": 0.62, "distinct_2": 0.88,
    "response_length": 41.5, "eos_rate": 0.97,
}
"""Plausible values of every sampled metric (``metrics.greedy`` has all of them but ``kl``)."""


def fake_protocol_lookup(env_id: str) -> SimpleNamespace:
    """`get_protocol` for the stand-in: `FAKE_PROTOCOL` for the suite's env, KeyError otherwise."""
    if env_id != ENV_ID:
        raise KeyError(f"env {env_id!r} has no leaderboard protocol; protocols exist for: {ENV_ID}")
    return FAKE_PROTOCOL


def make_submission(protocol: Any = FAKE_PROTOCOL, seeds: tuple[int, ...] = (0, 1, 2)) -> dict[str, Any]:
    """A valid submission (schema version 1) under ``protocol``, one run per seed."""
    greedy = {key: value for key, value in SAMPLED_METRICS.items() if key != "kl"}
    return {
        "schema_version": 1,
        "env_id": protocol.env_id,
        "protocol_version": protocol.version,
        "protocol_hash": protocol.hash,
        "agent": {
            "name": "PPO (rlhf-gym)",
            "paper": "https://arxiv.org/abs/2403.17031",
            "code": "https://github.com/x/y",
            "description": "PPO with a value head, 20k env steps.",
        },
        "training_env_steps": 20000,
        "hardware": "2 CPU cores",
        "date": "2026-12-01",
        "runs": [
            {"seed": seed, "policy": f"runs/ppo/seed{seed}/final_policy",
             "metrics": {"sampled": dict(SAMPLED_METRICS), "greedy": dict(greedy)}}
            for seed in seeds
        ],
    }


@pytest.fixture
def leaderboard_protocol(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """`FAKE_PROTOCOL`, patched in as the protocol `rlhf_gym.leaderboard.validate` checks against."""
    from rlhf_gym.leaderboard import validate

    monkeypatch.setattr(validate, "get_protocol", fake_protocol_lookup)
    return FAKE_PROTOCOL


@pytest.fixture
def valid_submission(leaderboard_protocol: SimpleNamespace) -> dict[str, Any]:
    """A fresh valid submission (a dict) under the patched-in `leaderboard_protocol`."""
    return copy.deepcopy(make_submission(leaderboard_protocol))
