"""The evaluation protocol: its hash, the metrics' sanity ordering, determinism, submission and verify."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest

import rlhf_gym
from rlhf_gym.leaderboard import protocol as protocol_module
from rlhf_gym.leaderboard.evaluate import distinct_n, evaluate, submission
from rlhf_gym.leaderboard.protocol import METRICS, get_protocol
from rlhf_gym.pipeline.tiny_models import TinyGPT2Size, tiny_causal_lm

ENV = "RLHF-Summarize-v0"


@pytest.fixture
def small_protocol(monkeypatch):
    """The real protocol at 16 posts, so that a test evaluates in seconds."""
    small = dataclasses.replace(protocol_module.PROTOCOLS[ENV], posts=16, batch_size=16, version="summarize-test-small")
    monkeypatch.setitem(protocol_module.PROTOCOLS, ENV, small)
    return small


def test_the_protocol_hash_covers_settings_and_is_stable():
    protocol = get_protocol(ENV)
    assert protocol.hash.startswith("sha256:") and len(protocol.hash) == 7 + 64
    assert protocol.hash == get_protocol(ENV).hash
    assert dataclasses.replace(protocol, posts=protocol.posts - 1).hash != protocol.hash
    assert dataclasses.replace(protocol, sampling_seed=1).hash != protocol.hash
    assert protocol.temperature == rlhf_gym.get_task(ENV).temperature and protocol.split == "test"
    with pytest.raises(KeyError, match="no leaderboard protocol"):
        get_protocol("Nope-v0")


def test_distinct_n_counts_distinct_ngrams():
    assert distinct_n(["the cat the cat"], 1) == 0.5 and distinct_n(["a b c"], 2) == 1.0 and distinct_n([""], 1) == 0.0


@pytest.mark.slow
def test_references_beat_the_sft_policy_which_beats_a_random_policy(small_protocol, tmp_path):
    task = rlhf_gym.get_task(ENV)
    random_policy = tiny_causal_lm(task.tokenizer(), TinyGPT2Size(1, 32, 2, 512), seed=0)
    random_policy.save_pretrained(tmp_path / "random")
    task.tokenizer().save_pretrained(tmp_path / "random")
    sft = evaluate(ENV, task.policy_path(), seed=0, progress=False)
    rand = evaluate(ENV, tmp_path / "random", seed=0, progress=False)
    references = task.gold_judge(*_posts_and_references(small_protocol)).mean()
    for decoding in ("sampled", "greedy"):
        assert references > sft["metrics"][decoding]["gold"] > rand["metrics"][decoding]["gold"]
        assert sft["metrics"][decoding]["gold_change"] == 0.0 and sft["metrics"][decoding]["gold_change_sem"] == 0.0
        assert rand["metrics"][decoding]["gold_change"] < 0
        assert rand["metrics"][decoding]["perplexity"] > sft["metrics"][decoding]["perplexity"]
    assert sft["metrics"]["sampled"]["kl"] == pytest.approx(0.0, abs=1e-6) and rand["metrics"]["sampled"]["kl"] > 1.0
    assert set(sft["metrics"]["sampled"]) == set(METRICS) and set(sft["metrics"]["greedy"]) == set(METRICS) - {"kl"}
    assert evaluate(ENV, task.policy_path(), seed=0, progress=False) == sft  # seeded: the same numbers
    other_seed = evaluate(ENV, task.policy_path(), seed=1, progress=False)["metrics"]["sampled"]
    assert other_seed["gold"] != sft["metrics"]["sampled"]["gold"]  # another sampling stream


def _posts_and_references(protocol):
    import gymnasium as gym

    env = gym.make_vec(ENV, num_envs=protocol.batch_size, split=protocol.split, autoreset_mode="disabled")
    prompts = []
    for seed in protocol.batch_seeds():
        env.reset(seed=seed)
        prompts.extend(env.prompts)
    prompts = prompts[: protocol.posts]
    return prompts, [p.reference for p in prompts]


@pytest.mark.slow
def test_a_submission_verifies_and_a_tampered_copy_does_not(small_protocol, tmp_path, capsys):
    from rlhf_gym.cli import main

    sft_path = str(rlhf_gym.get_task(ENV).policy_path())
    out = tmp_path / "sft.json"
    main(["evaluate", "--env", ENV, "--policy", sft_path, sft_path, sft_path, "--seed", "0", "1", "2",
          "--submission", str(out), "--agent", "SFT policy"])
    data = json.loads(out.read_text())
    assert data["protocol_hash"] == small_protocol.hash and [r["seed"] for r in data["runs"]] == [0, 1, 2]
    with pytest.raises(SystemExit) as exit_info:
        main(["leaderboard", "validate", str(out)])
    assert exit_info.value.code == 0
    with pytest.raises(SystemExit) as exit_info:
        main(["leaderboard", "verify", str(out)])
    assert exit_info.value.code == 0 and "VERIFIED" in capsys.readouterr().out

    data["runs"][1]["metrics"]["sampled"]["gold"] = min(1.0, data["runs"][1]["metrics"]["sampled"]["gold"] + 0.2)
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(data))
    with pytest.raises(SystemExit) as exit_info:
        main(["leaderboard", "verify", str(tampered)])
    out_text = capsys.readouterr().out
    assert exit_info.value.code == 1 and "REJECTED" in out_text
    assert "runs[1].metrics.sampled.gold: submitted" in out_text and "tolerance 0.0200" in out_text


def test_a_submission_joins_runs_of_one_protocol_only():
    run = {"env_id": ENV, "protocol_version": "v", "protocol_hash": "sha256:" + "0" * 64, "seed": 0, "policy": "p", "metrics": {}}
    data = submission([run, {**run, "seed": 1}], agent="x", training_env_steps=5)
    assert data["training_env_steps"] == 5 and data["agent"] == {"name": "x", "paper": None, "code": None}
    with pytest.raises(ValueError, match="same env and protocol"):
        submission([run, {**run, "protocol_hash": "sha256:" + "1" * 64}], agent="x", training_env_steps=0)


@pytest.mark.slow
def test_best_of_n_picks_the_proxys_favourite_and_reports_the_analytic_kl(small_protocol):
    sft_path = rlhf_gym.get_task(ENV).policy_path()
    plain = evaluate(ENV, sft_path, seed=0, progress=False)["metrics"]
    best = evaluate(ENV, f"best-of-4:{sft_path}", seed=0, progress=False)["metrics"]
    assert best["sampled"]["proxy_reward"] > plain["sampled"]["proxy_reward"]  # it maximises the proxy
    assert best["sampled"]["kl"] == pytest.approx(math.log(4) - 3 / 4)
    assert best["greedy"] == plain["greedy"]  # one greedy response per post: nothing to choose from
    with pytest.raises(ValueError, match="best-of-N:PATH"):
        evaluate(ENV, "best-of-x:somewhere", progress=False)
