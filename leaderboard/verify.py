"""Re-run the protocol on a submission's checkpoints: ``rlhf-gym leaderboard verify FILE``.

    rlhf-gym leaderboard verify leaderboard/submissions/ppo.json
    rlhf-gym leaderboard verify leaderboard/submissions/ppo.json --runs 0      # one run only, quickly
    rlhf-gym leaderboard verify my.json --policy 'runs/mine/seed{seed}/final_policy'

What a maintainer runs before merging a submission (CI only validates the file). In order:

1. the file validates (`rlhf_gym.leaderboard.validate`), or nothing else happens;
2. every run's checkpoint is found and loads, and the protocol can evaluate it
   (`rlhf_gym.leaderboard.evaluate.load_policy`: safetensors, no remote code, the env's
   vocabulary and tokenizer), before any run is evaluated: a local path is resolved
   against the submission file's folder (whatever the current directory), a hub id is
   loaded at the run's ``revision``;
3. each run is re-evaluated, and each reported metric is compared with the re-run, within
   `TOLERANCES`; a table per run shows every deviation, whether it passes or not.

Each problem is one line, ``REJECTED <where>: <what>`` (``REJECTED runs[2]: ...``), without a
traceback. The protocol is seeded, so on the same machine a re-run reproduces a result to
the last digit; the tolerances leave room for another machine's floating-point order, which
can flip a near-tied sampled token and so change a few responses. A gold score inflated by
0.02 or more fails.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TOLERANCES: dict[str, float] = {
    "gold": 0.02, "gold_change": 0.02, "gold_change_sem": 0.01, "win_rate": 0.02, "proxy_reward": 0.1, "kl": 0.1,
    "rouge_l": 0.02, "bleu": 2.0, "perplexity": 0.05, "distinct_1": 0.02, "distinct_2": 0.02, "response_length": 1.0,
    "eos_rate": 0.02,
}
"""Absolute tolerance of each metric (``perplexity``: relative)."""
RELATIVE = frozenset({"perplexity"})
WORLD_METRIC_TOLERANCE = 0.02
"""Absolute tolerance of a world's own metric (`World.protocol_metrics`: rates such as
Dialogue's over-refusal, on the protocol's 256 posts)."""


def tolerance_of(metric: str) -> float:
    """The `TOLERANCES` entry of ``metric``, or `WORLD_METRIC_TOLERANCE` for a world's own."""
    return TOLERANCES.get(metric, WORLD_METRIC_TOLERANCE)


@dataclass(frozen=True)
class Deviation:
    """One metric of one decoding: what the submission says, what the re-run gives, and the tolerance."""

    decoding: str
    metric: str
    submitted: float
    measured: float

    @property
    def tolerance(self) -> float:
        """The absolute tolerance (`TOLERANCES`; relative ones scaled by the re-run's value)."""
        return tolerance_of(self.metric) * (abs(self.measured) if self.metric in RELATIVE else 1.0)

    @property
    def ok(self) -> bool:
        """Whether the re-run is within the tolerance of the submitted value."""
        return abs(self.measured - self.submitted) <= self.tolerance


@dataclass
class RunReport:
    """One re-evaluated run: its index, seed, policy and every metric's `Deviation`."""

    index: int
    seed: int
    policy: str
    deviations: list[Deviation] = field(default_factory=list)


@dataclass
class Verification:
    """What `verify` found.

    Attributes:
        problems: one line per problem, ``<where>: <what>``; empty: verified.
        runs: the indices of the runs checked (all, or those asked for).
        total: how many runs the submission has (0 if it did not validate).
        reports: the re-evaluated runs (empty when a problem stopped verification first).
        notes: lines worth reading that are no problem (a checkpoint without a tokenizer).
    """

    problems: list[str]
    runs: list[int] = field(default_factory=list)
    total: int = 0
    reports: list[RunReport] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def deviations(reported: dict[str, Any], measured: dict[str, Any]) -> list[Deviation]:
    """Every metric of ``reported`` (``{decoding: {metric: value}}``) against ``measured``. A
    world metric that is null on both sides (no case among the posts) agrees and is left out;
    null on one side only is a NaN deviation, beyond any tolerance."""
    def number(value: Any) -> float:
        return math.nan if value is None else float(value)

    return [Deviation(decoding, name, number(value), number(measured[decoding][name]))
            for decoding, metrics in reported.items() for name, value in metrics.items()
            if not (value is None and measured[decoding][name] is None)]


def verify(
    path: str | Path,
    policies: Sequence[str] | None = None,
    *,
    device: str = "cpu",
    runs: Sequence[int] | None = None,
    progress: bool = True,
) -> Verification:
    """Validate ``path``, check every checkpoint, then re-evaluate each run.

    Args:
        path: the submission file.
        policies: where each run's policy is, overriding the submission's ``policy`` fields
            (relative to the current directory, loaded as local folders): one per run, or
            one template with ``{seed}``.
        device: where the env and the models run.
        runs: the indices of the runs to verify (default: all).
        progress: show progress bars.

    Raises:
        ValueError: ``runs`` or ``policies`` do not fit the submission (a usage error).
    """
    from rlhf_gym.leaderboard.evaluate import check_policies, evaluate
    from rlhf_gym.leaderboard.policy_spec import decoding_prefix, resolve_local
    from rlhf_gym.leaderboard.validate import validate_submission

    path = Path(path)
    problems = validate_submission(path)
    if problems:
        return Verification(problems)
    data = json.loads(path.read_text(encoding="utf-8"))
    all_runs = data["runs"]
    selected = list(range(len(all_runs))) if runs is None else list(runs)
    bad = [i for i in selected if not 0 <= i < len(all_runs)]
    if bad or len(set(selected)) != len(selected) or not selected:
        raise ValueError(f"--runs {' '.join(map(str, selected))}: expected distinct run indices from 0 to {len(all_runs) - 1}")
    if policies and len(policies) not in (1, len(all_runs)):
        raise ValueError(f"--policy gives {len(policies)} paths for {len(all_runs)} runs; give one per run or one template with {{seed}}")
    specs: list[tuple[str, str | None]] = []
    for index in selected:
        run = all_runs[index]
        if policies:  # a local copy, as typed on the command line
            template = policies[0] if len(policies) == 1 else policies[index]
            specs.append((template.replace("{seed}", str(run["seed"])), None))
            continue
        revision = run.get("revision")
        prefix, location = decoding_prefix(run["policy"])
        if revision is None:  # a local path, relative to the submission's folder
            location = str(resolve_local(location, path.parent.resolve()))  # absolute: the same run from any directory
        specs.append((prefix + location, revision))
    failures, notes = check_policies(data["env_id"], specs)
    report = Verification([], selected, len(all_runs))
    for index, failure, note in zip(selected, failures, notes):
        if failure:
            report.problems.append(f"runs[{index}]: {failure}")
        if note:
            report.notes.append(f"runs[{index}]: {note}")
    if report.problems:
        return report
    for index, (spec, revision) in zip(selected, specs):
        run = all_runs[index]
        result = evaluate(data["env_id"], spec, seed=run["seed"], device=device, revision=revision, progress=progress)
        run_report = RunReport(index, run["seed"], run["policy"], deviations(run["metrics"], result["metrics"]))
        report.reports.append(run_report)
        report.problems.extend(
            f"runs[{index}].metrics.{d.decoding}.{d.metric}: submitted {d.submitted:.4f}, re-evaluated {d.measured:.4f} "
            f"(off by {abs(d.measured - d.submitted):.4f}, tolerance {d.tolerance:.4f})"
            for d in run_report.deviations if not d.ok
        )
    return report


def deviation_table(run: RunReport) -> list[str]:
    """A compact table of one run's deviations (re-run minus submitted) against the tolerances.

    A deviation beyond its tolerance is marked ``!``.
    """
    metrics = list(dict.fromkeys(d.metric for d in run.deviations))
    by_key = {(d.decoding, d.metric): d for d in run.deviations}
    failing = sum(not d.ok for d in run.deviations)
    verdict = "every metric within tolerance" if not failing else f"{failing} metric(s) beyond tolerance (!)"
    lines = [f"runs[{run.index}] (seed {run.seed}, {run.policy}): {verdict}",
             f"  {'metric':<16} {'sampled dev':>12} {'greedy dev':>12} {'tolerance':>11}"]
    for metric in metrics:
        cells = []
        for decoding in ("sampled", "greedy"):
            d = by_key.get((decoding, metric))
            cells.append(f"{'-':>12}" if d is None else f"{d.measured - d.submitted:>+11.4f}{' ' if d.ok else '!'}")
        tolerance = f"{tolerance_of(metric):.0%} rel." if metric in RELATIVE else f"{tolerance_of(metric):.4f}"
        lines.append(f"  {metric:<16} {cells[0]} {cells[1]} {tolerance:>11}")
    return lines


def verify_main(
    file: str, policy: Sequence[str] | None = None, *, device: str = "cpu", runs: Sequence[int] | None = None, threads: int = 2
) -> int:
    """``rlhf-gym leaderboard verify``: print the deviation tables and VERIFIED, or each problem
    as ``REJECTED <where>: <what>``; returns the exit code (0 verified, 1 rejected, 2 usage)."""
    import torch

    if threads < 1:
        print(f"error: --threads {threads}: expected a number of CPU threads >= 1", file=sys.stderr)
        return 2
    torch.set_num_threads(threads)
    try:
        report = verify(file, policy, device=device, runs=runs)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for note in report.notes if report.reports else ():  # when a checkpoint was refused, the refusal is what matters
        print(f"note: {note}")
    for run in report.reports:
        print("\n".join(deviation_table(run)))
    scope = (f"runs {', '.join(map(str, report.runs))} of {report.total} only (--runs; the others were not re-evaluated)"
             if runs is not None else f"all {report.total} runs")
    if report.problems:
        for problem in report.problems:
            print(f"REJECTED {problem}")
        stage = "re-evaluated " + scope if report.reports else "nothing was re-evaluated"
        print(f"REJECTED {file}: {len(report.problems)} problem(s); {stage}")
        return 1
    print(f"VERIFIED {file}: every metric of {scope} is within tolerance")
    return 0
