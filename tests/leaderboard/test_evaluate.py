"""The evaluation protocol: its hash, the metrics' sanity ordering, determinism, the policy
checks made before anything is evaluated, and ``rlhf-gym evaluate --submission``.

The fast tests never run the protocol: the CLI's checks must stop before it, so `evaluate`
is replaced by a function that fails the test, or (to see what a submission records) by
one that returns plausible metrics. The slow tests run the real protocol.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

import rlhf_gym
from rlhf_gym.cli import main
from rlhf_gym.leaderboard import evaluate as evaluate_module
from rlhf_gym.leaderboard import protocol as protocol_module
from rlhf_gym.leaderboard.evaluate import PolicyError, distinct_n, evaluate, load_policy, submission
from rlhf_gym.leaderboard.protocol import METRICS, get_protocol
from rlhf_gym.leaderboard.validate import validate_submission
from rlhf_gym.pipeline.tiny_models import TinyGPT2Size, tiny_causal_lm

from .conftest import BAD_CHECKPOINTS, SAMPLED_METRICS, per_post_scores, refusal

ENV = "RLHF-Summarize-v0"
REVISION = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def small_protocol(monkeypatch):
    """The real protocol at 16 posts, so that a test evaluates in seconds."""
    small = dataclasses.replace(get_protocol(ENV), posts=16, batch_size=16, version="summarize-test-small")
    monkeypatch.setitem(protocol_module.PROTOCOLS, ENV, small)
    return small


@pytest.fixture
def nothing_evaluated(monkeypatch):
    """Fail the test if the protocol or a policy check runs (the CLI must stop before them)."""
    monkeypatch.setattr(evaluate_module, "evaluate", lambda *a, **k: pytest.fail("evaluated although a check failed"))
    monkeypatch.setattr(evaluate_module, "check_policies", lambda *a, **k: pytest.fail("loaded policies although a check failed"))


def plausible_result(env_id: str, policy: Any, *, seed: int = 0, device: str = "cpu", progress: bool = True,
                     revision: str | None = None) -> dict[str, Any]:
    """What `evaluate` returns, with the conftest's metrics and per-post scores consistent with them."""
    protocol = get_protocol(env_id)
    scores = per_post_scores(SAMPLED_METRICS["gold"], SAMPLED_METRICS["gold_change"], protocol.posts)
    greedy = {key: value for key, value in SAMPLED_METRICS.items() if key != "kl"}
    return {"env_id": env_id, "protocol_version": protocol.version, "protocol_hash": protocol.hash, "seed": seed,
            "policy": str(policy), "revision": revision, "metrics": {"sampled": dict(SAMPLED_METRICS), "greedy": greedy},
            "per_post": {"sampled": copy.deepcopy(scores), "greedy": copy.deepcopy(scores)}}


def exit_code(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    return exit_info.value.code


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


def test_the_printed_line_names_the_protocols_metrics_only():
    greedy = {key: value for key, value in SAMPLED_METRICS.items() if key != "kl"}
    line = evaluate_module.metrics_line({"sampled": dict(SAMPLED_METRICS), "greedy": greedy})
    assert line == ("gold 0.520 (+0.070 ± 0.012 vs SFT), win rate 0.410, KL 4.20, proxy +1.350, ROUGE-L 0.310, BLEU 12.5; "
                    "greedy gold 0.520")
    kept = protocol_module.metric_set(gold_judge=False, references=False)
    bare = evaluate_module.metrics_line({"sampled": {k: SAMPLED_METRICS[k] for k in kept},
                                         "greedy": {k: greedy[k] for k in kept if k != "kl"}})
    assert bare == "proxy +1.350 (no gold judge), KL 4.20; greedy proxy +1.350"


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
          "--submission", str(out), "--agent", "SFT policy", "--training-env-steps", "0"])
    data = json.loads(out.read_text())
    assert data["protocol_hash"] == small_protocol.hash and [r["seed"] for r in data["runs"]] == [0, 1, 2]
    assert (tmp_path / data["runs"][0]["policy"]).resolve() == Path(sft_path).resolve()  # relative to the file's folder
    for run in data["runs"]:
        assert run["training_command"] is None and "revision" not in run
        for decoding in ("sampled", "greedy"):
            scores, metrics = run["per_post"][decoding], run["metrics"][decoding]
            assert len(scores["gold"]) == small_protocol.posts and scores["gold"] == scores["sft_gold"]  # SFT against itself
            assert sum(scores["gold"]) / small_protocol.posts == pytest.approx(metrics["gold"], abs=1e-6)
    with pytest.raises(SystemExit) as exit_info:
        main(["leaderboard", "validate", str(out)])
    assert exit_info.value.code == 0
    with pytest.raises(SystemExit) as exit_info:
        main(["leaderboard", "verify", str(out)])
    assert exit_info.value.code == 0 and "VERIFIED" in capsys.readouterr().out

    # A consistent lie: per-post scores raised by up to 0.2, and the metrics recomputed from them (so it validates).
    scores, metrics = data["runs"][1]["per_post"]["sampled"], data["runs"][1]["metrics"]["sampled"]
    scores["gold"] = [min(1.0, x + 0.2) for x in scores["gold"]]
    metrics["gold"] = sum(scores["gold"]) / len(scores["gold"])
    metrics["gold_change"] = metrics["gold"] - sum(scores["sft_gold"]) / len(scores["sft_gold"])
    assert validate_submission(json.dumps(data)) == []
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(data))
    with pytest.raises(SystemExit) as exit_info:
        main(["leaderboard", "verify", str(tampered)])
    out_text = capsys.readouterr().out
    assert exit_info.value.code == 1 and "REJECTED" in out_text
    assert "runs[1].metrics.sampled.gold: submitted" in out_text and "tolerance 0.0200" in out_text


def _result(**change: Any) -> dict[str, Any]:
    scores = {"gold": [0.1234567, 0.5], "sft_gold": [0.0, 0.25]}
    return {"env_id": ENV, "protocol_version": "v", "protocol_hash": "sha256:" + "0" * 64, "seed": 0, "policy": "p",
            "revision": None, "metrics": {}, "per_post": {"sampled": scores, "greedy": scores}, **change}


def test_a_submission_joins_runs_of_one_protocol_only():
    runs = [_result(), _result(seed=1)]
    data = submission(runs, agent="x", training_env_steps=5, training_commands=["train 0", "train 1"])
    assert data["training_env_steps"] == 5 and data["agent"] == {"name": "x", "paper": None, "code": None}
    assert data["schema_version"] == 2 and [r["training_command"] for r in data["runs"]] == ["train 0", "train 1"]
    assert data["runs"][0]["per_post"]["sampled"]["gold"] == [0.123457, 0.5]  # rounded to 6 decimals
    with pytest.raises(ValueError, match="same env and protocol"):
        submission([_result(), _result(protocol_hash="sha256:" + "1" * 64)], agent="x", training_env_steps=0)


@pytest.mark.parametrize(("steps", "commands", "message"), [
    (5, None, "every run needs the command that trained it"),
    (5, ["train", ""], "every run needs the command that trained it"),
    (0, ["train", None], "have no training commands"),
    (0, [None], "1 training commands for 2 runs"),
])
def test_a_submission_refuses_training_commands_that_do_not_fit_the_budget(steps, commands, message):
    with pytest.raises(ValueError, match=message):
        submission([_result(), _result(seed=1)], agent="x", training_env_steps=steps, training_commands=commands)


def test_a_submission_stores_local_paths_relative_to_its_folder_and_hub_ids_with_their_revision(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "subs").mkdir()
    runs = [_result(policy="ckpt/seed0"), _result(policy=f"best-of-4:{tmp_path}/ckpt/seed1", seed=1),
            _result(policy="subs/mine/x", seed=2), _result(policy="owner/name", revision=REVISION, seed=3)]
    data = submission(runs, agent="x", training_env_steps=0, submission_dir="subs")
    assert [r["policy"] for r in data["runs"]] == ["../ckpt/seed0", "best-of-4:../ckpt/seed1", "./mine/x", "owner/name"]
    assert ["revision" in r for r in data["runs"]] == [False, False, False, True] and data["runs"][3]["revision"] == REVISION


# Checks before anything is evaluated ----------------------------------------------------------
def test_a_two_run_submission_fails_before_anything_is_evaluated(tiny_policy, tmp_path, capsys, nothing_evaluated):
    out = tmp_path / "two.json"
    code = exit_code(["evaluate", "--env", ENV, "--policy", str(tiny_policy), str(tiny_policy), "--seed", "0", "1",
                      "--agent", "Tiny", "--training-env-steps", "0", "--submission", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and not out.exists() and "Traceback" not in err
    assert err.splitlines() == ["error: --submission needs at least 3 runs (one --policy per training seed), got 2; the leaderboard "
                                "reports results over seeds (evaluate without --submission to see one run's metrics)"]


@pytest.mark.parametrize(("change", "expected"), [
    ({"--agent": None}, "error: --submission needs --agent NAME, the row's label in the table"),
    ({"--agent": "final_policy"}, 'error: --agent: "final_policy" is the name of a checkpoint folder, not of an agent'),
    ({"--agent": "seed2"}, 'error: --agent: "seed2" is the name of a checkpoint folder'),
    ({"--training-env-steps": None}, "error: --submission needs --training-env-steps N, the env steps that trained each policy"),
    ({"--training-env-steps": "-1"}, "error: --training-env-steps -1: expected a number of env steps >= 0"),
    ({"--training-env-steps": "20000"}, "summary.json has no \"command\"); pass --training-command 'TEMPLATE'"),
    ({"--training-command": "rlhf-gym train --seed {seed}"}, "error: --training-command with --training-env-steps 0"),
    ({"--training-env-steps": "300", "--training-command": "rlhf-gym train --seed 0"}, "has no {seed}"),
    ({"--seed": ["0", "0", "1"]}, "error: --seed 0 0 1: every run of a submission needs a distinct seed"),
    ({"--submission": "missing/out.json"}, "error: --submission missing/out.json: the folder 'missing' does not exist"),
    ({"--revision": ["main"], "--policy": ["owner/name"] * 3}, "error: --revision 'main': a submission records the 40-hex commit"),
    ({"--policy": ["owner/name"] * 3}, "error: --policy 'owner/name': no such folder; for a hub id give --revision COMMIT"),
    ({"--revision": [REVISION]}, f"error: --revision {REVISION} is for hub ids owner/name; --policy"),
    ({"--submission": None, "--training-env-steps": None}, "error: --agent describe a submission, which needs --submission FILE"),
    ({"--policy": ["best-of-x:ckpt"] * 3}, "error: --policy: policy 'best-of-x:ckpt': expected best-of-N:PATH"),
    ({"--threads": "0"}, "error: --threads 0: expected a number of CPU threads >= 1"),
])
def test_a_submission_must_say_who_and_how_much_training_before_anything_is_evaluated(
    tiny_policy, tmp_path, monkeypatch, capsys, nothing_evaluated, change, expected
):
    monkeypatch.chdir(tmp_path)
    args: dict[str, Any] = {"--env": ENV, "--policy": [str(tiny_policy)] * 3, "--seed": ["0", "1", "2"], "--agent": "Tiny",
                            "--training-env-steps": "0", "--submission": "out.json"}
    args.update(change)
    argv = ["evaluate"]
    for flag, value in args.items():
        if value is not None:
            argv += [flag, *([value] if isinstance(value, str) else value)]
    assert exit_code(argv) == 2
    err = capsys.readouterr().err
    assert any(expected in line for line in err.splitlines()), err
    assert all(line.startswith("error: ") for line in err.splitlines()) and not (tmp_path / "out.json").exists()


@pytest.mark.parametrize("kind", BAD_CHECKPOINTS)
def test_a_policy_the_protocol_cannot_evaluate_fails_up_front_in_one_line(tiny_policy, tmp_path, monkeypatch, capsys, kind):
    break_it, expected = BAD_CHECKPOINTS[kind][0], refusal(kind)
    bad = tmp_path / "bad"
    shutil.copytree(tiny_policy, bad)
    break_it(bad)
    monkeypatch.setattr(evaluate_module, "evaluate", lambda *a, **k: pytest.fail("evaluated a policy that failed its checks"))
    assert exit_code(["evaluate", "--env", ENV, "--policy", str(tiny_policy), str(bad), "--seed", "0", "1"]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith(f"error: policy {str(bad)!r}: ") and expected in err, err
    with pytest.raises(PolicyError, match=re.escape(expected)):
        load_policy(ENV, str(bad))  # the Python API refuses it the same way


def test_a_checkpoint_without_a_tokenizer_is_read_with_the_envs(tiny_policy, tmp_path):
    note = load_policy(ENV, str(tiny_policy)).note
    assert note == (f"{tiny_policy} has no tokenizer of its own; the protocol reads and writes its token ids with the env's "
                    "tokenizer, as it would anyway")
    with_envs = shutil.copytree(tiny_policy, tmp_path / "with_tokenizer")
    rlhf_gym.get_task(ENV).tokenizer().save_pretrained(with_envs)
    assert load_policy(ENV, str(with_envs)).note is None  # it ships the env's own tokenizer
    assert load_policy(ENV, f"best-of-4:{rlhf_gym.get_task(ENV).policy_path()}").best_of == 4


# What a submission records ---------------------------------------------------------------------
@pytest.mark.parametrize("commands_from", ["summary.json", "template"])
def test_a_submission_records_relative_paths_training_commands_threads_and_hardware(
    tiny_policy, tiny_protocol, tmp_path, monkeypatch, capsys, restore_threads, commands_from
):
    work, subs = tmp_path / "work", tmp_path / "subs"
    subs.mkdir()
    for seed in range(3):
        shutil.copytree(tiny_policy, work / f"runs/seed{seed}/final_policy")
        (work / f"runs/seed{seed}/summary.json").write_text(json.dumps({"command": f"rlhf-gym train --seed {seed} --out runs/seed{seed}"}))
    evaluated = []
    monkeypatch.setattr(evaluate_module, "evaluate", lambda *a, **k: evaluated.append((a, k)) or plausible_result(*a, **k))
    monkeypatch.chdir(work)
    extra = (["--training-command", "train.sh {seed} > log{seed}", "--hardware", "one H200"] if commands_from == "template"
             else ["--threads", "1"])
    main(["evaluate", "--env", ENV, "--policy", *[f"runs/seed{k}/final_policy" for k in range(3)], "--seed", "0", "1", "2",
          "--agent", "Tiny PPO", "--training-env-steps", "300", "--submission", "../subs/tiny.json", *extra])
    text = (subs / "tiny.json").read_text()
    data = json.loads(text)
    assert [r["policy"] for r in data["runs"]] == [f"../work/runs/seed{k}/final_policy" for k in range(3)]
    if commands_from == "template":
        assert [r["training_command"] for r in data["runs"]] == [f"train.sh {k} > log{k}" for k in range(3)]
        assert data["hardware"] == "one H200" and torch.get_num_threads() == 2  # the default
    else:
        assert [r["training_command"] for r in data["runs"]] == [f"rlhf-gym train --seed {k} --out runs/seed{k}" for k in range(3)]
        assert data["hardware"].endswith("CPU, 1 thread") and torch.get_num_threads() == 1
    assert [k["seed"] for _, k in evaluated] == [0, 1, 2] and data["training_env_steps"] == 300
    assert validate_submission(subs / "tiny.json") == [] and '"gold": [0.54, 0.5]' in text  # per-post scores on one line
    out = capsys.readouterr().out
    assert "note: runs/seed0/final_policy has no tokenizer of its own" in out and "wrote ../subs/tiny.json (3 runs" in out




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


@pytest.mark.slow
def test_a_temperature_spec_samples_colder_with_its_own_kl_and_keeps_its_prefix_in_a_submission(small_protocol, tmp_path):
    sft_path = rlhf_gym.get_task(ENV).policy_path()
    plain = evaluate(ENV, sft_path, seed=0, progress=False)
    cold = evaluate(ENV, f"temperature-0.3:{sft_path}", seed=0, progress=False)
    assert plain["metrics"]["sampled"]["kl"] == pytest.approx(0.0, abs=1e-6)  # the SFT policy against itself
    assert cold["metrics"]["sampled"]["kl"] > 0.05  # a colder policy is another distribution
    assert cold["metrics"]["sampled"]["distinct_2"] < plain["metrics"]["sampled"]["distinct_2"]  # and a less varied one
    assert cold["metrics"]["greedy"] == plain["metrics"]["greedy"]  # greedy decoding ignores the temperature
    data = submission([cold] * 3, agent="SFT policy at T=0.3", training_env_steps=0, submission_dir=tmp_path / "sub")
    assert data["runs"][0]["policy"].startswith("temperature-0.3:") and data["runs"][0]["policy"].endswith("sft_policy")
    with pytest.raises(ValueError, match="temperature-T:PATH with a decimal T > 0"):
        evaluate(ENV, f"temperature-0:{sft_path}", progress=False)


@pytest.mark.slow
def test_an_env_without_a_gold_judge_is_evaluated_and_submitted_on_the_proxy_alone(tiny_policy, monkeypatch, tmp_path):
    """The summarize task without its gold judge (its env then reports no gold): the run reports the
    protocol's metrics only, records the proxy per post, and its submission validates."""
    task = dataclasses.replace(rlhf_gym.get_task(ENV), name="nogold", gold_judge=None)
    protocol = dataclasses.replace(protocol_module.protocol_of(task), posts=2, batch_size=2)
    monkeypatch.setitem(protocol_module.PROTOCOLS, ENV, protocol)  # evaluate, validate: this env's protocol
    results = [evaluate(ENV, tiny_policy, seed=seed, progress=False) for seed in (0, 1, 2)]
    first = results[0]
    assert first["protocol_version"] == f"nogold-test-v{task.protocol_revision}" and first["protocol_hash"] == protocol.hash
    assert list(first["metrics"]["sampled"]) == list(protocol.metrics)
    assert list(first["metrics"]["greedy"]) == [m for m in protocol.metrics if m != "kl"]
    for decoding in ("sampled", "greedy"):
        scores = first["per_post"][decoding]
        assert list(scores) == ["proxy", "sft_proxy"] and all(math.isfinite(x) for x in scores["proxy"] + scores["sft_proxy"])
        assert sum(scores["proxy"]) / 2 == pytest.approx(first["metrics"][decoding]["proxy_reward"], abs=1e-6)
        assert scores["proxy"] != scores["sft_proxy"]  # a random tiny policy writes other responses than the SFT policy
    data = submission(results, agent="random tiny policy", training_env_steps=0, submission_dir=tmp_path)
    path = tmp_path / "nogold.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    assert validate_submission(path) == []
