"""P3, training speed: one iteration of our PPO, RLOO and GRPO against TRL's trainers.

Each algorithm is compared with TRL's trainer on the same models (the task's shipped SFT
policy and preference model), the same prompts in the same order, batch, epochs,
minibatches, response budget, temperature, learning rate and KL coefficient
(`rlhf_gym.bench.trl_settings`): PPO against trl 1.12's ``PPOTrainer`` (the last TRL with
PPO), RLOO and GRPO against trl 1.16's. Each side trains in a long-lived worker process
(`rlhf_gym.bench.trl_worker`; model loading and the first iteration are not timed) that
runs one iteration per command and pauses in between, and `rlhf_gym.bench.interleave.compare`
alternates them, A B A B, after a warm-up pair. The reported ratio is ours over TRL's
speed, the median over the pairs of TRL's seconds per iteration over ours; the issue's
goal is 1.5x for each algorithm.

TRL is no dependency of the package: it is installed on demand into ``.bench/trl-VERSION``
(`rlhf_gym.bench.trl_install.ensure_trl`), and only TRL's worker has it on its path. Both
workers run offline (``HF_HUB_OFFLINE=1``).

Full: PPO on 64 prompts, 4 epochs of 4 minibatches, 64 new tokens (the issue's measurement);
RLOO and GRPO on 16 prompts x 4 completions. Quick: a quarter of the batch and 24 new
tokens, still five timed pairs after one warm-up pair (aimed at about two minutes for all
three on two idle cores; not yet timed on an idle machine).

    python -m rlhf_gym.bench.training --quick                 # all three, quick
    python -m rlhf_gym.bench.training --algorithms ppo --out p3.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rlhf_gym.bench.interleave import MIN_PAIRS, Side, compare
from rlhf_gym.bench.trl_install import TRL_FOR, TRLUnavailableError, ensure_trl
from rlhf_gym.bench.trl_settings import ALGORITHMS, TrainingSettings, default_settings, known_differences, settings_table
from rlhf_gym.bench.trl_worker import WorkerError, WorkerHandle, worker_command, worker_environment

GOAL = 1.5  # the goal: ours at least 1.5x TRL's speed, for each algorithm


def compare_training(
    *,
    quick: bool,
    device: str = "cpu",
    threads: int = 2,
    log: Callable[[str], None] = print,
    algorithms: Sequence[str] = ALGORITHMS,
    pairs: int = MIN_PAIRS,
    warmup: int = 1,
    work_dir: Path | None = None,
    install: bool = True,
) -> dict[str, Any]:
    """P3 for each of ``algorithms``: our iteration's speed over TRL's, interleaved.

    Args:
        quick: the quick sizes (see the module docstring) instead of the issue's.
        device: torch device of both sides (``"cpu"``, ``"cuda"``).
        threads: torch CPU threads of each side.
        log: where progress lines go.
        algorithms: which of ``ppo``, ``rloo``, ``grpo``.
        pairs: timed pairs per algorithm (the median of their ratios is reported).
        warmup: untimed pairs first.
        work_dir: where the workers write their logs and run folders (default: a temporary
            folder, removed after a successful run, kept after a failure).
        install: install a missing TRL with pip (False: fail instead).

    Returns:
        JSON-able: ``{"quick", "device", "threads", "goal", "algorithms": {name: result}}``,
        each result as `compare_settings` returns it.

    Raises:
        TRLUnavailableError: TRL is missing and cannot be installed.
        WorkerError: a worker failed (the message ends with its log).
    """
    iterations = 1 + warmup + pairs + 1  # the untimed first, the warm-up and timed ones, one spare
    settings = [default_settings(a, quick=quick, iterations=iterations, device=device, threads=threads) for a in algorithms]
    for version in sorted({TRL_FOR[a] for a in algorithms}):
        log(f"P3: trl {version} in {ensure_trl(version, install=install)}")
    own_dir = work_dir is None
    root = Path(tempfile.mkdtemp(prefix="rlhf-bench-p3-")) if work_dir is None else work_dir
    results = {s.algorithm: compare_settings(s, root / s.algorithm, pairs=pairs, warmup=warmup, log=log, install=install)
               for s in settings}
    if own_dir:
        shutil.rmtree(root, ignore_errors=True)
    return {"quick": quick, "device": device, "threads": threads, "goal": GOAL, "algorithms": results}


def compare_settings(
    settings: TrainingSettings, work_dir: Path, *, pairs: int = MIN_PAIRS, warmup: int = 1, log: Callable[[str], None] = print,
    install: bool = True,
) -> dict[str, Any]:
    """One algorithm's comparison: both workers started, then ``warmup`` + ``pairs`` interleaved pairs.

    Returns:
        ``ratio`` (ours over TRL's speed: the median pairwise TRL seconds over ours),
        ``ours_seconds`` and ``trl_seconds`` (each side's median seconds per iteration),
        ``ratios`` (each pair's), ``meets_goal``, ``trl_version``, ``settings`` (the
        `TrainingSettings`), ``matched`` (`settings_table` of what each worker reported),
        ``unmatched`` (its unequal rows' names), ``known_differences`` and ``comparison``
        (every sample).
    """
    if settings.iterations < 2 + warmup + pairs:
        raise ValueError(f"settings.iterations ({settings.iterations}) must cover the first iteration, {warmup} warm-up and "
                         f"{pairs} timed ones")
    version = TRL_FOR[settings.algorithm]
    trl_folder = ensure_trl(version, install=install)
    log(f"P3 {settings.algorithm}: starting our worker and TRL {version}'s ({settings.num_prompts} prompts x {settings.group_size}, "
        f"{settings.max_new_tokens} new tokens, {settings.num_epochs} epochs of {settings.num_minibatches} minibatches)")
    ours = WorkerHandle("ours", worker_command("ours", "command", settings, work_dir / "ours"), worker_environment(None),
                        work_dir / "ours.log")
    trl = WorkerHandle(f"trl {version}", worker_command("trl", "command", settings, work_dir / "trl"), worker_environment(trl_folder),
                       work_dir / "trl.log")
    with ours, trl:
        ours_info, trl_info = ours.wait_ready()["settings"], dict(trl.wait_ready()["settings"])
        trl_info.pop("trl version", None)
        comparison = compare(Side("ours", ours.run), Side(f"trl {version}", trl.run), pairs=pairs, warmup=warmup)
    table = settings_table(ours_info, trl_info)
    result = {
        "ratio": comparison.ratio,
        "ours_seconds": statistics.median(s.seconds for s in comparison.a_samples),
        "trl_seconds": statistics.median(s.seconds for s in comparison.b_samples),
        "ratios": comparison.ratios,
        "goal": GOAL,
        "meets_goal": comparison.ratio >= GOAL,
        "trl_version": version,
        "settings": settings.to_json(),
        "matched": table,
        "unmatched": [row["setting"] for row in table if not row["equal"]],
        "known_differences": known_differences(settings.algorithm),
        "comparison": comparison.to_json(),
    }
    log(f"P3 {settings.algorithm}: ours {result['ours_seconds']:.2f} s/iteration, trl {version} {result['trl_seconds']:.2f} s/iteration: "
        f"ours at {result['ratio']:.2f}x TRL's speed (median of {pairs} pairs; goal {GOAL}x)"
        + (f"; settings that differ: {', '.join(result['unmatched'])}" if result["unmatched"] else ""))
    return result


def format_table(result: dict[str, Any]) -> str:
    """A Markdown table of a `compare_training` result: one row per algorithm."""
    lines = ["| algorithm | ours s/iteration | TRL s/iteration | TRL | ours / TRL speed | pairs | goal met |",
             "|---|---:|---:|---|---:|---:|---|"]
    for name, r in result["algorithms"].items():
        lines.append(f"| {name} | {r['ours_seconds']:.2f} | {r['trl_seconds']:.2f} | {r['trl_version']} | {r['ratio']:.2f}x | "
                     f"{len(r['ratios'])} | {'yes' if r['meets_goal'] else 'no'} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="P3: our PPO, RLOO and GRPO against TRL's trainers, one iteration, interleaved")
    parser.add_argument("--quick", action="store_true", help="quarter batch and 24 new tokens")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--algorithms", nargs="+", choices=ALGORITHMS, default=list(ALGORITHMS))
    parser.add_argument("--pairs", type=int, default=MIN_PAIRS, help="timed pairs per algorithm")
    parser.add_argument("--work-dir", type=Path, default=None, help="keep the workers' logs and run folders here")
    parser.add_argument("--no-install", action="store_true", help="fail instead of installing a missing TRL")
    parser.add_argument("--out", type=Path, default=None, help="write the JSON result here")
    args = parser.parse_args(argv)
    try:
        result = compare_training(quick=args.quick, device=args.device, threads=args.threads, algorithms=args.algorithms,
                                  pairs=args.pairs, work_dir=args.work_dir, install=not args.no_install)
    except (TRLUnavailableError, WorkerError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(format_table(result))
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
