"""``rlhf-gym leaderboard verify``: paths resolved against the submission's folder, every
checkpoint checked before any run is evaluated, one ``REJECTED`` line per problem, the
deviation tables, ``--runs`` and revisions.

The fast tests validate against the stand-in protocol of ``conftest.py`` and replace the
protocol run by `replay`, which returns the submitted metrics (or tampered ones): what is
under test is everything around the protocol. The slow test runs the real (tiny) protocol.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from rlhf_gym.cli import main
from rlhf_gym.leaderboard import evaluate as evaluate_module
from rlhf_gym.leaderboard.evaluate import LoadedPolicy

from .conftest import BAD_CHECKPOINTS, refusal

ENV = "RLHF-Summarize-v0"
REPO_ROOT = Path(__file__).resolve().parents[2]
REVISION = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def board(tmp_path: Path, tiny_policy: Path, valid_submission: dict[str, Any]) -> Path:
    """``lb/submissions/tiny.json``, whose runs name ``../checkpoints/ppo/seed{k}`` (tiny policies)."""
    root = tmp_path / "lb"
    for seed in range(3):
        shutil.copytree(tiny_policy, root / f"checkpoints/ppo/seed{seed}")
    (root / "submissions").mkdir()
    path = root / "submissions" / "tiny.json"
    path.write_text(json.dumps(valid_submission))
    return path


def replay(monkeypatch: pytest.MonkeyPatch, submission: Path, tamper: Callable[[int, dict], None] | None = None) -> list[dict]:
    """Make the protocol return each run's submitted metrics (``tamper(seed, metrics)`` may change
    them); returns the list that records each call's policy, seed and revision."""
    runs = {run["seed"]: run for run in json.loads(submission.read_text())["runs"]}
    calls: list[dict] = []

    def evaluate(env_id: str, policy: str, *, seed: int, device: str, revision: str | None, progress: bool) -> dict[str, Any]:
        calls.append({"policy": policy, "seed": seed, "revision": revision})
        metrics = copy.deepcopy(runs[seed]["metrics"])
        if tamper:
            tamper(seed, metrics)
        return {"metrics": metrics}

    monkeypatch.setattr(evaluate_module, "evaluate", evaluate)
    return calls


def partition(lines: list[str]) -> tuple[list[str], list[str]]:
    """(the ``note:`` lines, the others)."""
    return [line for line in lines if line.startswith("note: ")], [line for line in lines if not line.startswith("note: ")]


def verify(*args: str) -> int:
    with pytest.raises(SystemExit) as exit_info:
        main(["leaderboard", "verify", *args])
    return exit_info.value.code


def test_local_paths_resolve_against_the_submission_folder_from_any_directory(board, tmp_path, monkeypatch, capsys):
    calls = replay(monkeypatch, board)
    for cwd in (REPO_ROOT, tmp_path, board.parent):
        monkeypatch.chdir(cwd)
        file = os.path.relpath(board)
        assert verify(file) == 0
        out = capsys.readouterr().out
        assert f"VERIFIED {file}: every metric of all 3 runs is within tolerance" in out
    assert all(Path(call["policy"]).is_absolute() for call in calls)
    resolved = [Path(call["policy"]).resolve() for call in calls]
    assert resolved == [board.parents[1] / f"checkpoints/ppo/seed{k}" for k in range(3)] * 3
    assert [call["seed"] for call in calls] == [0, 1, 2] * 3 and {call["revision"] for call in calls} == {None}


def test_verified_prints_every_deviation_against_its_tolerance(board, monkeypatch, capsys):
    replay(monkeypatch, board, tamper=lambda seed, metrics: metrics["greedy"].update(gold=metrics["greedy"]["gold"] + 0.015))
    assert verify(str(board)) == 0
    notes, lines = partition(capsys.readouterr().out.splitlines())
    assert len(notes) == 3 and notes[0].startswith("note: runs[0]: ") and "has no tokenizer of its own" in notes[0]
    assert lines[0] == "runs[0] (seed 0, ../checkpoints/ppo/seed0): every metric within tolerance"
    assert lines[1].split() == ["metric", "sampled", "dev", "greedy", "dev", "tolerance"]
    assert lines[2].split() == ["gold", "+0.0000", "+0.0150", "0.0200"]  # re-run minus submitted, within 0.02
    assert next(line for line in lines if line.split()[0] == "kl").split() == ["kl", "+0.0000", "-", "0.1000"]
    assert next(line for line in lines if line.split()[0] == "perplexity").split()[-2:] == ["5%", "rel."]
    assert sum(line.startswith("runs[") for line in lines) == 3 and lines[-1].startswith("VERIFIED ")


def test_a_metric_beyond_its_tolerance_is_rejected_and_marked_in_the_table(board, monkeypatch, capsys):
    def inflate(seed: int, metrics: dict) -> None:
        if seed == 1:
            metrics["sampled"]["gold"] += 0.05  # the re-run gives 0.05 more than submitted

    replay(monkeypatch, board, tamper=inflate)
    assert verify(str(board)) == 1
    lines = partition(capsys.readouterr().out.splitlines())[1]
    assert "runs[1] (seed 1, ../checkpoints/ppo/seed1): 1 metric(s) beyond tolerance (!)" in lines
    assert ["gold", "+0.0500!", "+0.0000", "0.0200"] in [line.split() for line in lines]
    assert lines[-2:] == [
        "REJECTED runs[1].metrics.sampled.gold: submitted 0.5200, re-evaluated 0.5700 (off by 0.0500, tolerance 0.0200)",
        f"REJECTED {board}: 1 problem(s); re-evaluated all 3 runs",
    ]


def test_a_missing_checkpoint_of_run_2_is_reported_before_run_0_is_evaluated(board, monkeypatch, capsys):
    shutil.rmtree(board.parents[1] / "checkpoints/ppo/seed2")
    monkeypatch.setattr(evaluate_module, "evaluate", lambda *a, **k: pytest.fail("evaluated a run before every checkpoint was checked"))
    assert verify(str(board)) == 1
    captured = capsys.readouterr()
    missing = board.parent.resolve() / "../checkpoints/ppo/seed2"
    assert captured.out.splitlines() == [
        f"REJECTED runs[2]: policy {str(missing)!r}: no folder {str(missing.resolve())!r}; expected a checkpoint folder, "
        "a hub id owner/name (with its revision), best-of-N:PATH or temperature-T:PATH",
        f"REJECTED {board}: 1 problem(s); nothing was re-evaluated",
    ]
    assert "Traceback" not in captured.out + captured.err


@pytest.mark.parametrize("kind", [kind for kind in BAD_CHECKPOINTS if kind != "missing"])
def test_a_hostile_or_unloadable_checkpoint_is_rejected_in_one_line(board, monkeypatch, capsys, kind):
    bad = board.parents[1] / "checkpoints/ppo/seed1"
    BAD_CHECKPOINTS[kind][0](bad)
    monkeypatch.setattr(evaluate_module, "evaluate", lambda *a, **k: pytest.fail("evaluated although a checkpoint was refused"))
    assert verify(str(board)) == 1
    captured = capsys.readouterr()
    rejected = [line for line in captured.out.splitlines() if line.startswith("REJECTED runs[")]
    policy = board.parent.resolve() / "../checkpoints/ppo/seed1"
    assert len(rejected) == 1 and rejected[0].startswith(f"REJECTED runs[1]: policy {str(policy)!r}: ")
    assert refusal(kind) in rejected[0] and "Traceback" not in captured.out + captured.err


def test_runs_verifies_only_the_runs_asked_for_and_says_so(board, monkeypatch, capsys):
    shutil.rmtree(board.parents[1] / "checkpoints/ppo/seed1")  # not asked for: neither loaded nor evaluated
    calls = replay(monkeypatch, board)
    assert verify(str(board), "--runs", "0", "2") == 0
    out = capsys.readouterr().out
    assert [call["seed"] for call in calls] == [0, 2] and "runs[1]" not in out
    assert out.splitlines()[-1] == (f"VERIFIED {board}: every metric of runs 0, 2 of 3 only (--runs; the others were not "
                                    "re-evaluated) is within tolerance")
    assert verify(str(board), "--runs", "3") == 2
    assert capsys.readouterr().err == "error: --runs 3: expected distinct run indices from 0 to 2\n"


def test_a_hub_id_run_is_loaded_and_evaluated_at_its_revision(board, monkeypatch, capsys):
    data = json.loads(board.read_text())
    data["runs"][0].update(policy="owner/name", revision=REVISION)
    board.write_text(json.dumps(data))
    loaded = []
    real = evaluate_module.load_policy

    def load_policy(env_id: str, spec: str, *, revision: str | None = None, temperature: float = 1.0) -> LoadedPolicy:
        loaded.append((spec, revision))
        return LoadedPolicy(1, None, None) if spec == "owner/name" else real(env_id, spec, revision=revision)  # offline: no hub

    monkeypatch.setattr(evaluate_module, "load_policy", load_policy)
    calls = replay(monkeypatch, board)
    assert verify(str(board), "--runs", "0", "1") == 0
    assert loaded[0] == ("owner/name", REVISION) and loaded[1][1] is None
    assert [(call["policy"], call["revision"]) for call in calls][0] == ("owner/name", REVISION) and calls[1]["revision"] is None


def test_policy_overrides_the_submissions_locations_relative_to_the_current_directory(
    board, tmp_path, monkeypatch, capsys, restore_threads
):
    calls = replay(monkeypatch, board)
    monkeypatch.chdir(board.parents[1])
    assert verify(str(board), "--policy", "checkpoints/ppo/seed{seed}", "--threads", "1") == 0
    assert [call["policy"] for call in calls] == [f"checkpoints/ppo/seed{k}" for k in range(3)] and torch.get_num_threads() == 1
    assert verify(str(board), "--policy", "a", "b") == 2
    assert "--policy gives 2 paths for 3 runs" in capsys.readouterr().err
    assert verify(str(board), "--threads", "0") == 2
    assert capsys.readouterr().err == "error: --threads 0: expected a number of CPU threads >= 1\n"


def test_a_submission_that_does_not_validate_is_rejected_before_anything_loads(board, monkeypatch, capsys):
    data = json.loads(board.read_text())
    data["runs"][2]["policy"] = "owner/name"  # a hub id without its revision
    board.write_text(json.dumps(data))
    monkeypatch.setattr(evaluate_module, "check_policies", lambda *a, **k: pytest.fail("loaded checkpoints of an invalid file"))
    assert verify(str(board)) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith('REJECTED runs[2].policy: "owner/name" reads as a hub id owner/name without "revision"')
    assert lines[-1] == f"REJECTED {board}: 1 problem(s); nothing was re-evaluated"


@pytest.mark.slow
def test_a_submission_written_from_another_directory_verifies_from_anywhere(tiny_policy, tiny_protocol, tmp_path, monkeypatch, capsys):
    """The real protocol (2 posts): evaluate in one directory, verify from the repository root and from the file's folder."""
    work, subs = tmp_path / "work", tmp_path / "subs"
    subs.mkdir()
    for seed in range(3):
        shutil.copytree(tiny_policy, work / f"runs/seed{seed}/final_policy")
        (work / f"runs/seed{seed}/summary.json").write_text(json.dumps({"command": f"rlhf-gym train --seed {seed}"}))
    monkeypatch.chdir(work)
    main(["evaluate", "--env", ENV, "--policy", *[f"runs/seed{k}/final_policy" for k in range(3)], "--seed", "0", "1", "2",
          "--agent", "Tiny random policy", "--training-env-steps", "100", "--submission", "../subs/tiny.json"])
    data = json.loads((subs / "tiny.json").read_text())
    assert data["runs"][0]["policy"] == "../work/runs/seed0/final_policy"
    assert data["runs"][2]["training_command"] == "rlhf-gym train --seed 2"
    capsys.readouterr()
    monkeypatch.chdir(REPO_ROOT)
    assert verify(str(subs / "tiny.json"), "--runs", "0") == 0
    out = capsys.readouterr().out
    assert "runs[0] (seed 0, ../work/runs/seed0/final_policy): every metric within tolerance" in out
    assert ["gold", "+0.0000", "+0.0000", "0.0200"] in [line.split() for line in out.splitlines()]  # same machine: exact
    monkeypatch.chdir(subs)
    assert verify("tiny.json", "--runs", "2") == 0
    assert "VERIFIED tiny.json: every metric of runs 2 of 3 only" in capsys.readouterr().out
