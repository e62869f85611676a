"""SB3 rollout speed with and without the prompt cache (`rlhf_gym.lm.observation_reader.PromptCache`).

SB3 policies are stateless: at every env step they re-read the whole observation, and so
does the KL wrapper's reference. With ``cache_prompts`` both forward each prompt block
once per episode and only the response columns at each step. This times the same rollout
(the policy's forward under ``no_grad`` in eval mode, as SB3's ``collect_rollouts`` runs
it, then the env step through the KL wrapper) both ways, interleaved, and reports env
steps per second and their ratio (median over repeats).

    python benchmarks/sb3_rollout.py --num-envs 32 --steps 48 --repeats 3
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch
import tyro

import rlhf_gym
from rlhf_gym.agents.common import make_env, policy_path
from rlhf_gym.agents.sb3.policy import CausalLMActorCriticPolicy
from rlhf_gym.agents.sb3.vec_env import SB3VecEnv
from rlhf_gym.env.kl_penalty import KLRewardWrapper
from rlhf_gym.lm.policy import CausalLMPolicy


@dataclass
class Config:
    env: str = "RLHF-Summarize-v0"  # registered env id
    num_envs: int = 32  # sub-envs (SB3's default in rlhf-gym train)
    steps: int = 48  # env steps per timed rollout (SB3's n_steps)
    repeats: int = 3  # interleaved timed rollouts per side
    threads: int = 2
    seed: int = 0


def rollout_seconds(config: Config, cache_prompts: bool, seed: int) -> float:
    """Wall time of ``steps`` SB3-style rollout steps."""
    core = make_env(config.env, config.num_envs, "train", autoreset_mode="same_step", missing_eos_penalty=1.0)
    path = policy_path(config.env, None)
    reference = CausalLMPolicy.from_pretrained(path, temperature=rlhf_gym.get_task(config.env).temperature).eval().requires_grad_(False)
    venv = SB3VecEnv(KLRewardWrapper(core, reference, 0.05, cache_prompts=cache_prompts))
    policy = CausalLMActorCriticPolicy(
        venv.observation_space, venv.action_space, lambda _: 1e-5,
        model_name_or_path=path, prompt_width=core.max_prompt_tokens, cache_prompts=cache_prompts,
    )
    policy.set_training_mode(False)
    venv.seed(seed)
    obs = venv.reset()
    torch.manual_seed(seed)
    start = time.perf_counter()
    for _ in range(config.steps):
        with torch.no_grad():
            actions, _, _ = policy(policy.obs_to_tensor(obs)[0])
        obs, *_ = venv.step(actions.cpu().numpy())
    return time.perf_counter() - start


def main(config: Config) -> None:
    torch.set_num_threads(config.threads)
    rollout_seconds(Config(num_envs=config.num_envs, steps=2), True, config.seed)  # warm-up
    cached, full = [], []
    for r in range(config.repeats):
        cached.append(rollout_seconds(config, True, config.seed + r))
        full.append(rollout_seconds(config, False, config.seed + r))
    steps = config.steps * config.num_envs
    ratios = [f / c for c, f in zip(cached, full)]
    print(f"env steps/s: cached {steps / statistics.median(cached):.0f}, full re-encode {steps / statistics.median(full):.0f}")
    print(f"speed-up (median of interleaved pairs): {statistics.median(ratios):.2f}x (runs {min(ratios):.2f}-{max(ratios):.2f})")


if __name__ == "__main__":
    main(tyro.cli(Config))
