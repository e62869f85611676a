"""``rlhf-gym bench``: run the chosen parts, one after another, and write the JSON and the page.

Parts, in the order they run:

- ``p1``: `rlhf_gym.bench.env_bookkeeping` (env steps/s against ``SyncVectorEnv``);
- ``p2``: `rlhf_gym.bench.rollout` (our rollout against ``generate()`` plus one reward call);
- ``p3``: ``rlhf_gym.bench.training.compare_training`` (our trainers against TRL's);
- ``p4``: ``rlhf_gym.bench.learning.learning_per_second`` (only without ``--quick``);
- ``memory``: `rlhf_gym.bench.memory` (peak RSS of the main job, RSS over a long env run).

Each part is imported when it runs. A part that cannot be imported or raises is recorded
as ``{"error": ...}`` (with its traceback) and the next part runs. The JSON is rewritten
after every part, so a long run keeps what it measured.

    rlhf-gym bench --quick
"""

from __future__ import annotations

import importlib
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

PARTS = ("p1", "p2", "p3", "p4", "memory")
DEFAULT_DOC = "docs/performance.md"
DEFAULT_ENV = "RLHF-Summarize-v0"  # the shipped default env, the one the README trains on
WORK_DIR = ".bench"  # P4's run folders

Log = Callable[[str], None]


def parse_parts(parts: Sequence[str]) -> list[str]:
    """The chosen parts in run order; each item may hold several, comma-separated.

    Example:
        >>> parse_parts(["memory", "p2,p1"])
        ['p1', 'p2', 'memory']

    Raises:
        ValueError: an unknown part, or none.
    """
    chosen = {name.strip().lower() for item in parts for name in str(item).split(",") if name.strip()}
    unknown = sorted(chosen - set(PARTS))
    if unknown:
        raise ValueError(f"--parts: unknown part(s) {', '.join(unknown)}; choose from {', '.join(PARTS)}")
    if not chosen:
        raise ValueError(f"--parts: choose at least one of {', '.join(PARTS)}")
    return [part for part in PARTS if part in chosen]


def bench_command(*, quick: bool, device: str, threads: int, parts: Sequence[str], bf16: bool = False, env_id: str = DEFAULT_ENV) -> str:
    """The command line that measures these figures (output paths left out: they change no figure).

    Example:
        >>> bench_command(quick=True, device="cpu", threads=2, parts=["p1"])
        'rlhf-gym bench --quick --device cpu --threads 2 --parts p1'
    """
    words = ["rlhf-gym", "bench"] + (["--quick"] if quick else []) + ["--device", device, "--threads", str(threads)]
    if bf16:
        words.append("--bf16")
    if env_id != DEFAULT_ENV:
        words += ["--env", env_id]
    if list(parts) != list(PARTS):
        words += ["--parts", *parts]
    return " ".join(words)


@dataclass(frozen=True)
class Context:
    """What every part is run with."""

    quick: bool
    device: str
    threads: int
    bf16: bool
    env_id: str
    work_dir: Path
    log: Log


def _p1(ctx: Context) -> dict[str, Any]:
    from rlhf_gym.bench.env_bookkeeping import env_bookkeeping

    return env_bookkeeping(quick=ctx.quick, device=ctx.device, env_id=ctx.env_id, log=ctx.log)


def _p2(ctx: Context) -> dict[str, Any]:
    from rlhf_gym.bench.rollout import rollout_comparison

    return rollout_comparison(quick=ctx.quick, device=ctx.device, env_id=ctx.env_id, bf16=ctx.bf16, log=ctx.log)


def _p3(ctx: Context) -> dict[str, Any]:
    training = importlib.import_module("rlhf_gym.bench.training")
    result = training.compare_training(quick=ctx.quick, device=ctx.device, threads=ctx.threads, log=ctx.log)
    return {"headline": training_headline(result), **result}


def training_headline(result: dict[str, Any]) -> list[dict[str, Any]]:
    """P3's table rows, one per algorithm, from ``{"goal", "algorithms": {name: {"ratio", ...}}}`` (its own if it has them)."""
    if "headline" in result:
        return list(result["headline"])
    goal = result.get("goal")
    rows = []
    for name, figures in result.get("algorithms", {}).items():
        ratio = figures.get("ratio")
        if ratio is None:
            continue
        detail = ""
        if "ours_seconds" in figures and "trl_seconds" in figures:
            detail = (f"{figures['ours_seconds']:.2f} vs {figures['trl_seconds']:.2f} s per iteration "
                      f"(TRL {figures.get('trl_version', '?')})")
        rows.append({"figure": f"P3 training iterations/s, ours / TRL, {name}", "ratio": ratio, "value": f"{ratio:.2f}x",
                     "goal": f">= {goal:g}x" if goal else None, "met": figures.get("meets_goal"), "detail": detail})
    return rows


def _p4(ctx: Context) -> dict[str, Any]:
    learning = importlib.import_module("rlhf_gym.bench.learning")
    out_dir = ctx.work_dir / "p4"
    out_dir.mkdir(parents=True, exist_ok=True)
    result = learning.learning_per_second(quick=ctx.quick, device=ctx.device, threads=ctx.threads, out_dir=out_dir, log=ctx.log)
    return {"headline": learning_headline(result), **result}


def learning_headline(result: dict[str, Any]) -> list[dict[str, Any]]:
    """P4's table rows: each trainer's last paired gold change, from ``{"budget", "trainers": {name: {"points": [...]}}}``."""
    if "headline" in result:
        return list(result["headline"])
    rows = []
    for name, figures in result.get("trainers", {}).items():
        points = figures.get("points") or []
        if not points:
            continue
        last = points[-1]
        rows.append({"figure": f"P4 gold change after {last.get('seconds', 0):.0f} s of training, {name}", "ratio": None,
                     "value": f"{last.get('gold_change', float('nan')):+.3f} ± {last.get('sem', float('nan')):.3f}",
                     "goal": None, "met": None,
                     "detail": f"paired vs SFT on {last.get('posts', '?')} valid posts; plot {result.get('png', '')}"})
    return rows


def _memory(ctx: Context) -> dict[str, Any]:
    from rlhf_gym.bench.memory import measure_memory

    return measure_memory(quick=ctx.quick, device=ctx.device, threads=ctx.threads, env_id=ctx.env_id, log=ctx.log)


RUNNERS: dict[str, Callable[[Context], dict[str, Any]]] = {"p1": _p1, "p2": _p2, "p3": _p3, "p4": _p4, "memory": _memory}


def run(
    quick: bool,
    device: str,
    json_path: str | None,
    threads: int,
    parts: list[str],
    *,
    doc_path: str | None = DEFAULT_DOC,
    bf16: bool = False,
    env_id: str = DEFAULT_ENV,
    work_dir: str = WORK_DIR,
    log: Log | None = None,
) -> dict[str, Any]:
    """Run ``parts`` and return every figure; write them to ``json_path`` and the page ``doc_path`` (None: neither).

    Args:
        quick: the small sizes (all parts together under 5 minutes on 2 CPU cores); P4 is skipped.
        device: where envs and models run (``cpu``, ``cuda``, ``cuda:1``).
        json_path: the JSON file of the whole run (rewritten after every part).
        threads: torch CPU threads (``torch.set_num_threads``), also the main job's ``--threads``.
        parts: which of `PARTS` to run (see `parse_parts`).
        doc_path: the markdown page whose marked section gets the table.
        bf16: P2 under bf16 autocast on both sides.
        env_id: the env of P1, P2 and the memory part.
        work_dir: where P4 writes its run folders.
        log: where progress lines go (default: printed with the elapsed time).

    Raises:
        ValueError: a bad ``parts`` or ``threads`` (before anything runs).
    """
    chosen = parse_parts(parts)
    if threads < 1:
        raise ValueError(f"--threads must be >= 1, got {threads}")
    import torch

    from rlhf_gym.bench.report import machine_info, update_doc, write_json

    torch.set_num_threads(threads)
    started = time.perf_counter()
    if log is None:
        def log(message: str) -> None:
            minutes, seconds = divmod(int(time.perf_counter() - started), 60)
            print(f"[bench {minutes}:{seconds:02d}] {message}", flush=True)

    ctx = Context(quick=quick, device=device, threads=threads, bf16=bf16, env_id=env_id, work_dir=Path(work_dir), log=log)
    results: dict[str, Any] = {
        "command": bench_command(quick=quick, device=device, threads=threads, parts=chosen, bf16=bf16, env_id=env_id),
        "date": datetime.now(timezone.utc).isoformat(timespec="minutes"),
        "quick": quick,
        "device": device,
        "threads": threads,
        "bf16": bf16,
        "env": env_id,
        "machine": machine_info(device),
        "parts": {},
    }
    for part in chosen:
        if part == "p4" and quick:
            results["parts"][part] = {"skipped": "P4 runs only without --quick"}
            log("p4: skipped (runs only without --quick)")
            continue
        log(f"{part}: start")
        part_start = time.perf_counter()
        try:
            result = dict(RUNNERS[part](ctx))
        except Exception as error:  # recorded, not raised: one failing part must not lose the others
            result = {"error": f"{type(error).__name__}: {error}".splitlines()[0], "traceback": traceback.format_exc()}
            log(f"{part}: error: {result['error']}")
        result["seconds"] = round(time.perf_counter() - part_start, 1)
        results["parts"][part] = result
        log(f"{part}: done in {result['seconds']:.0f} s")
        if json_path:
            write_json(results, json_path)
    results["seconds"] = round(time.perf_counter() - started, 1)
    if json_path:
        log(f"wrote {write_json(results, json_path)}")
    if doc_path:
        log(f"updated {update_doc(results, doc_path)}")
    return results


__all__ = ["DEFAULT_DOC", "PARTS", "RUNNERS", "bench_command", "parse_parts", "run"]
