"""Rollout speed, our rollout through the env vs ``model.generate()`` plus one reward call: now P2 of ``rlhf-gym bench``.

A thin wrapper of `rlhf_gym.bench.rollout` (through `rlhf_gym.bench.run`), kept so old
commands still work: interleaved A/B runs on the same prompts, new tokens per second, the
median of pairwise ratios, with and without the time spent scoring. It prints the figures
and leaves docs/performance.md alone (``rlhf-gym bench --parts p2`` updates it).

    python benchmarks/rollout_vs_generate.py --quick
    python benchmarks/rollout_vs_generate.py --device cuda --bf16
"""

from __future__ import annotations

import tyro

from rlhf_gym.bench.run import DEFAULT_ENV, run


def main(
    quick: bool = False, device: str = "cpu", threads: int = 2, bf16: bool = False, env: str = DEFAULT_ENV,
    json_out: str | None = None,
) -> None:
    """P2 of ``rlhf-gym bench``.

    Args:
        quick: batch 32 instead of 64.
        device: where the env and the models run.
        threads: torch CPU threads.
        bf16: both sides under bf16 autocast.
        env: the env id.
        json_out: write the figures to this JSON file.
    """
    run(quick, device, json_out, threads, ["p2"], doc_path=None, bf16=bf16, env_id=env)


if __name__ == "__main__":
    tyro.cli(main)
