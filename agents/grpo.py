"""GRPO: group relative policy optimisation, readable top to bottom (CleanRL style).

    rlhf-gym train --agent grpo --env RLHF-Summarize-v0 --total-steps 60000 --seed 0 --out runs/grpo

"DeepSeekMath: Pushing the Limits of Mathematical Reasoning in Open Language Models" (Shao et
al. 2024, §4.1). Each iteration samples ``group_size`` responses to each of ``num_prompts``
prompts (the env's ``group_size``: k consecutive sub-envs share a prompt), scores them, and
gives every token of response i the group-normalised advantage
``(r_i - mean(r_group)) / std(r_group)`` (outcome supervision). No value model: the group is
the baseline. The policy then takes several epochs of clipped-ratio updates (as PPO) on
shuffled minibatches, with the KL to the frozen reference in the loss (the k3 estimator,
``pi_ref/pi - log(pi_ref/pi) - 1`` per token, eq. 4) or, with ``kl_in="reward"``, as a
sequence penalty on the rewards before normalisation. Per-token losses average over each
response's tokens, then over responses (the paper's 1/|o_i| sum).

Model copies held: the policy (trained), the reference (frozen, for the KL), the env's
preference model (frozen).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch

from rlhf_gym.agents.common import GroupAgentConfig, GroupAgentRun, IterationHook


@dataclass
class GRPOConfig(GroupAgentConfig):
    """GRPO hyper-parameters (shared ones: `GroupAgentConfig`); the paper's where they transfer."""

    out: str = "runs/grpo"  # run folder: TensorBoard logs, checkpoints, plot, summary.json
    num_epochs: int = 2  # passes over each batch (the paper's mu)
    num_minibatches: int = 2  # minibatches per epoch
    clip_coef: float = 0.2  # ratio clip epsilon (the paper's 0.2)
    kl_coef: float = 0.04  # beta (the paper's 0.04)
    kl_in: Literal["loss", "reward"] = "loss"  # the paper puts the KL in the loss
    advantage_eps: float = 1e-4  # added to the group's std (a group of equal rewards gets advantage 0)

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("num_epochs", "num_minibatches"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.num_envs % self.num_minibatches != 0:
            raise ValueError(f"num_prompts * group_size ({self.num_envs}) must be divisible by num_minibatches ({self.num_minibatches})")
        if not self.advantage_eps > 0:
            raise ValueError(f"advantage_eps must be > 0, got {self.advantage_eps}")


# Advantages and losses ----------------------------------------------------------------
def group_normalized_advantages(rewards: torch.Tensor, group_size: int, eps: float = 1e-4) -> torch.Tensor:
    """``(r_i - mean(group)) / (std(group) + eps)`` for each response (Shao et al. 2024, §4.1.2).

    Args:
        rewards: (N,) rewards, the k responses of a group consecutive (N = groups * k).
        group_size: k.

    Example:
        >>> [round(a, 4) for a in group_normalized_advantages(torch.tensor([1.0, 3.0, 5.0, 5.0]), group_size=2).tolist()]
        [-0.7071, 0.7071, 0.0, 0.0]
    """
    if rewards.ndim != 1 or rewards.numel() % group_size != 0:
        raise ValueError(f"rewards must be (groups * {group_size},), got shape {tuple(rewards.shape)}")
    grouped = rewards.view(-1, group_size)
    centered = grouped - grouped.mean(-1, keepdim=True)
    std = grouped.std(-1, keepdim=True)  # unbiased, as in the reference implementations
    return (centered / (std + eps)).view(-1)


def k3_kl(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """Per-token ``pi_ref/pi - log(pi_ref/pi) - 1`` (Schulman 2020's k3; Shao et al. 2024, eq. 4):
    unbiased for KL(pi || pi_ref) on samples of pi, and never negative."""
    log_ratio = ref_logprobs - logprobs
    return log_ratio.exp() - log_ratio - 1


def per_response_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over each response's tokens, then over responses (the paper's 1/G sum 1/|o_i| sum_t)."""
    return ((x * mask).sum(-1) / mask.sum(-1).clamp(min=1)).mean()


# Training -------------------------------------------------------------------------
def train(config: GRPOConfig, on_iteration: IterationHook | None = None) -> dict[str, Any]:
    """Train GRPO as configured; return the run summary (also written to summary.json).

    ``on_iteration(state, policy)`` is called after each iteration (`IterationHook`).
    """
    run = GroupAgentRun(config, "grpo", on_iteration)  # envs, policy, frozen reference, Adam, resume, logs
    config, policy, width = run.config, run.policy, run.env.max_prompt_tokens
    while run.unfinished():
        # Rollout: k responses per prompt, episode-synchronous
        rollout = run.rollout()
        batch, mask = rollout.batch, rollout.batch.response_mask.float()

        # Group-normalised advantages, one per response, on every one of its tokens
        rewards = batch.scores - config.kl_coef * rollout.sequence_kl if config.kl_in == "reward" else batch.scores
        advantages = group_normalized_advantages(rewards, config.group_size, config.advantage_eps)

        # Clipped-ratio updates on shuffled minibatches, the KL to the reference in the loss
        order_generator = torch.Generator().manual_seed(rollout.seed)
        losses: dict[str, list[float]] = {k: [] for k in ("policy_loss", "kl_loss", "clip_fraction", "approx_kl", "entropy")}
        for _epoch in range(config.num_epochs):
            for rows, share in run.minibatches(config.num_minibatches, order_generator):  # share: this rank's part of the mean
                if len(rows) == 0:
                    run.optimizer_step(None)
                    continue
                m = mask[rows]
                new_logprobs, entropy = policy.token_logprobs(batch.input_ids[rows], batch.attention_mask[rows], width)
                log_ratio = new_logprobs - batch.logprobs[rows]
                ratio = log_ratio.exp()
                adv = advantages[rows, None]
                surrogate = torch.min(ratio * adv, ratio.clamp(1 - config.clip_coef, 1 + config.clip_coef) * adv)
                pg_loss = -per_response_mean(surrogate, m)
                kl_loss = per_response_mean(k3_kl(new_logprobs, rollout.ref_logprobs[rows]), m)
                run.optimizer_step(share * (pg_loss + config.kl_coef * kl_loss if config.kl_in == "loss" else pg_loss))
                with torch.no_grad():
                    losses["policy_loss"].append(pg_loss.item())
                    losses["kl_loss"].append(kl_loss.item())
                    losses["clip_fraction"].append(per_response_mean(((ratio - 1).abs() > config.clip_coef).float(), m).item())
                    losses["approx_kl"].append(per_response_mean((ratio - 1) - log_ratio, m).item())  # k3 of the update
                    losses["entropy"].append(per_response_mean(entropy, m).item())
        run.end_iteration(rollout, losses)  # logging, evaluation, checkpoint
    return run.finish(title=f"GRPO on {config.env} (seed {config.seed})")


if __name__ == "__main__":
    import tyro

    train(tyro.cli(GRPOConfig))
