"""Env steps per second, `TokenVectorEnv` vs Gymnasium's `SyncVectorEnv`: now P1 of ``rlhf-gym bench``.

A thin wrapper of `rlhf_gym.bench.env_bookkeeping` (through `rlhf_gym.bench.run`), kept so
old commands still work: interleaved A/B runs, the median of pairwise ratios, a constant
reward for the bookkeeping alone and the shipped preference model for the share of time
spent scoring. It prints the figures and leaves docs/performance.md alone
(``rlhf-gym bench --parts p1`` updates it).

    python benchmarks/env_steps.py --quick
    python benchmarks/env_steps.py --json-out p1.json
"""

from __future__ import annotations

import tyro

from rlhf_gym.bench.run import DEFAULT_ENV, run


def main(quick: bool = False, device: str = "cpu", threads: int = 2, env: str = DEFAULT_ENV, json_out: str | None = None) -> None:
    """P1 of ``rlhf-gym bench``.

    Args:
        quick: N = 64 and 256 instead of 16, 64, 256 and 1024.
        device: where the envs run.
        threads: torch CPU threads.
        env: the env id.
        json_out: write the figures to this JSON file.
    """
    run(quick, device, json_out, threads, ["p1"], doc_path=None, env_id=env)


if __name__ == "__main__":
    tyro.cli(main)
