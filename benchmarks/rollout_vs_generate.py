"""Rollout speed: our PPO's KV-cached rollout through the env vs ``model.generate()``.

Both sides sample (temperature 0.7, no top-k/top-p) from the same model for the same batch
of prompts, up to the same number of new tokens, with a KV cache; each stops when every
row has ended. Throughput is new (non-padding) tokens per second. Runs are interleaved
and the median of pairwise ratios is reported (STACK.md: the machines are noisy). The
goal (issue 4) is a ratio >= 0.9: the env's bookkeeping and batched scoring cost little
next to the policy forward.

The env side also computes what ``generate()`` does not: the preference model's reward
(a forward over prompt and response of every finished row) and the gold judge. The time
spent in those two is measured too, and a second ratio without it isolates the env's
own overhead (bookkeeping, observations, the policy's KV-cache handling).

    python benchmarks/rollout_vs_generate.py --num-envs 64 --repeats 5
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


@dataclass
class Config:
    env: str = "RLHF-Summarize-v0"  # registered env id
    num_envs: int = 64  # batch size on both sides
    repeats: int = 5  # interleaved timed runs per side
    temperature: float | None = None  # sampling temperature on both sides; None: the task's (0.7)
    threads: int = 2  # torch threads
    device: str = "cpu"
    seed: int = 0
    json_out: str | None = None  # optional path for the results


def main(config: Config) -> None:
    torch.set_num_threads(config.threads)
    env = gym.make_vec(config.env, num_envs=config.num_envs, autoreset_mode="disabled", device=config.device)
    task = rlhf_gym.get_task(config.env)
    temperature = task.temperature if config.temperature is None else config.temperature
    policy = task.sft_policy(config.device, temperature)
    model = policy.model
    width = env.max_prompt_tokens
    scoring_seconds = _time_calls_of_reward_and_gold(env)

    def run_env(seed: int) -> tuple[int, float, float]:
        scoring_seconds[0] = 0.0
        start = time.perf_counter()
        batch = collect_episodes(env, policy, seed=seed, generator=torch.Generator(config.device).manual_seed(seed))
        return int(batch.response_mask.sum()), time.perf_counter() - start, scoring_seconds[0]

    def run_generate(seed: int) -> tuple[int, float]:
        obs, _ = env.reset(seed=seed)  # the same prompts, already tokenised and left-padded
        ids, mask = obs["input_ids"][:, :width], obs["attention_mask"][:, :width]
        torch.manual_seed(seed)
        start = time.perf_counter()
        with torch.no_grad():
            out = model.generate(
                input_ids=ids, attention_mask=mask, do_sample=True, temperature=temperature,
                top_k=0, top_p=1.0, max_new_tokens=env.max_new_tokens,
                pad_token_id=env.pad_token_id, eos_token_id=env.eos_token_id,
            )
        elapsed = time.perf_counter() - start
        new = out[:, width:]
        # tokens up to and including each row's first EOS
        is_eos = (new == env.eos_token_id).int()
        after_eos = (is_eos.cumsum(-1) - is_eos) > 0
        return int((~after_eos).sum()), elapsed

    run_env(config.seed), run_generate(config.seed)  # warm-up
    ratios, unscored_ratios, env_rates, gen_rates, scoring_shares = [], [], [], [], []
    for repeat in range(config.repeats):
        seed = config.seed + 1 + repeat
        n_env, t_env, t_scoring = run_env(seed)
        n_gen, t_gen = run_generate(seed)
        env_rates.append(n_env / t_env)
        gen_rates.append(n_gen / t_gen)
        ratios.append(env_rates[-1] / gen_rates[-1])
        unscored_ratios.append(n_env / (t_env - t_scoring) / gen_rates[-1])
        scoring_shares.append(t_scoring / t_env)
        print(f"run {repeat}: env rollout {env_rates[-1]:8.0f} tok/s  generate() {gen_rates[-1]:8.0f} tok/s  "
              f"ratio {ratios[-1]:.2f}  (reward and gold scoring {scoring_shares[-1]:.0%} of the env time; "
              f"ratio without it {unscored_ratios[-1]:.2f})", flush=True)
    result = {
        "num_envs": config.num_envs,
        "env_rollout_tokens_per_s": statistics.median(env_rates),
        "generate_tokens_per_s": statistics.median(gen_rates),
        "ratio_median": statistics.median(ratios),
        "scoring_share_of_env_time_median": statistics.median(scoring_shares),
        "ratio_without_scoring_median": statistics.median(unscored_ratios),
    }
    print(json.dumps(result, indent=2))
    if config.json_out:
        with open(config.json_out, "w") as handle:
            json.dump(result, handle, indent=2)


def _time_calls_of_reward_and_gold(env: Any) -> list[float]:
    """Accumulate the seconds ``env`` spends in its preference model and gold judge.

    Returns a one-element list the wrappers add to (reset it to 0 before a timed run).
    """
    seconds = [0.0]

    def timed(function: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                seconds[0] += time.perf_counter() - start

        return wrapper

    core = env.unwrapped
    core.preference_model.score = timed(core.preference_model.score)  # the instance's, not the class's
    if core.gold_judge is not None:
        core.gold_judge = timed(core.gold_judge)
    return seconds


if __name__ == "__main__":
    main(tyro.cli(Config))
