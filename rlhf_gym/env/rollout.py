"""Episode-synchronous rollouts of a `CausalLMPolicy` through a `TokenVectorEnv`.

All N sub-envs start together (``reset(seed=...)``), the policy writes one token per step
for the whole batch with a KV cache, and rows that finish wait (autoreset ``DISABLED``)
until the last row ends. This is the batch of complete responses that PPO for RLHF trains
on (Ziegler et al. 2019; Huang et al. 2024) and what ``generate()`` computes: the same
number of forward passes, so the env adds only its own bookkeeping.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from gymnasium.vector import AutoresetMode

from rlhf_gym.env.vector_env import TokenVectorEnv
from rlhf_gym.lm.policy import CausalLMPolicy


@dataclass
class EpisodeBatch:
    """N complete episodes.

    Attributes:
        input_ids: (N, L) final contexts (prompt block, response, padding).
        attention_mask: (N, L).
        response_mask: (N, T) True on the generated tokens (EOS included).
        logprobs: (N, T) log-probs of the tokens under the rollout policy (0 off-mask).
        scores: (N,) the env's end-of-episode rewards.
        preference: (N,) the env's reward model's scores, its info ``proxy`` (the reward
            unless the env rewards with something else, such as the gold judge; no
            missing-EOS penalty).
        penalty: (N,) the env's missing-EOS penalty of each episode (0 or negative).
        gold: (N,) the gold judge's scores (NaN when the env has none: ``env.has_gold_judge``).
        response_texts: the decoded responses.
        terminated: (N,) True where the response ended with EOS.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    response_mask: torch.Tensor
    logprobs: torch.Tensor
    scores: torch.Tensor
    preference: torch.Tensor
    penalty: torch.Tensor
    gold: torch.Tensor
    response_texts: list[str] = field(default_factory=list)
    terminated: torch.Tensor | None = None

    @property
    def response_lengths(self) -> torch.Tensor:
        """(N,) tokens generated per episode."""
        return self.response_mask.sum(-1)


@torch.no_grad()
def collect_episodes(
    env: TokenVectorEnv,
    policy: CausalLMPolicy,
    *,
    seed: int,
    generator: torch.Generator,
    greedy: bool = False,
    share_group_prompts: bool = True,
    rows: tuple[int, int] | None = None,
    score_together: bool = True,
) -> EpisodeBatch:
    """Run one episode in every sub-env of ``env`` with a KV cache.

    With ``env.group_size = k > 1`` the k sub-envs of a group start from the same prompt,
    so by default the prompt is forwarded once per group and its KV cache repeated k times
    (`CausalLMPolicy.prefill_groups`): N/k prompt forwards instead of N, the same
    log-probs to float precision.

    Args:
        env: a `TokenVectorEnv` in autoreset mode ``DISABLED``.
        policy: the acting policy (its model in eval mode).
        seed: reset seed: fixes the prompts of this batch.
        generator: the sampling RNG (on the env's device).
        greedy: take the argmax token instead of sampling.
        share_group_prompts: prefill one row per group (off: every row, as with k = 1).
        rows: ``(offset, total)``: this env is rows ``[offset, offset + N)`` of a batch of
            ``total`` (a data-parallel shard). Each step draws ``total`` uniforms from
            ``generator`` and samples with this shard's slice (`CausalLMPolicy.sample`
            ``uniforms=``), so the shard samples what those rows of the whole batch would.
            Reset the env with the whole batch's seed plus ``offset`` for its prompts.
        score_together: score every episode in one reward-model call when the last row
            ends (the env's ``batch_scoring``, on for this rollout and restored after), not
            in each step where some rows end. The scores are the same to float precision;
            it saves the reward model ~30 small forwards per batch of 64 sampled responses.

    Raises:
        ValueError: If the env is not in ``DISABLED`` mode, or (sharing on) the rows of a
            group do not have identical prompt blocks after the reset.
    """
    if env.autoreset_mode != AutoresetMode.DISABLED:
        raise ValueError(f"collect_episodes needs autoreset_mode DISABLED, got {env.autoreset_mode}")
    batch_scoring = env.batch_scoring
    env.batch_scoring = score_together
    try:
        return _collect(env, policy, seed=seed, generator=generator, greedy=greedy,
                        share_group_prompts=share_group_prompts, shard=rows)
    finally:
        env.batch_scoring = batch_scoring


def _collect(
    env: TokenVectorEnv,
    policy: CausalLMPolicy,
    *,
    seed: int,
    generator: torch.Generator,
    greedy: bool,
    share_group_prompts: bool,
    shard: tuple[int, int] | None,
) -> EpisodeBatch:
    """`collect_episodes` once the env's scoring mode is set."""
    n, width, horizon = env.num_envs, env.max_prompt_tokens, env.max_new_tokens
    device = env.device
    obs, _ = env.reset(seed=seed)
    prompt_ids, prompt_mask = obs["input_ids"][:, :width], obs["attention_mask"][:, :width]
    if share_group_prompts and env.group_size > 1:
        logits, state = policy.prefill_groups(prompt_ids, prompt_mask, env.group_size)
    else:
        logits, state = policy.prefill(prompt_ids, prompt_mask)
    logprobs = torch.zeros((n, horizon), device=device)
    scores = torch.zeros(n, device=device)
    preference = torch.zeros(n, device=device)
    penalty = torch.zeros(n, device=device)
    gold = torch.full((n,), float("nan"), device=device)
    terminated_rows = torch.zeros(n, dtype=torch.bool, device=device)
    finished = torch.zeros(n, dtype=torch.bool, device=device)
    texts: list[Any] = [None] * n
    for t in range(horizon):
        uniforms = None
        if shard is not None:
            offset, total = shard
            uniforms = torch.rand(total, generator=generator, device=device)[offset : offset + n]
        tokens, token_logprobs = policy.sample(logits, generator, greedy=greedy, uniforms=uniforms)
        active = ~finished
        logprobs[:, t] = torch.where(active, token_logprobs, torch.zeros_like(token_logprobs))
        obs, rewards, terminated, truncated, info = env.step(tokens)
        done = terminated | truncated
        terminated_rows |= terminated
        if "_proxy" in info:
            # The rows scored in this step: those that finished in it, or with batch scoring
            # every row of the batch, in the step where the last one finished.
            rows = np.flatnonzero(info["_proxy"])
            row_index = torch.as_tensor(rows, device=device)
            scores[row_index] = rewards[row_index]
            preference[row_index] = torch.as_tensor(info["proxy"][rows], dtype=torch.float32, device=device)
            penalty[row_index] = torch.as_tensor(info["penalty"][rows], dtype=torch.float32, device=device)
            gold[row_index] = torch.as_tensor(info["gold"][rows], dtype=torch.float32, device=device)  # NaN: no judge
            if "response_text" in info:
                for r in rows:  # finished rows only
                    texts[r] = info["response_text"][r]
        finished = finished | done
        if bool(finished.all()):
            break
        logits = policy.decode(tokens, state, token_mask=active)
    response_mask = obs["attention_mask"][:, width:].bool()
    if not bool(torch.isfinite(logprobs[response_mask]).all()):  # one check per rollout, not one sync per token
        raise RuntimeError("the policy produced non-finite logits during the rollout (NaN or inf log-probs)")
    return EpisodeBatch(
        input_ids=obs["input_ids"],
        attention_mask=obs["attention_mask"],
        response_mask=response_mask,
        logprobs=logprobs,
        scores=scores,
        preference=preference,
        penalty=penalty,
        gold=gold,
        response_texts=[t if t is not None else "" for t in texts],
        terminated=terminated_rows,
    )


def paired_difference(scores: np.ndarray, baseline: np.ndarray) -> tuple[float, float]:
    """Mean of the per-post differences ``scores - baseline`` and its standard error.

    Example:
        >>> change, sem = paired_difference(np.array([0.5, 1.0, 0.25]), np.array([0.25, 0.5, 0.25]))
        >>> change, round(sem, 6)  # differences 0.25, 0.5, 0: std 0.25, over sqrt(3)
        (0.25, 0.144338)
    """
    if scores.shape != baseline.shape or scores.ndim != 1 or len(scores) < 2:
        raise ValueError(f"need two equal 1-D score arrays of >= 2 posts, got {scores.shape} and {baseline.shape}")
    differences = scores - baseline
    return float(differences.mean()), float(differences.std(ddof=1) / np.sqrt(len(differences)))


@dataclass
class PairedGold:
    """Gold of a policy against a baseline, post by post (common random numbers).

    Attributes:
        change: Mean per-post gold difference (policy minus baseline).
        sem: Standard error of that mean (of the differences, so the pairing counts).
        policy_gold, baseline_gold: Mean gold of each side over the same posts.
        posts: How many posts were paired (those where both sides have a gold score).
    """

    change: float
    sem: float
    policy_gold: float
    baseline_gold: float
    posts: int


@torch.no_grad()
def paired_gold(
    env: TokenVectorEnv, policy: CausalLMPolicy, baseline: CausalLMPolicy, *, posts: int, seed: int
) -> PairedGold:
    """Sample ``policy`` and ``baseline`` on the same ``posts`` posts of ``env`` with the same
    sampling stream, and compare their gold scores post by post.

    Batch ``b`` resets with ``seed + b * num_envs`` (sub-env keys never repeat) and samples
    with a generator seeded alike for both sides, so the two differ only by their policies
    and the standard error is that of the per-post differences.

    Raises:
        ValueError: If ``posts`` < 2, or the env has no gold judge.
    """
    if posts < 2:
        raise ValueError(f"posts must be >= 2 to estimate a standard error, got {posts}")
    if not env.has_gold_judge:
        raise ValueError("the env has no gold judge (env.has_gold_judge is False), so there is no gold to pair")
    n = env.num_envs
    sides: list[list[np.ndarray]] = [[], []]
    for batch_index in range(-(-posts // n)):
        batch_seed = seed + batch_index * n
        for side, actor in zip(sides, (policy, baseline)):
            generator = torch.Generator(env.device).manual_seed(batch_seed)
            side.append(collect_episodes(env, actor, seed=batch_seed, generator=generator).gold.cpu().double().numpy())
    gold, base = (np.concatenate(side)[:posts] for side in sides)
    valid = ~(np.isnan(gold) | np.isnan(base))
    if int(valid.sum()) < 2:
        raise ValueError("the env reports no gold scores (a task without a gold judge?)")
    change, sem = paired_difference(gold[valid], base[valid])
    return PairedGold(
        change=change, sem=sem, policy_gold=float(gold[valid].mean()), baseline_gold=float(base[valid].mean()),
        posts=int(valid.sum()),
    )
