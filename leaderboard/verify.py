"""Re-run the protocol on a submission's checkpoints: ``rlhf-gym leaderboard verify FILE``.

    rlhf-gym leaderboard verify leaderboard/submissions/sft.json
    rlhf-gym leaderboard verify my.json --policy 'runs/mine/seed{seed}/final_policy'

A submission passes when it validates and every reported metric of every run is within
`TOLERANCES` of what the protocol gives on that run's policy. The protocol is seeded, so on
the same machine a re-run reproduces a result to the last digit; the tolerances leave room
for another machine's floating-point order, which can flip a near-tied sampled token and so
change a few responses. A gold score inflated by 0.02 or more fails.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

TOLERANCES: dict[str, float] = {
    "gold": 0.02, "gold_change": 0.02, "gold_change_sem": 0.01, "win_rate": 0.02, "proxy_reward": 0.1, "kl": 0.1,
    "rouge_l": 0.02, "bleu": 2.0, "perplexity": 0.05, "distinct_1": 0.02, "distinct_2": 0.02, "response_length": 1.0,
    "eos_rate": 0.02,
}
"""Absolute tolerance of each metric (``perplexity``: relative)."""


def compare(reported: dict[str, Any], measured: dict[str, Any], where: str) -> list[str]:
    """One line per metric of ``reported`` that is off from ``measured`` beyond its tolerance."""
    problems = []
    for decoding, metrics in reported.items():
        for name, value in metrics.items():
            actual = measured[decoding][name]
            tolerance = TOLERANCES[name] * (abs(actual) if name == "perplexity" else 1.0)
            if not abs(value - actual) <= tolerance:
                problems.append(f"{where}.metrics.{decoding}.{name}: submitted {value:.4f}, re-evaluated {actual:.4f} "
                                f"(off by {abs(value - actual):.4f}, tolerance {tolerance:.4f})")
    return problems


def verify(path: str | Path, policies: Sequence[str] | None = None, device: str = "cpu") -> list[str]:
    """Validate ``path`` and re-evaluate each run; return the problems (empty: verified).

    Args:
        policies: where each run's policy is, overriding the submission's ``policy`` fields:
            one per run, or one template with ``{seed}``.
    """
    from rlhf_gym.leaderboard.evaluate import evaluate, parse_policy
    from rlhf_gym.leaderboard.validate import validate_submission

    problems = validate_submission(Path(path))
    if problems:
        return problems
    data = json.loads(Path(path).read_text())
    runs = data["runs"]
    if policies and len(policies) not in (1, len(runs)):
        return [f"--policy gives {len(policies)} paths for {len(runs)} runs; give one per run or one template with {{seed}}"]
    for index, run in enumerate(runs):
        where = f"runs[{index}]"
        policy = run["policy"]
        if policies:
            policy = (policies[0] if len(policies) == 1 else policies[index]).format(seed=run["seed"])
        location = parse_policy(policy)[1]  # best-of-N:PATH evaluates PATH's samples
        if not (Path(location).exists() or _looks_like_hub_id(location)):
            problems.append(f"{where}.policy: {policy!r} is not a local path (nor a hub id); pass its location with --policy")
            continue
        result = evaluate(data["env_id"], policy, seed=run["seed"], device=device)
        problems.extend(compare(run["metrics"], result["metrics"], where))
    return problems


def _looks_like_hub_id(name: str) -> bool:
    parts = name.split("/")
    return len(parts) == 2 and all(parts) and not name.startswith((".", "/"))


def verify_main(file: str, policy: list[str] | None = None, device: str = "cpu") -> int:
    """``rlhf-gym leaderboard verify``: print VERIFIED or each problem; the exit code."""
    problems = verify(file, policy, device=device)
    if problems:
        print(f"REJECTED {file}")
        for problem in problems:
            print(f"  {problem}")
        return 1
    print(f"VERIFIED {file}: every metric of every run is within tolerance")
    return 0
