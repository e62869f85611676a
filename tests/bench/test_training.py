"""P3 and P4's machinery: the worker protocol, the pacers, the iteration hook, the matched
settings, installing TRL, and (when ``.bench/`` holds TRL) the workers end to end.

No test asserts a time: these machines are shared and noisy (docs/performance.md).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from rlhf_gym.bench import trl_install
from rlhf_gym.bench.trl_install import TRL_FOR, TRLUnavailableError, ensure_trl
from rlhf_gym.bench.trl_pacing import BudgetPacer, StopRun
from rlhf_gym.bench.trl_settings import (
    ALGORITHMS,
    NEVER,
    TrainingSettings,
    known_differences,
    our_config,
    our_effective,
    settings_table,
    steps_per_iteration,
    trl_arguments,
    trl_effective,
)
from rlhf_gym.bench.trl_worker import WorkerError, WorkerHandle, worker_command, worker_environment
from rlhf_gym.env.vector_env import TokenVectorEnv

REPO = Path(__file__).resolve().parents[2]
BENCH_DIR = REPO / ".bench"

# A training loop of no cost, paced like a real worker: each iteration appends to `done`, and
# each reply carries how many iterations have run, so a reply shows whether any ran unasked.
FAKE_WORKER = textwrap.dedent("""
    import sys
    from rlhf_gym.bench.trl_pacing import Channel, CommandPacer, StopRun
    channel = Channel.for_process()
    done = []
    pacer = CommandPacer(channel, {"side": "fake"}, extra=lambda: {"iterations": float(len(done))})
    print("library chatter on stdout must not reach the protocol")
    try:
        while True:
            done.append(1)
            pacer.iteration_end(0.0, lambda path: None)
    except StopRun:
        print("stopped after", len(done), file=sys.stderr)
""")


def tiny_settings(algorithm: str, **overrides) -> TrainingSettings:
    group = dict(ppo=1, rloo=2, grpo=2)[algorithm]
    values = dict(num_prompts=2, group_size=group, max_new_tokens=4, num_epochs=1 if algorithm == "rloo" else 2,
                  num_minibatches=2, learning_rate=3e-5, kl_coef=0.05, temperature=0.7, iterations=6, threads=1)
    return TrainingSettings(algorithm, **{**values, **overrides})


# The protocol --------------------------------------------------------------------------
def test_a_worker_runs_one_iteration_per_command_and_waits_in_between(tmp_path):
    argv = [sys.executable, "-c", FAKE_WORKER]
    with WorkerHandle("fake", argv, worker_environment(None), tmp_path / "fake.log") as worker:
        assert worker.wait_ready()["settings"] == {"side": "fake"}
        counts = []
        for index in range(3):
            subprocess.run([sys.executable, "-c", "import time; time.sleep(0.2)"], check=True)  # the worker idles meanwhile
            sample = worker.run(index)
            assert sample.work == 1.0 and sample.seconds >= 0
            counts.append(sample.extra["iterations"])
    # The first iteration (set-up) ran before `ready`; then exactly one per command, none unasked.
    assert counts == [2.0, 3.0, 4.0]
    assert worker.process.returncode == 0
    log = (tmp_path / "fake.log").read_text()
    assert "library chatter" in log and "stopped after 4" in log


def test_a_dead_worker_is_an_error_that_shows_its_log(tmp_path):
    argv = [sys.executable, "-c", "import sys; print('no such model', file=sys.stderr); sys.exit(3)"]
    with WorkerHandle("broken", argv, worker_environment(None), tmp_path / "broken.log") as worker:
        with pytest.raises(WorkerError, match=r"exited with status 3(.|\n)*no such model"):
            worker.wait_ready()


def test_budget_pacer_snapshots_at_each_mark_and_stops_at_the_budget(tmp_path):
    saved = []
    pacer = BudgetPacer(budget=10.0, marks=[2.5, 5.0, 7.5], folder=tmp_path)

    def save(path: Path) -> None:
        saved.append(path.name)

    for clock in (1.0, 3.0, 4.0, 8.0):  # 8.0 passes two marks at once: one snapshot stands for both
        pacer.iteration_end(clock, save)
    with pytest.raises(StopRun):
        pacer.iteration_end(11.0, save)  # the budget: a last snapshot, then the run ends
    assert saved == ["snapshot-0", "snapshot-1", "snapshot-2"]
    assert [(s["iteration"], s["marks"]) for s in pacer.snapshots] == [(2, [2.5]), (4, [5.0, 7.5]), (5, [])]
    # Its own time is not training time: each snapshot's seconds are at most the caller's clock.
    assert all(s["seconds"] <= clock for s, clock in zip(pacer.snapshots, (3.0, 8.0, 11.0)))


def test_worker_environment_puts_trl_on_the_path_of_trl_workers_only(tmp_path):
    assert "trl-9" not in worker_environment(None).get("PYTHONPATH", "")
    env = worker_environment(tmp_path / "trl-9")
    assert env["PYTHONPATH"].split(":")[0] == str((tmp_path / "trl-9").resolve())
    assert env["HF_HUB_OFFLINE"] == "1"


# Matched settings ------------------------------------------------------------------------
MUST_MATCH = ("prompts per iteration", "completions per prompt", "episodes per iteration", "epochs", "minibatches per epoch",
              "optimizer steps per iteration", "max new tokens", "stop token", "temperature", "learning rate", "KL coefficient",
              "missing-EOS penalty", "precision", "gradient checkpointing", "Adam epsilon")


@pytest.mark.parametrize("quick", [True, False])
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_both_sides_get_the_same_batch_epochs_and_lengths(algorithm, quick, tmp_path):
    from rlhf_gym.bench.trl_settings import default_settings

    settings = default_settings(algorithm, quick=quick, iterations=7)
    config = our_config(settings, tmp_path)
    trl_args = types.SimpleNamespace(**trl_arguments(settings, tmp_path))  # TRL's config takes these as they are
    table = settings_table(our_effective(algorithm, config, settings.max_new_tokens), trl_effective(algorithm, trl_args))
    rows = {row["setting"]: row for row in table}
    for name in MUST_MATCH:
        assert rows[name]["equal"], rows[name]
    assert rows["episodes per iteration"]["ours"] == (64 if not quick else 16)
    assert rows["max new tokens"]["ours"] == (64 if not quick else 24)
    # What cannot be matched is listed, and only that.
    unequal = {row["setting"] for row in table if not row["equal"]}
    assert unequal == ({"gradient-norm clip"} if algorithm == "ppo" else set())
    assert any("gradient clipping" in note for note in known_differences(algorithm)) == (algorithm == "ppo")
    # Nothing but the timed work: no evaluation, paired evaluation or checkpoint while timing.
    assert (config.eval_every, config.checkpoint_every, config.paired_posts) == (NEVER, NEVER, 0)
    assert trl_args.per_device_train_batch_size * (1 if algorithm == "ppo" else trl_args.steps_per_generation) == settings.episodes
    assert steps_per_iteration(settings) == (1 if algorithm == "ppo" else settings.num_epochs * settings.num_minibatches)


def test_settings_table_flags_a_mismatch():
    rows = settings_table({"epochs": 4, "learning rate": 3e-5}, {"epochs": 4, "learning rate": 1e-5, "extra": "x"})
    assert [(r["setting"], r["equal"]) for r in rows] == [("epochs", True), ("learning rate", False), ("extra", False)]


def test_settings_reject_a_group_size_that_does_not_fit_the_algorithm():
    with pytest.raises(ValueError, match="group_size must be 1 for PPO"):
        tiny_settings("ppo", group_size=4)
    with pytest.raises(ValueError, match="num_minibatches"):
        tiny_settings("grpo", num_minibatches=3)


# Installing TRL --------------------------------------------------------------------------
def test_a_missing_trl_that_pip_cannot_install_is_a_one_line_error(tmp_path):
    failing_pip = (sys.executable, "-c", "import sys; sys.exit('ERROR: no route to the package index')")
    with pytest.raises(TRLUnavailableError) as error:
        ensure_trl("1.12.0", root=tmp_path, pip=failing_pip)
    message = str(error.value)
    assert "\n" not in message
    assert "no route to the package index" in message and str(tmp_path / "trl-1.12.0") in message
    assert "pip install --no-deps --target" in message  # how to do it by hand
    assert not list(tmp_path.iterdir())  # nothing half-installed left behind


def test_a_bogus_version_fails_in_pip_without_the_network(tmp_path):
    with pytest.raises(TRLUnavailableError, match="pip could not install trl not-a-version"):
        ensure_trl("not-a-version", root=tmp_path)


def test_without_install_a_missing_trl_is_an_error(tmp_path):
    with pytest.raises(TRLUnavailableError, match="not installed"):
        ensure_trl("1.16.0", root=tmp_path, install=False)


def test_an_install_counts_only_once_complete(tmp_path):
    (tmp_path / "trl-1.12.0" / "trl").mkdir(parents=True)
    (tmp_path / "trl-1.12.0" / "trl" / "__init__.py").write_text("")
    assert not trl_install.is_installed("1.12.0", tmp_path)  # an interrupted install is redone
    (tmp_path / "trl-1.12.0" / ".complete").write_text("")
    assert ensure_trl("1.12.0", root=tmp_path, install=False) == tmp_path / "trl-1.12.0"


# The iteration hook of our agents -------------------------------------------------------------
@pytest.fixture
def toy_env_id(toy_tokenizer, toy_preference_model, toy_prompt_source) -> str:
    """A toy task (P = 32, T = 4) behind ``gym.make_vec``."""

    def toy_gold_judge(prompts, responses):
        return np.zeros(len(responses))

    def make_vec(num_envs=1, split="train", **kwargs):
        kwargs.pop("reward_model", None)
        return TokenVectorEnv(num_envs, prompt_source=toy_prompt_source, tokenizer=toy_tokenizer, preference_model=toy_preference_model,
                              gold_judge=toy_gold_judge, max_prompt_tokens=32, max_new_tokens=4, **kwargs)

    env_id = "ToyBench-v0"
    gym.registry.pop(env_id, None)
    gym.register(env_id, entry_point=None, vector_entry_point=make_vec)
    yield env_id
    gym.registry.pop(env_id, None)


class _Enough(Exception):
    pass


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_the_iteration_hook_sees_every_iteration_and_can_end_the_run(algorithm, toy_env_id, toy_dir, tmp_path):
    import importlib

    from rlhf_gym.lm.policy import CausalLMPolicy

    module = importlib.import_module(f"rlhf_gym.agents.{algorithm}")
    sizes = dict(num_envs=4, num_minibatches=2, num_epochs=1) if algorithm == "ppo" else dict(num_prompts=2, group_size=2)
    config_class = {"ppo": "PPOConfig", "rloo": "RLOOConfig", "grpo": "GRPOConfig"}[algorithm]
    config = getattr(module, config_class)(
        env=toy_env_id, total_steps=NEVER, out=str(tmp_path / "run"), policy=str(toy_dir / "policy"), temperature=1.0, threads=1,
        eval_every=NEVER, eval_episodes=2, paired_posts=0, checkpoint_every=NEVER, **sizes)
    seen = []

    def on_iteration(state, policy):
        seen.append((state["iteration"], state["env_steps"] > 0, isinstance(policy, CausalLMPolicy)))
        if len(seen) == 3:
            raise _Enough

    with pytest.raises(_Enough):
        module.train(config, on_iteration=on_iteration)
    assert seen == [(1, True, True), (2, True, True), (3, True, True)]
    assert not (tmp_path / "run" / "summary.json").exists()  # ended by the hook: no final evaluation or summary


# End to end on the shipped assets -------------------------------------------------------------
def run_worker(side: str, settings: TrainingSettings, work: Path, commands: int = 2, trl_folder: Path | None = None):
    with WorkerHandle(side, worker_command(side, "command", settings, work / side), worker_environment(trl_folder),
                      work / f"{side}.log", timeout=600) as worker:
        info = worker.wait_ready()["settings"]
        samples = [worker.run(i) for i in range(commands)]
    return info, samples, worker.process.returncode


@pytest.mark.slow
def test_our_worker_times_iterations_on_the_shipped_task(tmp_path):
    info, samples, returncode = run_worker("ours", tiny_settings("ppo"), tmp_path)
    assert info["episodes per iteration"] == 2 and info["max new tokens"] == 4
    assert len(samples) == 2 and all(s.seconds > 0 and 1 <= s.extra["response_length"] <= 4 for s in samples)
    assert returncode == 0


def _trl_folder(algorithm: str) -> Path:
    version = TRL_FOR[algorithm]
    if not trl_install.is_installed(version, BENCH_DIR):
        pytest.skip(f"trl {version} is not installed in {BENCH_DIR} (python -m rlhf_gym.bench.trl_install)")
    return trl_install.trl_folder(version, BENCH_DIR)


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_trl_worker_runs_the_same_settings_as_ours(algorithm, tmp_path):
    folder = _trl_folder(algorithm)
    settings = tiny_settings(algorithm)
    trl_info, samples, returncode = run_worker("trl", settings, tmp_path, trl_folder=folder)
    ours_info, _, _ = run_worker("ours", settings, tmp_path, commands=1)
    assert trl_info.pop("trl version") == TRL_FOR[algorithm]
    rows = {r["setting"]: r for r in settings_table(ours_info, trl_info)}
    for name in (*MUST_MATCH, "torch threads"):
        assert rows[name]["equal"], rows[name]
    assert len(samples) == 2 and all(s.seconds > 0 for s in samples)
    assert returncode == 0


@pytest.mark.slow
def test_compare_settings_reports_the_ratio_of_interleaved_pairs(tmp_path, monkeypatch):
    from rlhf_gym.bench.training import compare_settings

    _trl_folder("grpo")
    monkeypatch.setenv(trl_install.ROOT_VARIABLE, str(BENCH_DIR))
    result = compare_settings(tiny_settings("grpo"), tmp_path, pairs=2, warmup=1, log=lambda line: None, install=False)
    assert len(result["ratios"]) == 2 and result["ratio"] > 0
    assert result["unmatched"] == [] and result["trl_version"] == TRL_FOR["grpo"]
    samples = result["comparison"]
    assert [len(samples["a_samples"]), len(samples["b_samples"])] == [2, 2]
    json.dumps(result)  # JSON-able as the report needs it


# P4 -------------------------------------------------------------------------------------
def test_a_snapshot_of_the_sft_policy_gains_exactly_nothing(tmp_path):
    from rlhf_gym.bench.learning import evaluate_snapshots
    from rlhf_gym.registration import get_task

    get_task("RLHF-Summarize-v0").sft_policy().save_pretrained(tmp_path / "snapshot-0")
    snapshot = {"seconds": 1.5, "iteration": 1, "path": str(tmp_path / "snapshot-0"), "marks": [1.0]}
    points = evaluate_snapshots([snapshot], env="RLHF-Summarize-v0", posts=4, device="cpu", threads=1, log=lambda line: None)
    assert points[0] == {"seconds": 0.0, "iteration": 0, "gold_change": 0.0, "sem": 0.0, "posts": 4}
    # The same policy on the same posts with the same sampling stream: the pairing is exact.
    assert points[1] == {"seconds": 1.5, "iteration": 1, "gold_change": 0.0, "sem": 0.0, "posts": 4}


def test_the_plot_has_a_line_per_trainer(tmp_path):
    from rlhf_gym.bench.learning import plot_learning

    points = [{"seconds": 0.0, "gold_change": 0.0, "sem": 0.0}, {"seconds": 20.0, "gold_change": 0.01, "sem": 0.004}]
    plot_learning({"ppo": {"points": points, "iterations": 4}, "trl-ppo": {"points": points, "iterations": 3}}, tmp_path / "p4.png",
                  title="test")
    assert (tmp_path / "p4.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_learning_per_second_trains_evaluates_and_plots_ours_and_trls(tmp_path, monkeypatch):
    from rlhf_gym.bench.learning import learning_per_second

    _trl_folder("ppo")
    monkeypatch.setenv(trl_install.ROOT_VARIABLE, str(BENCH_DIR))
    result = learning_per_second(quick=True, threads=1, out_dir=tmp_path, trainers=["rloo", "trl-ppo"], budget=2.0, posts=4,
                                 log=lambda line: None, install=False)
    assert Path(result["png"]).is_file() and (tmp_path / "learning_per_second.json").is_file()
    for name in ("rloo", "trl-ppo"):
        points = result["trainers"][name]["points"]
        assert points[0]["seconds"] == 0.0 and len(points) >= 2
        assert points[-1]["seconds"] >= 2.0  # the last snapshot is taken once the budget is spent
        assert all(math.isfinite(p["gold_change"]) for p in points)  # TRL's safetensors loaded as our CausalLMPolicy


def test_the_module_imports_no_trl():
    # TRL is never a dependency: importing the bench modules must not load it.
    code = ("import sys, rlhf_gym.bench.training, rlhf_gym.bench.trl_trainers, rlhf_gym.bench.trl_worker; "
            "print('trl' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


torch.set_num_threads(1)
