"""Env steps per second: `TokenVectorEnv` vs Gymnasium's `SyncVectorEnv` over N single envs.

Both sides run the default ``RLHF-Summarize-v0`` with random actions and score finished
episodes with the same `PreferenceModel` object, in the same process. Runs are
interleaved (A B A B ...) and the median of the pairwise ratios is reported, because
these machines are shared and noisy (STACK.md).

    python benchmarks/env_steps.py                       # N = 16, 64, 256
    python benchmarks/env_steps.py --num-envs 64 --repeats 5 --steps 96
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np
import torch
import tyro

import rlhf_gym  # noqa: F401  (registers the envs)


@dataclass
class Config:
    num_envs: list[int] = field(default_factory=lambda: [16, 64, 256])  # batch sizes to compare
    steps: int = 96  # vector steps per timed run (two full episodes at max_new_tokens=48)
    repeats: int = 3  # interleaved timed runs per side
    threads: int = 2  # torch threads (set explicitly for comparable numbers)
    seed: int = 0
    json_out: str | None = None  # optional path for the results


def time_env(env: gym.vector.VectorEnv, steps: int, seed: int, to_tensor: bool) -> float:
    """Env steps per second (sub-env steps, i.e. N per vector step) with random actions."""
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    vocab = env.single_action_space.n
    start = time.perf_counter()
    for _ in range(steps):
        actions = rng.integers(0, vocab, size=env.num_envs)
        env.step(torch.from_numpy(actions) if to_tensor else actions)
    return steps * env.num_envs / (time.perf_counter() - start)


def main(config: Config) -> None:
    torch.set_num_threads(config.threads)
    preference_model = rlhf_gym.get_task("RLHF-Summarize-v0").preference_model(torch.device("cpu"))
    results = []
    for n in config.num_envs:
        batched = gym.make_vec("RLHF-Summarize-v0", num_envs=n, reward_model=preference_model)
        sync = gym.make_vec(
            "RLHF-Summarize-v0",
            num_envs=n,
            vectorization_mode="sync",
            vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP},
            reward_model=preference_model,
        )
        time_env(batched, 4, config.seed, True)  # warm-up
        time_env(sync, 4, config.seed, False)
        ratios, batched_rates, sync_rates = [], [], []
        for repeat in range(config.repeats):
            b = time_env(batched, config.steps, config.seed + repeat, True)
            s = time_env(sync, config.steps, config.seed + repeat, False)
            batched_rates.append(b)
            sync_rates.append(s)
            ratios.append(b / s)
        row = {
            "num_envs": n,
            "token_vector_env_steps_per_s": statistics.median(batched_rates),
            "sync_vector_env_steps_per_s": statistics.median(sync_rates),
            "speedup_median": statistics.median(ratios),
        }
        results.append(row)
        print(
            f"N={n:4d}  TokenVectorEnv {row['token_vector_env_steps_per_s']:10.0f} steps/s  "
            f"SyncVectorEnv {row['sync_vector_env_steps_per_s']:9.0f} steps/s  "
            f"ratio {row['speedup_median']:.1f}x",
            flush=True,
        )
        batched.close()
        sync.close()
    if config.json_out:
        with open(config.json_out, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main(tyro.cli(Config))
