"""Token-level PPO for RLHF, readable top to bottom (CleanRL style).

    rlhf-gym train --env RLHF-Summarize-v0 --agent ppo --total-steps 60000 --seed 0 --out runs/ppo

Each iteration: N episodes through the batched env with a KV cache (`collect_episodes`),
a per-token KL penalty against the frozen reference policy, the preference score at the
last token, GAE, then several epochs of clipped PPO updates on shuffled minibatches.
Implementation details follow "The N+ Implementation Details of RLHF with PPO: A Case Study
on TL;DR Summarization" (Huang et al. 2024, cited as N+ #k where k is their numbering of
details) and "Fine-Tuning Language Models from Human Preferences" (Ziegler et al. 2019).

Model copies held (tiny defaults, 2 layers d=128 each ~0.8 M params): the policy (trained),
the reference policy (frozen, for the KL penalty), the value model (trained, initialised
from the preference model, N+ #9), and the env's preference model (frozen). The value
model may instead be a head on the policy (``value_model="head"``) to save one copy.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn
from tqdm.auto import tqdm

from rlhf_gym.agents.common import (
    EVAL_SEED_OFFSET,
    IterationHook,
    RunLogger,
    eval_line,
    evaluate,
    finish_run,
    latest_checkpoint,
    load_model_weights,
    make_env,
    paired_final_evaluation,
    policy_path,
    prepare_run_folder,
    protocol_temperature,
    proxy_rewards,
    read_state,
    rollout_seed,
    write_checkpoint,
)
from rlhf_gym.agents.distributed import SINGLE, Distributed
from rlhf_gym.agents.value_model import ValueModel
from rlhf_gym.env.rollout import EpisodeBatch, collect_episodes
from rlhf_gym.lm.policy import CausalLMPolicy, disable_dropout, per_token_kl


@dataclass
class PPOConfig:
    """PPO hyper-parameters; N+ values where they transfer, re-tuned for tiny models."""

    env: str = "RLHF-Summarize-v0"  # registered env id
    total_steps: int = 60_000  # env steps (generated tokens, all sub-envs) to train for
    seed: int = 0  # seeds prompts, sampling and minibatch order
    out: str = "runs/ppo"  # run folder: TensorBoard logs, checkpoints, plot, summary.json
    policy: str | None = None  # causal LM (hub id or path); default: the env's SFT policy
    device: str = "cpu"  # torch device of env, policy and models
    threads: int = 2  # torch CPU threads
    num_envs: int = 64  # episodes per rollout batch (N+ uses 512; tiny CPU budget here)
    temperature: float | None = None  # sampling temperature, also used in the update (N+ #16); None: the task's protocol temperature (0.7)
    learning_rate: float = 3e-5  # Adam step size of the policy (3e-4 diverged: KL 38 nats in 15k steps)
    # Adam step size of the value model's own parameters; None: learning_rate. At 3e-5 the
    # critic copied from the preference model needed ~40k env steps to reach a positive
    # explained variance (the reward head is untrained at unfinished responses); at 3e-4
    # it is at 0.12 after three iterations and 0.93 after 40k steps. OpenRLHF's defaults
    # likewise run the critic at ~10x the actor's rate.
    value_learning_rate: float | None = 3e-4
    adam_eps: float = 1e-5  # Adam's epsilon: 1e-5 as in OpenAI baselines' PPO ("The 37 Implementation Details of PPO", Huang et al. 2022)
    num_epochs: int = 4  # PPO epochs per batch (N+ #4)
    num_minibatches: int = 4  # minibatches per epoch
    clip_coef: float = 0.2  # policy ratio clip (N+)
    value_clip_coef: float = 0.2  # value clip around the rollout values (N+)
    value_coef: float = 0.1  # value-loss weight (N+)
    gamma: float = 1.0  # discount (N+)
    gae_lambda: float = 0.95  # GAE lambda (N+)
    kl_coef: float = 0.05  # initial per-token KL penalty coefficient beta (N+)
    adaptive_kl: bool = False  # adapt beta toward target_kl_penalty (Ziegler et al. 2019)
    target_kl_penalty: float = 6.0  # target sequence KL for the adaptive controller (nats)
    kl_horizon: int = 10_000  # adaptive controller horizon in episodes (Ziegler et al. 2019)
    max_grad_norm: float = 1.0  # global gradient-norm clip
    target_approx_kl: float | None = None  # stop the epochs early above this approx KL
    missing_eos_penalty: float | None = 1.0  # subtracted from responses without EOS (N+ #23)
    # What the training env rewards: the preference model, or the gold judge (an oracle
    # run; on SFT samples gold spreads ~0.18x as much as the normalised proxy, so
    # --kl-coef 0.01 matches the default 0.05). Evaluations report both either way.
    reward: Literal["preference", "gold"] = "preference"
    # The preference model of both envs (training and evaluation): a path, hub id or saved
    # `PreferenceEnsemble` folder; None: the env's own. The critic starts from it too.
    reward_model: str | None = None
    value_model: Literal["preference-model", "head"] = "preference-model"  # critic init (N+ #9)
    eval_every: int = 10  # iterations between evaluations on the valid split
    eval_episodes: int = 128  # valid-split episodes per evaluation (fixed prompts and seed)
    # Valid posts on which the final policy and the SFT policy are sampled with the same
    # prompts and sampling stream: summary.json's gold_improvement_paired and its standard
    # error (0 skips it).
    paired_posts: int = 512
    # Sample each token from one uniform draw per row, by inverting the row's CDF
    # (`CausalLMPolicy.sample` ``uniforms=``), as RLOO, GRPO and data-parallel ranks do: a
    # single process computes what a torchrun world computes with the same total batch, and
    # the draw costs 0.2 ms instead of 2.6 ms for 64 rows of a 1.9k vocabulary on 2 CPU
    # cores (`multinomial_one`, like torch.multinomial, draws an exponential per vocabulary
    # entry). The same distribution, other draws: --no-row-sampling gives the multinomial
    # draws that runs before 3 Dec 2026 used.
    row_sampling: bool = True
    checkpoint_every: int = 10  # iterations between atomic checkpoints
    resume: bool = False  # continue from the run folder's last checkpoint (an error if there is none)
    overwrite: bool = False  # a fresh run into a folder holding a run: remove that run first
    force: bool = False  # --resume with a config that differs from the checkpoint's (listed as a warning)

    def __post_init__(self) -> None:
        if self.num_envs % self.num_minibatches != 0:
            raise ValueError(
                f"num_envs ({self.num_envs}) must be divisible by num_minibatches ({self.num_minibatches})"
            )
        for name in ("total_steps", "num_envs", "num_epochs", "num_minibatches", "eval_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.temperature is not None and not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.paired_posts < 0 or self.paired_posts == 1:
            raise ValueError(f"paired_posts must be 0 (off) or >= 2, got {self.paired_posts}")
        for name in ("learning_rate", "value_learning_rate", "adam_eps"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {value}")


# GAE ------------------------------------------------------------------------------
def compute_gae(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over response tokens (Schulman et al. 2016).

    Args:
        rewards: (N, T) per-token rewards (KL penalty, plus the score at the last token).
        values: (N, T) value estimates V(s_t) of the state before token t.
        mask: (N, T) True on generated tokens; each row is a prefix. The episode ends
            after its last token, so V = 0 beyond it (no bootstrap).

    Returns:
        advantages (N, T) and returns = advantages + values, zero off the mask.

    Example:
        >>> r = torch.tensor([[0.0, 1.0]]); v = torch.tensor([[0.5, 0.5]])
        >>> adv, ret = compute_gae(r, v, torch.ones(1, 2, dtype=torch.bool), gamma=1.0, lam=1.0)
        >>> adv.tolist(), ret.tolist()
        ([[0.5, 0.5]], [[1.0, 1.0]])
    """
    mask_f = mask.float()
    rewards, values = rewards * mask_f, values * mask_f
    advantages = torch.zeros_like(rewards)
    last = torch.zeros_like(rewards[:, 0])
    horizon = rewards.shape[1]
    for t in reversed(range(horizon)):  # over time steps, vectorised over episodes
        next_value = values[:, t + 1] if t + 1 < horizon else torch.zeros_like(last)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        last = (delta + gamma * lam * last) * mask_f[:, t]
        advantages[:, t] = last
    return advantages, (advantages + values) * mask_f


def masked_mean(x: torch.Tensor, mask: torch.Tensor, count: torch.Tensor | None = None, world_size: int = 1) -> torch.Tensor:
    """Mean of ``x`` over the valid tokens (``mask``).

    Data-parallel, ``count`` is every rank's token count and each rank returns its own
    tokens' sum over it, times ``world_size``: the average of the ranks' gradients is then
    the gradient of the mean over all their tokens, whatever each rank's share.
    """
    count = mask.sum() if count is None else count
    return (x * mask).sum() / count.clamp(min=1) * world_size


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8, dist: Distributed = SINGLE) -> torch.Tensor:
    """Whiten over valid tokens only, those of every rank (N+ #19: advantages whitened; rewards not)."""
    count = dist.all_sum(mask.sum()).clamp(min=1)
    mean = dist.all_sum((x * mask).sum()) / count
    var = dist.all_sum(((x - mean) ** 2 * mask).sum()) / count
    return (x - mean) * torch.rsqrt(var + eps) * mask


# KL-penalised rewards ---------------------------------------------------------------
def per_token_rewards(
    scores: torch.Tensor, logprobs: torch.Tensor, ref_logprobs: torch.Tensor, mask: torch.Tensor, kl_coef: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """r_t = -beta * (log pi - log pi_ref) on every token, + score on the last token.

    The k1 estimator of the KL per token (Ziegler et al. 2019; N+ #13). Returns the
    rewards (N, T) and the per-token KL (N, T), both zero off the mask.
    """
    kl = per_token_kl(logprobs, ref_logprobs, mask)
    rewards = -kl_coef * kl
    last = (mask.sum(-1) - 1).clamp(min=0)  # (N,) index of the final token
    rewards[torch.arange(rewards.shape[0]), last] += scores
    return rewards * mask, kl


# Checkpoints ----------------------------------------------------------------------
def save_checkpoint(run_dir: Path, policy: CausalLMPolicy, value: ValueModel, optimizer: torch.optim.Optimizer,
                    state: dict[str, Any], config: PPOConfig) -> None:
    """The policy (a Hugging Face folder), the critic and the optimiser state (tensors only: it
    loads with ``weights_only``), written atomically with the run state and config."""

    def write_tensors(folder: Path) -> None:
        policy.model.save_pretrained(folder / "policy")
        save_file(value.state_dict(), str(folder / "value_model.safetensors"))
        torch.save(optimizer.state_dict(), folder / "optimizer.pt")

    write_checkpoint(run_dir, state, write_tensors, config)


def load_checkpoint(checkpoint: Path, policy: CausalLMPolicy, value: ValueModel,
                    optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Restore what `save_checkpoint` wrote (strictly: a checkpoint of another model is an error)."""
    load_model_weights(policy.model, checkpoint / "policy" / "model.safetensors")
    load_model_weights(value, checkpoint / "value_model.safetensors")
    optimizer.load_state_dict(torch.load(checkpoint / "optimizer.pt", weights_only=True))
    return read_state(checkpoint)


# Training -------------------------------------------------------------------------
def make_optimizer(config: PPOConfig, actor_params: list[nn.Parameter], value_params: list[nn.Parameter]) -> torch.optim.Adam:
    """One Adam over both models; the critic's own parameters at ``value_learning_rate``
    (None: the policy's rate)."""
    value_lr = config.learning_rate if config.value_learning_rate is None else config.value_learning_rate
    return torch.optim.Adam(
        [{"params": actor_params}, {"params": value_params, "lr": value_lr}], lr=config.learning_rate, eps=config.adam_eps
    )


def train(config: PPOConfig, on_iteration: IterationHook | None = None) -> dict[str, Any]:
    """Train PPO as configured; return the run summary (also written to summary.json).

    ``on_iteration(state, policy)`` is called after each iteration (`IterationHook`).
    """
    # Set-up (under torchrun, each rank runs rows [offset, offset + local_envs) of the batch)
    torch.set_num_threads(config.threads)
    dist = Distributed.from_environment(config.device)
    temperature = protocol_temperature(config.env, config.temperature)
    config = dataclasses.replace(config, temperature=temperature)  # the run records what it used
    run_dir = prepare_run_folder(config) if dist.is_main else Path(config.out)  # rank 0 owns the folder
    run_dir.mkdir(parents=True, exist_ok=True)
    device = torch.device(dist.device(config.device))
    local_envs, row_offset = dist.shard(config.num_envs)
    env_settings = dict(device=str(device), missing_eos_penalty=config.missing_eos_penalty, reward_model=config.reward_model)
    env = make_env(config.env, local_envs, "train", reward=config.reward, **env_settings)
    # Rank 0 evaluates: proxy and gold, whatever the training reward.
    eval_env = make_env(config.env, config.eval_episodes, "valid", **env_settings) if dist.is_main else None
    torch.manual_seed(config.seed)
    policy = CausalLMPolicy.from_pretrained(policy_path(config.env, config.policy), temperature=temperature).to(device)
    reference = copy.deepcopy(policy).eval().requires_grad_(False)
    value = ValueModel.create(
        config.value_model, env.reward_model, policy, env.tokenizer, reward_is_preference=config.reward == "preference"
    ).to(device)
    disable_dropout(value)
    policy_params = {id(p) for p in policy.parameters()}  # the "head" critic shares the backbone
    actor_params = list(policy.parameters())
    value_params = [p for p in value.parameters() if id(p) not in policy_params]
    params = actor_params + value_params
    optimizer = make_optimizer(config, actor_params, value_params)

    state: dict[str, Any] = {"iteration": 0, "env_steps": 0, "kl_coef": config.kl_coef, "history": [], "evals": [], "wall_time": 0.0}
    checkpoint = latest_checkpoint(run_dir) if config.resume and dist.is_main else None  # only rank 0's disk has it
    if checkpoint is not None:
        state = load_checkpoint(checkpoint, policy, value, optimizer)
        print(f"resumed from {checkpoint} at iteration {state['iteration']}, {state['env_steps']} env steps")
    if config.resume:  # the other ranks take rank 0's run state, weights and Adam state
        state = dist.broadcast_from_main(state, [policy, value], optimizer)
    logger = RunLogger(run_dir, config=asdict(config), purge_step=state["env_steps"] if checkpoint else None) if dist.is_main else None
    if not state["evals"] and dist.is_main:
        state["evals"].append({"env_steps": 0, **evaluate(eval_env, policy, reference, config.seed + EVAL_SEED_OFFSET)})
        logger.scalars("eval", state["evals"][-1], 0)
    progress = tqdm(total=config.total_steps, initial=state["env_steps"], unit="tok", desc="ppo", dynamic_ncols=True,
                    disable=not dist.is_main)
    started = time.time() - state["wall_time"]

    while state["env_steps"] < config.total_steps:
        iteration = state["iteration"]
        iteration_seed = rollout_seed(config.seed, iteration, config.num_envs)  # resumable: derived, not carried
        t0 = time.time()

        # Rollout
        policy.eval()
        batch: EpisodeBatch = collect_episodes(
            env, policy, seed=iteration_seed + row_offset, generator=torch.Generator(device).manual_seed(iteration_seed),
            rows=(row_offset, config.num_envs) if dist.active or config.row_sampling else None,
        )
        mask = batch.response_mask
        rollout_seconds = time.time() - t0
        with torch.no_grad():
            ref_logprobs, _ = reference.token_logprobs(batch.input_ids, batch.attention_mask, env.max_prompt_tokens, entropy=False)
            old_values = value(batch.input_ids, batch.attention_mask, env.max_prompt_tokens)

        # Rewards and GAE
        rewards, kl = per_token_rewards(batch.scores, batch.logprobs, ref_logprobs, mask, state["kl_coef"])
        advantages, returns = compute_gae(rewards, old_values, mask, config.gamma, config.gae_lambda)
        advantages = masked_whiten(advantages, mask, dist=dist)

        # PPO update
        policy.train()
        value.train()
        order_generator = torch.Generator().manual_seed(iteration_seed)
        minibatch = config.num_envs // config.num_minibatches
        stats: dict[str, list[float]] = {k: [] for k in ("policy_loss", "value_loss", "clip_fraction", "approx_kl", "entropy")}
        for _epoch in range(config.num_epochs):
            order = torch.randperm(config.num_envs, generator=order_generator).to(device)
            # per minibatch: this rank's sum of the approx KL over its tokens, and every rank's token count
            kl_sums, kl_tokens = torch.zeros(config.num_minibatches, device=device), torch.zeros(config.num_minibatches, device=device)
            for i, start in enumerate(range(0, config.num_envs, minibatch)):
                rows = order[start : start + minibatch]
                rows = dist.own_rows(rows, config.num_envs)
                m = mask[rows].float()
                tokens = dist.all_sum(m.sum())  # every rank's tokens in this minibatch
                kl_tokens[i] = tokens
                if rows.numel() == 0:  # none of them on this rank: a zero gradient, but it joins the step
                    optimizer.zero_grad(set_to_none=True)
                    dist.average_gradients(params)
                    nn.utils.clip_grad_norm_(params, config.max_grad_norm)
                    optimizer.step()
                    continue
                new_logprobs, entropy = policy.token_logprobs(batch.input_ids[rows], batch.attention_mask[rows], env.max_prompt_tokens)
                # Policy loss: clipped surrogate (Schulman et al. 2017)
                log_ratio = new_logprobs - batch.logprobs[rows]
                ratio = log_ratio.exp()
                adv = advantages[rows]
                surrogate = torch.max(-adv * ratio, -adv * ratio.clamp(1 - config.clip_coef, 1 + config.clip_coef))
                pg_loss = masked_mean(surrogate, m, tokens, dist.world_size)
                # Value loss: clipped around the rollout values (N+)
                new_values = value(batch.input_ids[rows], batch.attention_mask[rows], env.max_prompt_tokens)
                clipped = old_values[rows] + (new_values - old_values[rows]).clamp(-config.value_clip_coef, config.value_clip_coef)
                value_error = torch.max((new_values - returns[rows]) ** 2, (clipped - returns[rows]) ** 2)
                v_loss = 0.5 * masked_mean(value_error, m, tokens, dist.world_size)
                loss = pg_loss + config.value_coef * v_loss
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                dist.average_gradients(params)  # data-parallel: every rank takes the same step
                nn.utils.clip_grad_norm_(params, config.max_grad_norm)
                optimizer.step()
                with torch.no_grad():
                    stats["policy_loss"].append(pg_loss.item())
                    stats["value_loss"].append(v_loss.item())
                    stats["clip_fraction"].append(masked_mean(((ratio - 1).abs() > config.clip_coef).float(), m).item())
                    approx_kl = (ratio - 1) - log_ratio  # k3 (Schulman 2020)
                    kl_sums[i] = (approx_kl * m).sum()
                    stats["approx_kl"].append(masked_mean(approx_kl, m).item())
                    stats["entropy"].append(masked_mean(entropy, m).item())
            # The epoch's approx KL: the mean over its minibatches of each one's mean over its tokens on
            # every rank (a rank may hold no rows of some), as one process computes it, on every rank.
            epoch_kl = float(np.mean((dist.all_sum(kl_sums) / kl_tokens.clamp(min=1)).tolist()))
            if config.target_approx_kl is not None and epoch_kl > config.target_approx_kl:
                break  # approx-KL early stop (every rank decides alike)

        # Adaptive KL controller (Ziegler et al. 2019, §2.2)
        sequence_kl = dist.mean({"kl": kl.sum(-1).mean().item()})["kl"]
        if config.adaptive_kl:
            error = float(np.clip(sequence_kl / config.target_kl_penalty - 1, -0.2, 0.2))
            state["kl_coef"] *= 1 + error * config.num_envs / config.kl_horizon

        # Logging
        steps = int(dist.sum(mask.sum().item()))  # every rank's tokens
        state["env_steps"] += steps
        state["iteration"] = iteration + 1
        state["wall_time"] = time.time() - started
        explained_var = 1 - torch.var((returns - old_values)[mask]) / torch.var(returns[mask]).clamp(min=1e-8)
        record = {
            "env_steps": state["env_steps"],
            **dist.mean({  # the ranks' shards are equal: their means' mean is the batch's
                **proxy_rewards(batch.preference, batch.penalty),
                "gold": batch.gold.nanmean().item(),
                "response_length": batch.response_lengths.float().mean().item(),
                "explained_variance": explained_var.item(),
                **{k: float(np.mean(v)) for k, v in stats.items()},
            }),
            "kl": sequence_kl,
            "kl_coef": state["kl_coef"],
            "tokens_per_second": steps / max(rollout_seconds, 1e-9),
        }
        state["history"].append(record)
        progress.update(steps)
        progress.set_postfix(proxy=f"{record['proxy_reward']:+.2f}", gold=f"{record['gold']:.3f}", kl=f"{sequence_kl:.2f}")
        last_iteration = state["env_steps"] >= config.total_steps
        if dist.is_main:  # rank 0 logs, evaluates and checkpoints; the others wait at the barrier
            charts = ("proxy_reward", "proxy_reward_with_penalty", "gold", "kl", "kl_coef", "response_length", "tokens_per_second")
            losses = ("policy_loss", "value_loss", "clip_fraction", "approx_kl", "entropy", "explained_variance")
            logger.scalars("charts", {k: record[k] for k in charts}, state["env_steps"])
            logger.scalars("losses", {k: record[k] for k in losses}, state["env_steps"])
            if state["iteration"] % config.eval_every == 0 or last_iteration:
                ev = evaluate(eval_env, policy, reference, config.seed + EVAL_SEED_OFFSET)
                state["evals"].append({"env_steps": state["env_steps"], **ev})
                logger.scalars("eval", state["evals"][-1], state["env_steps"])
                progress.write(eval_line(state["evals"][-1]))
            if state["iteration"] % config.checkpoint_every == 0 or last_iteration:
                save_checkpoint(run_dir, policy, value, optimizer, state, config)
        dist.barrier()
        if on_iteration is not None:
            on_iteration(state, policy)
    progress.close()
    if not dist.is_main:
        dist.barrier()
        dist.close()
        return {}
    logger.close()

    # Results
    if config.paired_posts:
        state["paired"] = paired_final_evaluation(eval_env, policy.eval(), reference, config.paired_posts)
    summary = finish_run(
        run_dir, "ppo", config, state, policy.model, env.tokenizer, title=f"PPO on {config.env} (seed {config.seed})",
        extra={"world_size": dist.world_size},
    )
    dist.barrier()
    dist.close()
    return summary


if __name__ == "__main__":
    import tyro

    train(tyro.cli(PPOConfig))
