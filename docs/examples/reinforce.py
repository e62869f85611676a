"""REINFORCE with a KL penalty on an rlhf-gym env, written from the public API alone.

    python docs/examples/reinforce.py --iterations 30

Each iteration samples one response per sub-env with the KV-cached policy, scores the batch
with the env's reward minus beta * KL(pi || pi_SFT), and takes one policy-gradient step
with the batch mean as baseline (Williams 1992; the KL penalty of Ziegler et al. 2019).
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import torch
import tyro

import rlhf_gym
from rlhf_gym import collect_episodes, per_token_kl


@dataclass
class Args:
    env: str = "RLHF-Summarize-v0"  # any env of the suite
    iterations: int = 30  # policy-gradient steps
    num_envs: int = 64  # episodes per batch
    learning_rate: float = 1e-5
    kl_coef: float = 0.05  # beta
    seed: int = 0
    device: str = "cpu"


def main(args: Args) -> list[dict[str, float]]:
    torch.manual_seed(args.seed)
    task = rlhf_gym.get_task(args.env)  # the shipped SFT policy, reward model, gold judge, temperature
    env = gym.make_vec(args.env, num_envs=args.num_envs, autoreset_mode="disabled", device=args.device)
    policy = task.sft_policy(args.device)  # samples at the protocol's temperature
    reference = task.sft_policy(args.device).eval().requires_grad_(False)
    optimizer = torch.optim.Adam(policy.parameters(), lr=args.learning_rate)
    prompt_width = env.max_prompt_tokens  # responses start at this column of the observation
    history = []
    for iteration in range(args.iterations):
        seed = (args.seed * 1_000_003 + iteration) * args.num_envs  # fresh prompts every batch
        policy.eval()  # rollout: one KV-cached token per step until every row has finished
        batch = collect_episodes(env, policy, seed=seed, generator=torch.Generator(args.device).manual_seed(seed))
        logprobs, _ = policy.token_logprobs(batch.input_ids, batch.attention_mask, prompt_width)
        with torch.no_grad():
            ref_logprobs, _ = reference.token_logprobs(batch.input_ids, batch.attention_mask, prompt_width)
            kl = per_token_kl(batch.logprobs, ref_logprobs, batch.response_mask).sum(-1)  # (N,) nats
            returns = batch.scores - args.kl_coef * kl  # the env's reward minus beta * KL
            advantages = returns - returns.mean()
        loss = -(advantages * (logprobs * batch.response_mask).sum(-1)).mean()
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
        optimizer.step()
        history.append({"reward": batch.scores.mean().item(), "gold": batch.gold.nanmean().item(), "kl": kl.mean().item()})
        print(f"iteration {iteration}: " + " ".join(f"{k}={v:+.3f}" for k, v in history[-1].items()))
    return history


if __name__ == "__main__":
    main(tyro.cli(Args))
