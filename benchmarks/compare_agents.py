"""Every agent of the package on the same env, env-step budget and seeds: a table and a plot.

Each (agent, seed) pair is one ordinary ``rlhf-gym train`` run (same code path, same run
folder contract) with nothing but ``--env``, ``--total-steps``, ``--seed`` and ``--out``
set, so every agent uses its documented defaults. Finished runs are skipped when their
``summary.json`` exists and interrupted ones resume from their checkpoint, so an
interrupted comparison continues where it stopped.

    python benchmarks/compare_agents.py                               # all agents, seeds 0 1 2
    python benchmarks/compare_agents.py --agents ppo sb3-ppo --total-steps 8192 --seeds 0 1 2

Writes ``<out>/comparison.md`` (mean ± std over seeds of the final valid-split gold score,
its change from the SFT start, proxy reward, KL, wall time) and ``<out>/comparison.png``
(valid-split gold score and proxy reward vs env steps, mean over seeds, one line per agent).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import tyro  # noqa: E402

from rlhf_gym.agents import AGENTS  # noqa: E402
from rlhf_gym.agents.common import latest_checkpoint  # noqa: E402


@dataclass
class Config:
    agents: list[str] = field(default_factory=lambda: list(AGENTS))  # agent names (rlhf-gym train --agent)
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])  # one run per agent and seed
    env: str = "RLHF-Summarize-v0"
    total_steps: int = 8192  # env steps per run, the same for every agent
    out: str = "runs/compare"  # run folders, table and plot
    train: bool = True  # False: only tabulate the finished runs (the table lists the missing ones)


def run_one(agent: str, seed: int, config: Config) -> dict[str, Any] | None:
    """Train ``agent`` with ``seed`` (or reuse a finished run) and return its summary.

    Returns None for a run that has not finished when ``config.train`` is False.
    """
    run_dir = Path(config.out) / agent / f"seed{seed}"
    summary_path = run_dir / "summary.json"
    if not summary_path.is_file():
        if not config.train:
            return None
        config_class, train = AGENTS[agent].load()
        resume = latest_checkpoint(run_dir) is not None  # an interrupted run continues; one with no checkpoint restarts
        train(config_class(env=config.env, total_steps=config.total_steps, seed=seed, out=str(run_dir), resume=resume,
                           overwrite=not resume))
    return json.loads(summary_path.read_text())


def mean_std(values: list[float]) -> str:
    return f"{np.mean(values):+.3f} ± {np.std(values):.3f}" if len(values) > 1 else f"{values[0]:+.3f}"


def paired_change(summaries: list[dict[str, Any]]) -> str:
    """Mean over seeds of the paired gold change against the SFT policy, with the standard
    error of that mean from the runs' own paired standard errors (seeds are independent)."""
    if not all("gold_improvement_paired" in s for s in summaries):
        return "—"
    changes = [s["gold_improvement_paired"] for s in summaries]
    sem = np.sqrt(np.sum(np.square([s["gold_improvement_paired_sem"] for s in summaries]))) / len(summaries)
    return f"{np.mean(changes):+.3f} ± {sem:.3f}"


def table(results: dict[str, list[dict[str, Any]]], config: Config) -> str:
    """Markdown table: one row per agent, mean ± std over seeds."""
    lines = [
        f"Env `{config.env}`, a budget of {config.total_steps:,} env steps per run (an agent stops "
        "after the iteration that reaches it: env steps is what it used), seeds "
        f"{config.seeds}; valid-split evaluation (fixed prompts, T as configured), mean ± std over seeds.",
        "",
        "| agent | env steps | gold (final) | gold change | gold change, paired (± s.e.) | proxy reward (final) "
        "| KL (final) | wall time (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for agent, summaries in results.items():
        finals = [s["final"] for s in summaries]
        lines.append(
            f"| {agent} | {np.mean([s['env_steps'] for s in summaries]):,.0f} "
            f"| {mean_std([f['gold'] for f in finals])} "
            f"| {mean_std([s['gold_improvement'] for s in summaries])} "
            f"| {paired_change(summaries)} "
            f"| {mean_std([f['proxy_reward'] for f in finals])} "
            f"| {mean_std([f['kl'] for f in finals])} "
            f"| {np.mean([s['wall_time_seconds'] for s in summaries]):.0f} |"
        )
    return "\n".join(lines) + "\n"


def plot(results: dict[str, list[dict[str, Any]]], path: Path) -> None:
    """Valid-split gold score and proxy reward vs env steps, mean over seeds per agent."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    for agent, summaries in results.items():
        length = min(len(s["evals"]) for s in summaries)  # seeds share the eval schedule
        steps = [e["env_steps"] for e in summaries[0]["evals"][:length]]
        for ax, key in zip(axes, ("gold", "proxy_reward")):
            curves = np.array([[e[key] for e in s["evals"][:length]] for s in summaries])
            ax.plot(steps, curves.mean(0), "o-", label=agent)
            if len(summaries) > 1:
                ax.fill_between(steps, curves.min(0), curves.max(0), alpha=0.15)
    for ax, title in zip(axes, ("gold score (valid)", "proxy reward (valid, normalised)")):
        ax.set_xlabel("env steps (generated tokens)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.suptitle("mean over seeds; band: min-max")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(config: Config) -> None:
    unknown = [a for a in config.agents if a not in AGENTS]
    if unknown:
        raise SystemExit(f"unknown agents {unknown}; choose from {list(AGENTS)}")
    runs = {agent: {seed: run_one(agent, seed, config) for seed in config.seeds} for agent in config.agents}
    results = {
        agent: [summary for summary in by_seed.values() if summary is not None]
        for agent, by_seed in runs.items()
        if any(summary is not None for summary in by_seed.values())
    }
    missing = [f"{agent} seed {seed}" for agent, by_seed in runs.items() for seed, s in by_seed.items() if s is None]
    text = table(results, config)
    if missing:
        text += f"\nNot run (not included above): {', '.join(missing)}.\n"
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "comparison.md").write_text(text)
    plot(results, out / "comparison.png")
    print(text)
    print(f"wrote {out / 'comparison.md'} and {out / 'comparison.png'}")


if __name__ == "__main__":
    main(tyro.cli(Config))
