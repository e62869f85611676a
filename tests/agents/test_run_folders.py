"""Run folders hold one run: --resume needs a checkpoint and its config, a fresh run needs an
empty folder or --overwrite, and summary.json records the command line. For every agent."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from rlhf_gym.agents import AGENTS
from rlhf_gym.agents.common import RESUMABLE_FIELDS, RunFolderError, config_changes, launch_command, read_state

FAMILIES = ["ppo", "rloo", "grpo", "sb3-ppo"]  # one per train function: the SB3 agents share one


@pytest.fixture
def toy_env(register_toy_env) -> str:
    return register_toy_env("Toy-RunFolders-v0")


def _config(agent: str, env_id: str, toy_dir: Path, out: Path, **overrides: Any) -> Any:
    """A one-iteration config of ``agent`` on the toy env (``total_steps=1``: one iteration)."""
    factory, _ = AGENTS[agent].load()
    common = dict(env=env_id, policy=str(toy_dir / "policy"), out=str(out), total_steps=1, eval_episodes=8, paired_posts=0,
                  threads=1, seed=0, temperature=1.0, learning_rate=1e-3)
    family = {
        "ppo": dict(num_envs=8, num_minibatches=2, num_epochs=1),
        "rloo": dict(num_prompts=2, group_size=2),
        "grpo": dict(num_prompts=2, group_size=2, num_epochs=1),
    }.get(agent, dict(num_envs=4, n_steps=4, batch_size=16, n_epochs=1))
    return factory(**{**common, **family, **overrides})


def _train(agent: str, config: Any) -> dict[str, Any]:
    return AGENTS[agent].load()[1](config)


# Refusals: each happens before any model loads ------------------------------------------
@pytest.mark.parametrize("agent", list(AGENTS))
def test_resume_without_a_checkpoint_is_an_error_naming_the_folder(agent, toy_env, toy_dir, tmp_path):
    run = tmp_path / "run"
    for prepare in (lambda: None, lambda: run.mkdir(), lambda: (run / "tensorboard").mkdir()):  # none, empty, no checkpoint
        prepare()
        with pytest.raises(RunFolderError, match=f"--resume: {run} holds no checkpoint") as error:
            _train(agent, _config(agent, toy_env, toy_dir, run, resume=True))
        assert "\n" not in str(error.value)


@pytest.mark.parametrize("agent", list(AGENTS))
def test_a_fresh_run_refuses_a_folder_that_holds_a_run(agent, toy_env, toy_dir, tmp_path):
    run = tmp_path / "run"
    (run / "checkpoint").mkdir(parents=True)
    (run / "summary.json").write_text("{}")
    with pytest.raises(RunFolderError, match=f"{run} is not empty \\(checkpoint, summary.json\\): .*--resume.*--overwrite"):
        _train(agent, _config(agent, toy_env, toy_dir, run))
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint", "summary.json"]  # untouched


def test_an_out_that_is_a_file_is_refused(toy_env, toy_dir, tmp_path):
    (tmp_path / "run").write_text("not a folder")
    with pytest.raises(RunFolderError, match=f"--out {tmp_path / 'run'} is a file"):
        _train("rloo", _config("rloo", toy_env, toy_dir, tmp_path / "run", overwrite=True))


def test_overwrite_removes_only_what_a_run_writes(toy_env, toy_dir, tmp_path):
    run = tmp_path / "run"
    (run / "tensorboard").mkdir(parents=True)
    (run / "notes.txt").write_text("mine")
    with pytest.raises(RunFolderError, match=f"--overwrite removes only what a run writes, and {run} also holds notes.txt"):
        _train("ppo", _config("ppo", toy_env, toy_dir, run, overwrite=True))
    assert (run / "notes.txt").read_text() == "mine" and (run / "tensorboard").is_dir()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (dict(resume=True, overwrite=True), "--resume continues the run in .* and --overwrite deletes it"),
        (dict(force=True), "--force only lets --resume continue with a changed config"),
    ],
)
def test_contradictory_run_folder_flags_are_refused(flags, message, toy_env, toy_dir, tmp_path):
    with pytest.raises(RunFolderError, match=message):
        _train("grpo", _config("grpo", toy_env, toy_dir, tmp_path / "run", **flags))


def test_config_changes_list_each_field_outside_the_resumable_ones():
    old = {"seed": 0, "learning_rate": 1e-3, "policy": None, "total_steps": 10, "eval_every": 5}
    new = {"seed": 1, "learning_rate": 2e-3, "policy": "p", "total_steps": 20, "eval_every": 1, "kl_in": "loss"}
    assert config_changes(old, new) == [
        "seed: 0 -> 1", "learning_rate: 0.001 -> 0.002", "policy: None -> 'p'", "kl_in: <absent> -> 'loss'",
    ]
    assert {"total_steps", "eval_every", "checkpoint_every", "threads", "resume"} <= RESUMABLE_FIELDS
    assert not {"seed", "num_envs", "learning_rate", "eval_episodes", "env", "policy", "reward_model"} & RESUMABLE_FIELDS


def test_launch_command_quotes_the_arguments():
    argv = ["/venv/bin/rlhf-gym", "train", "--agent", "ppo", "--out", "runs/a b", "--kl-coef", "0.01"]
    assert launch_command(argv) == "rlhf-gym train --agent ppo --out 'runs/a b' --kl-coef 0.01"
    # torchrun -m rlhf_gym.cli ...: argv[0] is the CLI module's file
    assert launch_command(["/site-packages/rlhf_gym/cli.py", "train", "--agent", "grpo"]) == "rlhf-gym train --agent grpo"
    assert launch_command(["benchmarks/compare_agents.py", "--seeds", "0"]) == "python benchmarks/compare_agents.py --seeds 0"


# Real runs: a checkpoint, then resumes --------------------------------------------------
def _resume_checks(agent: str, toy_env: str, toy_dir: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    run = tmp_path / "run"
    config = _config(agent, toy_env, toy_dir, run)
    monkeypatch.setattr(sys, "argv", ["/venv/bin/rlhf-gym", "train", "--agent", agent, "--out", "my runs/x"])
    first = _train(agent, config)
    assert first["command"] == f"rlhf-gym train --agent {agent} --out 'my runs/x'"
    assert json.loads((run / "summary.json").read_text())["command"] == first["command"]
    state = read_state(run / "checkpoint")
    assert state["config"] == json.loads(json.dumps(dataclasses.asdict(config))) and state["iteration"] == 1

    # Another seed and learning rate: refused, each change listed, nothing written.
    changed = dataclasses.replace(config, resume=True, seed=1, learning_rate=2e-3, total_steps=10**6)
    with pytest.raises(RunFolderError, match=f"--resume: {run} was trained with another config "
                                             "\\(seed: 0 -> 1; learning_rate: 0.001 -> 0.002\\).*--force") as error:
        _train(agent, changed)
    assert "\n" not in str(error.value) and read_state(run / "checkpoint") == state

    # The budget and the cadence of evaluations and checkpoints may change.
    capsys.readouterr()
    allowed = dataclasses.replace(config, resume=True, total_steps=first["env_steps"] + 1, eval_every=3, checkpoint_every=2)
    resumed = _train(agent, allowed)
    assert resumed["iterations"] == 2 and resumed["initial"] == first["initial"]
    assert f"resuming {run} with total_steps: 1 -> {first['env_steps'] + 1}; eval_every:" in capsys.readouterr().out

    # --force continues with the changed config, says so, and the checkpoint records it.
    forced = dataclasses.replace(changed, total_steps=resumed["env_steps"] + 1, force=True)
    assert _train(agent, forced)["iterations"] == 3
    assert "warning: --force: resuming" in capsys.readouterr().err
    assert read_state(run / "checkpoint")["config"]["seed"] == 1

    # A checkpoint written before runs recorded their config resumes with a warning.
    state = read_state(run / "checkpoint")
    del state["config"]
    (run / "checkpoint" / "state.json").write_text(json.dumps(state))
    _train(agent, dataclasses.replace(forced, force=False, seed=5))  # nothing to check against: no refusal
    assert "records no config" in capsys.readouterr().err


def test_ppo_resume_refuses_another_config_and_accepts_bookkeeping_changes(toy_env, toy_dir, tmp_path, capsys, monkeypatch):
    _resume_checks("ppo", toy_env, toy_dir, tmp_path, capsys, monkeypatch)


@pytest.mark.slow
@pytest.mark.parametrize("agent", [a for a in FAMILIES if a != "ppo"])
def test_resume_refuses_another_config_and_accepts_bookkeeping_changes(agent, toy_env, toy_dir, tmp_path, capsys, monkeypatch):
    _resume_checks(agent, toy_env, toy_dir, tmp_path, capsys, monkeypatch)


def test_overwrite_leaves_one_run_in_the_folder(toy_env, toy_dir, tmp_path, capsys):
    run = tmp_path / "run"
    for folder in ("checkpoint", "tensorboard", "final_policy"):
        (run / folder).mkdir(parents=True)
    (run / "checkpoint" / "state.json").write_text(json.dumps({"iteration": 99}))
    (run / "tensorboard" / "events.out.tfevents.1.old").write_bytes(b"old")
    (run / "summary.json").write_text(json.dumps({"old": True}))
    (run / "training_curves.png").write_bytes(b"old")
    summary = _train("ppo", _config("ppo", toy_env, toy_dir, run, overwrite=True))
    assert f"--overwrite: removed the earlier run in {run}" in capsys.readouterr().out
    assert not (run / "tensorboard" / "events.out.tfevents.1.old").exists()
    assert len(list((run / "tensorboard").iterdir())) == 1  # this run's event file only
    assert "old" not in json.loads((run / "summary.json").read_text()) and summary["iterations"] == 1
    assert read_state(run / "checkpoint")["iteration"] == 1
    assert (run / "training_curves.png").stat().st_size > 1000
