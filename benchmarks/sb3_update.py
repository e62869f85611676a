"""SB3 update speed with and without shared prefixes, on the same rollout buffer.

An SB3 policy is stateless per sample, so an update minibatch holding k steps of one
episode used to run k full-context forwards (and backwards) where one suffices:
`rlhf_gym.lm.observation_reader.shared_prefix_hosts` forwards the latest step and reads the earlier
ones from it. This collects one real rollout (the default env, SFT policy and KL reward
wrapper, the agent's default ``num_envs`` and ``n_steps``), then times one update epoch
over that buffer with sharing off and on, interleaved, and reports samples/s and the
median ratio (STACK.md: the machines are noisy).

    python benchmarks/sb3_update.py --algo ppo --repeats 2
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass

import torch
import tyro
from stable_baselines3.common.vec_env import VecMonitor

from rlhf_gym.agents.common import make_env, policy_path, protocol_temperature
from rlhf_gym.agents.sb3.train import ALGOS, SB3Config, build_model
from rlhf_gym.agents.sb3.vec_env import SB3VecEnv
from rlhf_gym.env.kl_penalty import KLRewardWrapper
from rlhf_gym.lm.policy import CausalLMPolicy


@dataclass
class Config:
    algo: str = "ppo"  # ppo | a2c (TRPO and MaskablePPO share PPO's minibatch update path)
    num_envs: int = 32  # the agents' default
    n_steps: int = 48  # the agents' default
    repeats: int = 2  # interleaved timed epochs per side
    threads: int = 2
    seed: int = 0
    json_out: str | None = None


def main(config: Config) -> None:
    if config.algo not in ("ppo", "a2c"):
        raise ValueError(f"--algo must be ppo or a2c (one of {ALGOS} with a plain update), got {config.algo!r}")
    torch.set_num_threads(config.threads)
    agent = SB3Config(algo=config.algo, num_envs=config.num_envs, n_steps=config.n_steps, n_epochs=1,  # type: ignore[arg-type]
                      seed=config.seed)
    core = make_env(agent.env, agent.num_envs, "train", autoreset_mode="same_step", missing_eos_penalty=agent.missing_eos_penalty)
    path = policy_path(agent.env, agent.policy)
    temperature = protocol_temperature(agent.env, agent.temperature)
    reference = CausalLMPolicy.from_pretrained(path, temperature=temperature).eval().requires_grad_(False)
    venv = VecMonitor(SB3VecEnv(KLRewardWrapper(core, reference, agent.kl_coef)))
    model = build_model(agent, venv, path, core.max_prompt_tokens, temperature)

    start = time.perf_counter()
    _, callback = model._setup_learn(agent.n_steps * agent.num_envs, None)  # noqa: SLF001
    callback.on_training_start(locals(), globals())
    model.collect_rollouts(model.env, callback, model.rollout_buffer, n_rollout_steps=agent.n_steps)  # type: ignore[attr-defined]
    rollout_seconds = time.perf_counter() - start
    samples = agent.n_steps * agent.num_envs
    extractors = {model.policy.pi_features_extractor, model.policy.vf_features_extractor}  # type: ignore[attr-defined]

    def timed_epoch(share: bool) -> float:
        for extractor in extractors:
            extractor.share_prefixes = share
        started = time.perf_counter()
        model.train()
        return samples / (time.perf_counter() - started)

    rates: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(config.repeats):
        for share in (False, True):
            rates[share].append(timed_epoch(share))
    ratios = [on / off for on, off in zip(rates[True], rates[False], strict=True)]
    result = {
        "algo": config.algo, "samples": samples, "rollout_env_steps_per_s": samples / rollout_seconds,
        "update_samples_per_s_unshared": rates[False], "update_samples_per_s_shared": rates[True],
        "median_ratio": statistics.median(ratios), "threads": config.threads,
    }
    print(f"{config.algo}: rollout {samples / rollout_seconds:.0f} env steps/s | update epoch, samples/s: "
          f"unshared {statistics.median(rates[False]):.0f}, shared {statistics.median(rates[True]):.0f} "
          f"| median ratio {result['median_ratio']:.1f}x")
    if config.json_out:
        with open(config.json_out, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main(tyro.cli(Config))
