"""Shared fixtures of the leaderboard tests: a stand-in protocol, a valid submission, tiny
checkpoints and a tiny real protocol.

`leaderboard_protocol` patches `rlhf_gym.leaderboard.validate.get_protocol`, so that
validating a submission neither computes the real protocol hash (which builds the env and
hashes the shipped assets) nor depends on the current protocol's values.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from rlhf_gym.leaderboard.protocol import METRICS

ENV_ID = "RLHF-Summarize-v0"

FAKE_PROTOCOL = SimpleNamespace(env_id=ENV_ID, version="summarize-test-v1", hash="sha256:" + "0123456789abcdef" * 4, posts=4,
                                metrics=METRICS)
"""A protocol stand-in with the attributes `validate` reads (``env_id``, ``version``, ``hash``, ``posts``, ``metrics``):
an env with a gold judge and references, like summarize."""

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


def per_post_scores(gold: float, gold_change: float, posts: int) -> dict[str, list[float]]:
    """Per-post ``gold`` / ``sft_gold`` arrays whose means are ``gold`` and ``gold - gold_change``."""
    spread = [0.02 if i % 2 == 0 else -0.02 for i in range(posts)]
    if posts % 2:
        spread[-1] = 0.0
    scores = [round(gold + d, 6) for d in spread]
    return {"gold": scores, "sft_gold": [round(x - gold_change, 6) for x in scores]}


def make_submission(protocol: Any = FAKE_PROTOCOL, seeds: tuple[int, ...] = (0, 1, 2)) -> dict[str, Any]:
    """A valid submission (schema version 2) under ``protocol``, one run per seed."""
    greedy = {key: value for key, value in SAMPLED_METRICS.items() if key != "kl"}
    scores = per_post_scores(SAMPLED_METRICS["gold"], SAMPLED_METRICS["gold_change"], protocol.posts)
    return {
        "schema_version": 2,
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
            {"seed": seed, "policy": f"../checkpoints/ppo/seed{seed}",
             "training_command": f"rlhf-gym train --agent ppo --total-steps 20000 --seed {seed} --out runs/ppo/seed{seed}",
             "metrics": {"sampled": dict(SAMPLED_METRICS), "greedy": dict(greedy)},
             "per_post": {"sampled": copy.deepcopy(scores), "greedy": copy.deepcopy(scores)}}
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


# Tiny checkpoints and a tiny protocol ----------------------------------------------------------
# Imported when used: the validation tests load neither torch nor transformers.
TINY_SIZE = {"n_layer": 1, "n_embd": 32, "n_head": 2, "n_positions": 512}
"""A policy this size (`TinyGPT2Size`) answers the tiny protocol's posts in about a second."""


def save_tiny_policy(folder: Path, *, extra_vocab: int = 0, tokenizer: Any = None, seed: int = 0) -> Path:
    """A random tiny GPT-2 over the env's vocabulary (plus ``extra_vocab`` ids) saved to ``folder``
    as safetensors, with ``tokenizer`` saved beside it (None: no tokenizer, as `CausalLMPolicy.save_pretrained` writes)."""
    import torch
    from transformers import GPT2LMHeadModel

    import rlhf_gym
    from rlhf_gym.lm.policy import CausalLMPolicy
    from rlhf_gym.pipeline.tiny_models import TinyGPT2Size, tiny_gpt2_config

    env_tokenizer = rlhf_gym.get_task(ENV_ID).tokenizer()
    config = tiny_gpt2_config(env_tokenizer, TinyGPT2Size(**TINY_SIZE))
    config.vocab_size += extra_vocab
    torch.manual_seed(seed)
    CausalLMPolicy(GPT2LMHeadModel(config).eval()).save_pretrained(folder)
    if tokenizer is not None:
        tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_policy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A loadable tiny policy folder without a tokenizer (do not modify it: copy it)."""
    return save_tiny_policy(tmp_path_factory.mktemp("tiny") / "policy")


@pytest.fixture
def tiny_protocol(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The real protocol at 2 posts in one batch of 2, so that evaluating a tiny policy takes seconds.

    Patched into `rlhf_gym.leaderboard.protocol.PROTOCOLS` (where `get_protocol` keeps the
    derived protocols), so evaluate, validate and verify all use it.
    """
    from rlhf_gym.leaderboard import protocol as protocol_module

    tiny = dataclasses.replace(protocol_module.get_protocol(ENV_ID), posts=2, batch_size=2, version="summarize-test-tiny")
    monkeypatch.setitem(protocol_module.PROTOCOLS, ENV_ID, tiny)
    return tiny


@pytest.fixture
def restore_threads() -> Iterator[None]:
    """Put torch's thread count back after a test that sets it (``--threads``)."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _pickle_only(folder: Path) -> None:
    shutil.rmtree(folder)
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    (folder / "pytorch_model.bin").write_bytes(b"a pickle: never read")


def _remote_code(folder: Path) -> None:
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "auto_map": {"AutoModelForCausalLM": "evil.Model"}}))


def _other_tokenizer(folder: Path) -> None:
    import rlhf_gym

    tokenizer = copy.deepcopy(rlhf_gym.get_task(ENV_ID).tokenizer())
    tokenizer.add_tokens(["<not-the-envs>"])
    tokenizer.save_pretrained(folder)


BAD_CHECKPOINTS: dict[str, tuple[Callable[[Path], Any], str]] = {
    "missing": (lambda folder: shutil.rmtree(folder), "no folder"),
    "pickle-only": (_pickle_only, "the folder holds pickled weights and no *.safetensors"),
    "remote code": (_remote_code, "refusing remote code"),
    "corrupt weights": (lambda folder: (folder / "model.safetensors").write_bytes(b"garbage" * 10),
                        "the checkpoint does not load (SafetensorError"),
    "larger vocabulary": (lambda folder: save_tiny_policy(folder, extra_vocab=16),
                          "its vocabulary has {V16} tokens (config vocab_size), the env " + ENV_ID + " has {V} actions"),
    "smaller vocabulary": (lambda folder: save_tiny_policy(folder, extra_vocab=-9), "cannot read the env's token ids"),
    "other tokenizer": (_other_tokenizer, "it ships its own tokenizer ({V1} tokens), which differs from the env's ({V} tokens; "
                                          "e.g. '<not-the-envs>' is id {V} in its tokenizer and None in the env's)"),
}
"""How to break a copy of `tiny_policy` in place, and what the refusal says (`refusal` fills in the vocabulary sizes)."""


def refusal(kind: str) -> str:
    """`BAD_CHECKPOINTS`' message for ``kind``, with the env's vocabulary size V filled in."""
    import rlhf_gym

    size = len(rlhf_gym.get_task(ENV_ID).tokenizer())
    return BAD_CHECKPOINTS[kind][1].format(V=size, V1=size + 1, V16=size + 16)
