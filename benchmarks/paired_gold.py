"""Did training raise the gold score? Trained policies against the SFT policy, post by post.

A run's own evaluation (128 episodes by default) moves by a few hundredths between seeds
and CPUs, which is as large as the changes PPO makes on RLHF-Summarize-v0. This benchmark
samples every policy on the same valid posts with the same seeds (common random numbers:
the same prompts and the same sampling stream) and averages the per-post gold difference
against a baseline policy (the env's SFT policy by default). Its standard error is that of
the differences, ~0.009 on 1,024 posts, against ~0.03 for two unpaired 128-episode means.

    python benchmarks/paired_gold.py runs/ppo/final_policy runs/ppo_seed1/final_policy
    python benchmarks/paired_gold.py runs/ppo/final_policy --prompts 256 --out runs/paired
    python benchmarks/paired_gold.py runs/ppo/final_policy --baseline-greedy   # against greedy SFT

With ``--baseline-greedy`` the baseline decodes greedily (the trained policies still sample):
does RL beat what decoding alone buys from the SFT policy?
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
import tyro

import rlhf_gym  # noqa: F401
from rlhf_gym.agents.common import policy_path, protocol_temperature
from rlhf_gym.env.rollout import collect_episodes, paired_difference
from rlhf_gym.lm.policy import CausalLMPolicy


@dataclass
class Config:
    policies: tyro.conf.Positional[list[str]]  # trained policies (Hugging Face folders or hub ids)
    env: str = "RLHF-Summarize-v0"  # registered env id
    policy: str | None = None  # the baseline; default: the env's SFT policy
    split: str = "valid"  # prompt split
    prompts: int = 1024  # posts, one episode each per policy
    batch: int = 128  # episodes per rollout batch
    temperature: float | None = None  # sampling temperature; None: the task's protocol temperature (0.7)
    baseline_greedy: bool = False  # decode the baseline greedily (argmax) instead of sampling it
    seed: int = 0
    threads: int = 2
    out: str | None = None  # also write paired_gold.json here


def sample_scores(env: gym.vector.VectorEnv, path: str, config: Config, greedy: bool = False) -> dict[str, np.ndarray]:
    """Gold and proxy scores, (prompts,) each, of one episode per post, and the posts' prompt
    tokens (to check the pairing); batch ``b`` resets with
    seed ``seed + b * batch`` (sub-env keys never repeat, so no post is drawn twice by design)."""
    policy = CausalLMPolicy.from_pretrained(path, temperature=protocol_temperature(config.env, config.temperature)).eval()
    gold, proxy, prompts = [], [], []
    for batch_index in range(math.ceil(config.prompts / config.batch)):
        seed = config.seed + batch_index * config.batch
        batch = collect_episodes(env, policy, seed=seed, generator=torch.Generator().manual_seed(seed), greedy=greedy)
        gold.append(batch.gold.cpu().numpy())
        proxy.append(batch.preference.cpu().numpy())
        prompts.append(batch.input_ids[:, : env.max_prompt_tokens].cpu().numpy())
    return {name: np.concatenate(parts)[: config.prompts] for name, parts in
            (("gold", gold), ("proxy", proxy), ("prompts", prompts))}


def main(config: Config) -> list[dict[str, float | str]]:
    torch.set_num_threads(config.threads)
    env = gym.make_vec(config.env, num_envs=config.batch, split=config.split, autoreset_mode="disabled")
    baseline_path = policy_path(config.env, config.policy)
    baseline = sample_scores(env, baseline_path, config, greedy=config.baseline_greedy)
    rows: list[dict[str, float | str]] = []
    decoding = "greedy" if config.baseline_greedy else "sampled"
    temperature = protocol_temperature(config.env, config.temperature)
    print(f"{config.prompts} {config.split} posts, T={temperature}; baseline {baseline_path} ({decoding}): "
          f"gold {baseline['gold'].mean():.3f}, proxy {baseline['proxy'].mean():+.3f}")
    print("| policy | gold | gold vs baseline (paired) | proxy | proxy vs baseline (paired) |\n|---|---:|---:|---:|---:|")
    for path in config.policies:
        scores = sample_scores(env, path, config)
        if not np.array_equal(scores["prompts"], baseline["prompts"]):
            raise RuntimeError(f"{path} was sampled on other posts than the baseline; the comparison is unpaired")
        gold_change, gold_sem = paired_difference(scores["gold"], baseline["gold"])
        proxy_change, proxy_sem = paired_difference(scores["proxy"], baseline["proxy"])
        rows.append({"policy": path, "gold": float(scores["gold"].mean()), "gold_change": gold_change,
                     "gold_change_sem": gold_sem, "proxy": float(scores["proxy"].mean()),
                     "proxy_change": proxy_change, "proxy_change_sem": proxy_sem})
        print(f"| {path} | {rows[-1]['gold']:.3f} | {gold_change:+.3f} ± {gold_sem:.3f} | "
              f"{rows[-1]['proxy']:+.3f} | {proxy_change:+.3f} ± {proxy_sem:.3f} |")
    if config.out:
        out = Path(config.out)
        out.mkdir(parents=True, exist_ok=True)
        result = {"config": vars(config), "baseline": baseline_path, "baseline_gold": float(baseline["gold"].mean()),
                  "baseline_proxy": float(baseline["proxy"].mean()), "rows": rows}
        (out / "paired_gold.json").write_text(json.dumps(result, indent=2))
    return rows


if __name__ == "__main__":
    main(tyro.cli(Config))
