"""What a training run leaves behind: TensorBoard scalars and the learning-curve plot.

Shared by every agent of the package so that runs look alike: scalars under namespaced
tags (``charts/``, ``losses/``, ``eval/``, as in CleanRL), hyper-parameters logged once as
a table, and one PNG with proxy reward, gold score and KL against env steps.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import EngFormatter  # noqa: E402
from torch.utils.tensorboard import SummaryWriter  # noqa: E402


class RunLogger:
    """TensorBoard writer for one run folder."""

    def __init__(self, run_dir: Path, config: dict[str, Any], purge_step: int | None = None) -> None:
        self.writer = SummaryWriter(log_dir=str(Path(run_dir) / "tensorboard"), purge_step=purge_step)
        if purge_step is None:
            table = "\n".join(f"|{key}|{value}|" for key, value in config.items())
            self.writer.add_text("hyperparameters", f"|param|value|\n|-|-|\n{table}")

    def scalars(self, prefix: str, values: dict[str, float], step: int) -> None:
        for key, value in values.items():
            if key != "env_steps":
                self.writer.add_scalar(f"{prefix}/{key}", value, step)

    def close(self) -> None:
        self.writer.close()


def plot_training_curves(history: list[dict[str, float]], evals: list[dict[str, float]], path: Path, title: str) -> None:
    """Proxy reward, gold score and KL vs env steps: training batches (lines) and evals (dots)."""
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for ax, key, label in zip(axes, ("proxy_reward", "gold", "kl"), ("proxy reward (normalised)", "gold score", "KL(pi || pi_ref), nats/episode")):
        if history:
            ax.plot([h["env_steps"] for h in history], [h[key] for h in history], color="tab:blue", alpha=0.6, label="train batches")
        if evals:
            ax.plot([e["env_steps"] for e in evals], [e[key] for e in evals], "o-", color="tab:red", label="valid split")
        ax.set_xlabel("env steps (generated tokens)")
        ax.xaxis.set_major_formatter(EngFormatter(sep=""))  # 200k, not 200000 run into its neighbours
        ax.set_title(label)
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _paired_figures(paired: dict[str, Any] | None) -> dict[str, Any]:
    """summary.json's paired gold change (a `PairedGold` as a dict), when the run measured one."""
    if not paired:
        return {}
    return {
        # Final policy minus the SFT policy, post by post on the same valid posts and sampling
        # stream (common random numbers): the figure to read; the standard error is that of the
        # per-post differences.
        "gold_improvement_paired": paired["change"],
        "gold_improvement_paired_sem": paired["sem"],
        "gold_final_paired": paired["policy_gold"],
        "gold_baseline_paired": paired["baseline_gold"],
        "paired_posts": paired["posts"],
    }


def finish_run(
    run_dir: Path, agent: str, config: Any, state: dict[str, Any], model: Any, tokenizer: Any, title: str
) -> dict[str, Any]:
    """Write what every finished run leaves: ``summary.json``, ``final_policy/`` (an ordinary
    Hugging Face checkpoint of ``model`` and ``tokenizer``), the PNG, and a result line.

    ``state`` holds ``env_steps``, ``iteration``, ``wall_time``, ``history`` and ``evals``.
    """
    first, last = state["evals"][0], state["evals"][-1]
    summary = {
        "agent": agent,
        "env": config.env,
        "seed": config.seed,
        "env_steps": state["env_steps"],
        "iterations": state["iteration"],
        "wall_time_seconds": round(state["wall_time"], 1),
        "initial": first,
        "final": last,
        "gold_improvement": last["gold"] - first["gold"],
        # Standard error of that change, the two evaluations taken as independent samples. They
        # share prompts and sampling seed, so the true error is smaller: an upper bound that
        # says how far a change on this many episodes can be read.
        "gold_improvement_sem": math.hypot(first.get("gold_sem", math.nan), last.get("gold_sem", math.nan)),
        **_paired_figures(state.get("paired")),
        "evals": state["evals"],  # every valid-split evaluation: the learning curve
        "config": asdict(config),
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    model.save_pretrained(run_dir / "final_policy")
    tokenizer.save_pretrained(run_dir / "final_policy")
    plot_training_curves(state["history"], state["evals"], run_dir / "training_curves.png", title=title)
    if "gold_improvement_paired" in summary:
        gold_line = (f"valid gold {summary['gold_baseline_paired']:.3f} -> {summary['gold_final_paired']:.3f} "
                     f"({summary['gold_improvement_paired']:+.3f} ± {summary['gold_improvement_paired_sem']:.3f} "
                     f"s.e., paired vs SFT on {summary['paired_posts']} posts)")
    else:
        gold_line = (f"valid gold {first['gold']:.3f} -> {last['gold']:.3f} ({summary['gold_improvement']:+.3f} "
                     f"± {summary['gold_improvement_sem']:.3f} s.e.)")
    print(
        f"done: {state['env_steps']} env steps in {summary['wall_time_seconds']:.0f} s | {gold_line} | proxy "
        f"{first['proxy_reward']:+.3f} -> {last['proxy_reward']:+.3f} | KL {last['kl']:.2f} | {run_dir}"
    )
    return summary
