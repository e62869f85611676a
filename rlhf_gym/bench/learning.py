"""P4, learning per wall-clock second: paired gold gain against training seconds, per trainer.

Our PPO, RLOO and GRPO (``rlhf-gym train --agent ppo|rloo|grpo``), SB3's PPO
(``--agent sb3-ppo``) and TRL's PPO (trl 1.12, with our PPO's settings: 64 prompts, 4
epochs of 4 minibatches, 64 new tokens, `rlhf_gym.bench.trl_settings`) each train on
RLHF-Summarize-v0 for the same wall-clock budget, one after the other, in a worker process
of their own (`rlhf_gym.bench.trl_worker`; set-up is not counted). A `BudgetPacer` saves the
policy at the first iteration end past each mark (a third and two thirds of the budget)
and at the budget. Each snapshot is then evaluated against the SFT policy on the same valid
posts with the same sampling stream (`rlhf_gym.env.rollout.paired_gold` at the seed of every
run's final paired evaluation, `rlhf_gym.agents.common.PAIRED_SEED`); TRL's snapshots are
ordinary Hugging Face folders (safetensors) and load as our `CausalLMPolicy`. The PNG shows
gold gain (with standard-error bars) against training seconds, one line per trainer, from
(0, 0): the SFT policy itself.

The trainers run one at a time, not interleaved: a budget is wall-clock time, so a busy
machine shortens every trainer's run, and the plot is only as fair as the machine was quiet.

    python -m rlhf_gym.bench.learning --quick --out-dir runs/bench     # 20 s per trainer, 128 posts
    python -m rlhf_gym.bench.learning --out-dir runs/bench             # 60 s per trainer, 512 posts
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rlhf_gym.bench.trl_install import TRL_FOR, TRLUnavailableError, ensure_trl
from rlhf_gym.bench.trl_settings import TrainingSettings, default_settings
from rlhf_gym.bench.trl_worker import WorkerError, WorkerHandle, worker_command, worker_environment

TRAINERS: tuple[str, ...] = ("ppo", "rloo", "grpo", "sb3-ppo", "trl-ppo")
"""The trainers compared: ours, SB3's PPO, and TRL's PPO."""

MARKS = (1 / 3, 2 / 3)  # snapshots at these fractions of the budget, and at the budget
EVAL_BATCH = 64  # valid-split episodes sampled together in the paired evaluation


def learning_per_second(
    *,
    quick: bool,
    device: str = "cpu",
    threads: int = 2,
    out_dir: Path,
    log: Callable[[str], None] = print,
    trainers: Sequence[str] = TRAINERS,
    budget: float | None = None,
    posts: int | None = None,
    env: str = "RLHF-Summarize-v0",
    install: bool = True,
) -> dict[str, Any]:
    """Train each of ``trainers`` for ``budget`` seconds, evaluate its snapshots, plot gold gain vs seconds.

    Args:
        quick: a 20 s budget and 128 posts (else 60 s and 512), unless given.
        device: torch device of training and evaluation.
        threads: torch CPU threads.
        out_dir: the PNG (``learning_per_second.png``), ``learning_per_second.json`` and the
            workers' folders (logs, snapshots) go here.
        log: where progress lines go.
        trainers: which of `TRAINERS`.
        budget: training seconds per trainer.
        posts: valid posts of each paired evaluation.
        env: the task.
        install: install a missing TRL with pip (False: fail instead).

    Returns:
        JSON-able: ``{"budget", "posts", "png", "trainers": {name: {"points": [...], ...}}}``,
        each point ``{"seconds", "iteration", "gold_change", "sem", "posts"}``, the first (0, 0).

    Raises:
        TRLUnavailableError: TRL is needed, missing and cannot be installed.
        WorkerError: a worker failed (the message ends with its log).
    """
    unknown = sorted(set(trainers) - set(TRAINERS))
    if unknown:
        raise ValueError(f"unknown trainers {unknown}; choose from {TRAINERS}")
    budget = budget if budget is not None else (20.0 if quick else 60.0)
    posts = posts if posts is not None else (128 if quick else 512)
    out_dir.mkdir(parents=True, exist_ok=True)
    runs: dict[str, dict[str, Any]] = {}
    for name in trainers:
        log(f"P4 {name}: training for {budget:.0f} s")
        runs[name] = train_for_budget(name, budget, out_dir / name, device=device, threads=threads, env=env, install=install)
        seconds = ", ".join(f"{snapshot['seconds']:.1f}" for snapshot in runs[name]["snapshots"])
        log(f"P4 {name}: {runs[name]['iterations']} iterations, snapshots at {seconds} s")
    results = {name: {**run, "points": evaluate_snapshots(run["snapshots"], env=env, posts=posts, device=device, threads=threads, log=log)}
               for name, run in runs.items()}
    png = out_dir / "learning_per_second.png"
    plot_learning(results, png, title=f"Gold gain vs training seconds on {env} (paired vs SFT, {posts} valid posts)")
    result = {"budget": budget, "posts": posts, "env": env, "device": device, "threads": threads, "png": str(png), "trainers": results}
    (out_dir / "learning_per_second.json").write_text(json.dumps(result, indent=2))
    log(f"P4: {png}")
    return result


def trainer_settings(env: str, device: str, threads: int, iterations: int) -> TrainingSettings:
    """PPO's settings at the issue's sizes: our PPO's and TRL's (`rlhf_gym.bench.trl_settings`)."""
    return default_settings("ppo", quick=False, iterations=iterations, device=device, threads=threads, env=env)


def train_for_budget(name: str, budget: float, work_dir: Path, *, device: str, threads: int, env: str,
                     install: bool = True) -> dict[str, Any]:
    """Run one trainer's worker in budget mode; its ``finished`` message (``snapshots``, ``iterations``)."""
    marks = ",".join(f"{fraction * budget:.3f}" for fraction in MARKS)
    budget_args = ["--budget", str(budget), "--marks", marks]
    iterations = max(8, int(4 * budget))  # TRL's dataset: more batches than it can train on in the budget
    if name in ("ppo", "rloo", "grpo"):
        from rlhf_gym.agents.common import GroupAgentConfig

        settings = default_settings(name, quick=False, iterations=iterations, device=device, threads=threads, env=env)
        # Our agents as they ship: the P3 settings turn the group agents' missing-EOS penalty off to match TRL's.
        overrides = {} if name == "ppo" else {"missing_eos_penalty": GroupAgentConfig().missing_eos_penalty}
        argv = worker_command("ours", "budget", settings, work_dir, [*budget_args, "--overrides", json.dumps(overrides)])
        environment = worker_environment(None)
    elif name == "sb3-ppo":
        argv = worker_command("sb3", "budget", trainer_settings(env, device, threads, iterations), work_dir, budget_args)
        environment = worker_environment(None)
    else:
        folder = ensure_trl(TRL_FOR["ppo"], install=install)
        argv = worker_command("trl", "budget", trainer_settings(env, device, threads, iterations), work_dir, budget_args)
        environment = worker_environment(folder)
    worker = WorkerHandle(name, argv, environment, work_dir / "worker.log", timeout=3 * budget + 900)
    with worker:
        return worker.finish()


def evaluate_snapshots(snapshots: list[dict[str, Any]], *, env: str, posts: int, device: str, threads: int,
                       log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Paired gold change against the SFT policy of each snapshot, after the point (0, 0)."""
    import torch

    from rlhf_gym.agents.common import PAIRED_SEED, make_env
    from rlhf_gym.env.rollout import paired_gold
    from rlhf_gym.lm.policy import CausalLMPolicy
    from rlhf_gym.registration import get_task

    torch.set_num_threads(threads)
    task = get_task(env)
    eval_env = make_env(env, min(EVAL_BATCH, posts), "valid", device=device)
    sft = task.sft_policy(device=device).eval()
    points = [{"seconds": 0.0, "iteration": 0, "gold_change": 0.0, "sem": 0.0, "posts": posts}]
    for snapshot in snapshots:
        policy = CausalLMPolicy.from_pretrained(snapshot["path"], temperature=task.temperature, local_files_only=True).to(device).eval()
        paired = paired_gold(eval_env, policy, sft, posts=posts, seed=PAIRED_SEED)
        points.append({"seconds": snapshot["seconds"], "iteration": snapshot["iteration"], "gold_change": paired.change,
                       "sem": paired.sem, "posts": paired.posts})
        log(f"  {snapshot['path']}: {snapshot['seconds']:.1f} s, gold {paired.change:+.4f} ± {paired.sem:.4f}")
    eval_env.close()
    return points


def plot_learning(results: dict[str, dict[str, Any]], path: Path, title: str) -> None:
    """Gold gain (± one standard error) against training seconds, one line per trainer."""
    import matplotlib

    matplotlib.use("Agg")  # files only
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for name, result in results.items():
        points = result["points"]
        ax.errorbar([p["seconds"] for p in points], [p["gold_change"] for p in points], yerr=[p["sem"] for p in points],
                    marker="o", capsize=3, label=f"{name} ({result['iterations']} iterations)")
    ax.axhline(0.0, color="grey", linewidth=0.8)
    ax.set_xlabel("training seconds (wall clock, set-up excluded)")
    ax.set_ylabel("gold change vs SFT policy (paired)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="P4: paired gold gain per wall-clock second of training, per trainer")
    parser.add_argument("--quick", action="store_true", help="20 s per trainer and 128 posts")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out-dir", type=Path, required=True)
    parser.add_argument("--trainers", nargs="+", choices=TRAINERS, default=list(TRAINERS))
    parser.add_argument("--budget", type=float, default=None, help="training seconds per trainer")
    parser.add_argument("--posts", type=int, default=None, help="valid posts per paired evaluation")
    parser.add_argument("--no-install", action="store_true", help="fail instead of installing a missing TRL")
    args = parser.parse_args(argv)
    if args.budget is not None and not (math.isfinite(args.budget) and args.budget > 0):
        parser.error(f"--budget must be a number of seconds > 0, got {args.budget}")
    try:
        learning_per_second(quick=args.quick, device=args.device, threads=args.threads, out_dir=args.out_dir, trainers=args.trainers,
                            budget=args.budget, posts=args.posts, install=not args.no_install)
    except (TRLUnavailableError, WorkerError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
