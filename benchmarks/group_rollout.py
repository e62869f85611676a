"""Group rollouts: the shared prompt forwarded once per group vs once per row.

With ``group_size = k`` the k consecutive sub-envs of a group start from the same prompt
(what GRPO and RLOO sample). `collect_episodes` then prefills only each group's first
row and repeats its KV cache k times (``share_group_prompts=True``, the default): N/k
prompt forwards instead of N, the same episodes to float precision (issue 19). This
times both ways on the same prompts and sampling stream, interleaved (on, off, on, off,
...) in one process, and reports the median new tokens/s of each, the median of the
pairwise ratios (shared over unshared; STACK.md: the machines are noisy) and the share of
the rollout spent in the prefill. Scoring finished episodes (preference model, gold
judge) is inside both timings.

    python benchmarks/group_rollout.py --num-envs 64 --group-sizes 4 8 --repeats 3
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import torch
import tyro

import rlhf_gym
from rlhf_gym.env.rollout import collect_episodes
from rlhf_gym.lm.policy import CausalLMPolicy


@dataclass
class Config:
    env: str = "RLHF-Summarize-v0"  # registered env id
    num_envs: int = 64  # sub-envs N (a multiple of every group size)
    group_sizes: tuple[int, ...] = (4, 8)  # sub-envs per group k
    repeats: int = 3  # interleaved timed runs per side and group size
    temperature: float | None = None  # sampling temperature; None: the task's (0.7)
    threads: int = 2  # torch threads
    device: str = "cpu"
    seed: int = 0
    json_out: str | None = None  # optional path for the results


def main(config: Config) -> list[dict[str, Any]]:
    """Time `collect_episodes` with and without prompt sharing; one result row per group size."""
    torch.set_num_threads(config.threads)
    policy = rlhf_gym.get_task(config.env).sft_policy(config.device, config.temperature).eval()
    prefill_seconds = _time_prefill(policy, config.device)
    rows: list[dict[str, Any]] = []
    for k in config.group_sizes:
        env = gym.make_vec(
            config.env, num_envs=config.num_envs, group_size=k, autoreset_mode="disabled", device=config.device
        )
        for share in (True, False):  # warm-up
            time_rollout(env, policy, share=share, seed=config.seed, device=config.device, prefill_seconds=prefill_seconds)
        rates: dict[bool, list[float]] = {True: [], False: []}
        shares: dict[bool, list[float]] = {True: [], False: []}
        for repeat in range(config.repeats):
            seed = config.seed + 1 + repeat  # the same prompts and stream on both sides of a pair
            for share in (True, False):
                rate, prefill_share = time_rollout(
                    env, policy, share=share, seed=seed, device=config.device, prefill_seconds=prefill_seconds
                )
                rates[share].append(rate)
                shares[share].append(prefill_share)
            print(f"k={k} run {repeat}: shared {rates[True][-1]:8.0f} tok/s  unshared {rates[False][-1]:8.0f} tok/s  "
                  f"ratio {rates[True][-1] / rates[False][-1]:.2f}  (prefill {shares[True][-1]:.1%} vs "
                  f"{shares[False][-1]:.1%} of the rollout)", flush=True)
        rows.append({
            "num_envs": config.num_envs,
            "group_size": k,
            "prompt_forwards_shared": config.num_envs // k,
            "prompt_forwards_unshared": config.num_envs,
            "shared_tokens_per_s": statistics.median(rates[True]),
            "unshared_tokens_per_s": statistics.median(rates[False]),
            "ratio_median": statistics.median(a / b for a, b in zip(rates[True], rates[False])),
            "prefill_share_shared_median": statistics.median(shares[True]),
            "prefill_share_unshared_median": statistics.median(shares[False]),
            "repeats": config.repeats,
        })
    print(markdown_table(rows))
    if config.json_out:
        with open(config.json_out, "w") as handle:
            json.dump(rows, handle, indent=2)
    return rows


def time_rollout(
    env: Any, policy: CausalLMPolicy, *, share: bool, seed: int, device: str, prefill_seconds: list[float]
) -> tuple[float, float]:
    """One timed `collect_episodes`: new tokens per second and the prefill's share of the time."""
    prefill_seconds[0] = 0.0
    generator = torch.Generator(device).manual_seed(seed)
    start = time.perf_counter()
    batch = collect_episodes(env, policy, seed=seed, generator=generator, share_group_prompts=share)
    elapsed = time.perf_counter() - start
    return int(batch.response_mask.sum()) / elapsed, prefill_seconds[0] / elapsed


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The result rows as a markdown table."""
    lines = [
        "| N | k | prompt rows forwarded (shared / unshared) | shared tok/s | unshared tok/s | ratio (median) "
        "| prefill share (shared / unshared) |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['num_envs']} | {row['group_size']} | {row['prompt_forwards_shared']} / "
            f"{row['prompt_forwards_unshared']} | {row['shared_tokens_per_s']:,.0f} | "
            f"{row['unshared_tokens_per_s']:,.0f} | {row['ratio_median']:.2f} | "
            f"{row['prefill_share_shared_median']:.1%} / {row['prefill_share_unshared_median']:.1%} |"
        )
    return "\n".join(lines)


def _time_prefill(policy: CausalLMPolicy, device: str) -> list[float]:
    """Accumulate the seconds ``policy`` spends in `prefill` and `prefill_groups` (which
    calls `prefill`; only the outer call counts). Returns a one-element list the wrappers
    add to (reset it to 0 before a timed run)."""
    seconds, depth = [0.0], [0]
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)

    def timed(function: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            depth[0] += 1
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                depth[0] -= 1
                if depth[0] == 0:
                    sync()
                    seconds[0] += time.perf_counter() - start

        return wrapper

    policy.prefill = timed(policy.prefill)  # the instance's, not the class's
    policy.prefill_groups = timed(policy.prefill_groups)
    return seconds


if __name__ == "__main__":
    main(tyro.cli(Config))
