"""P2: a rollout through the env against what a user writes by hand, in new tokens per second.

- Ours (A): `rlhf_gym.env.rollout.collect_episodes` with the task's SFT policy on the
  task's env built with ``autoreset_mode="disabled"``: the reset (drawing and tokenising
  the prompts), the KV-cached sampling loop, the env's steps, and the env's rewards (its
  preference model and gold judge). It samples as the agents' training rollouts do (PPO,
  RLOO, GRPO: ``rows=``, one uniform per row and token, inverting the row's CDF), and
  returns each token's log-prob, which ``generate()`` does not.
- By hand (B): ``model.generate()`` (KV cache, sampling at the same temperature, no top-k or
  top-p, the same ``max_new_tokens``) on the same prompts, then the responses decoded and
  scored in ONE batched call of the same `PreferenceModel` object (``score(prompts,
  responses)``, its public path) and one call of the same gold judge.

The prompts of a run come from the env's reset with the run's seed. The hand-written side
gets them already tokenised (its tokenisation is not timed, ours is) and without the
columns that are padding in every row: the block ``tokenizer(prompts, padding=True)``
gives, narrower than the env's fixed ``max_prompt_tokens`` block. Both choices favour the
hand-written side.

Gold: kept on both sides. The env computes it for every finished episode (an env made
without a gold judge, ``dataset=`` a `PromptSource`, would drop it), and a user comparing
policies on this task calls the judge too.

Work is new tokens: each row's tokens up to and including its first EOS (all
``max_new_tokens`` when it wrote none); padding after EOS does not count. The figure is the
median of the pairwise ratios ours / by hand (`rlhf_gym.bench.interleave`); the ratio
without scoring subtracts, run by run, the seconds each side spent in the reward model and
the gold judge. Goal (issue 28): >= 1.0 on CPU and GPU.

    rlhf-gym bench --parts p2            # batch 64
    rlhf-gym bench --parts p2 --quick    # batch 32
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import torch

from rlhf_gym.bench.env_bookkeeping import Log, scoring_clock, synchronize
from rlhf_gym.bench.interleave import MIN_PAIRS, Comparison, Sample, Side, compare
from rlhf_gym.env.rollout import collect_episodes
from rlhf_gym.lm.layout import trim_shared_left_padding
from rlhf_gym.registration import get_task

ROLLOUT_GOAL = 1.0  # issue 28: our rollout at least as fast as generate() plus one reward call


@dataclass(frozen=True)
class P2Sizes:
    """How much P2 runs: rows per rollout, interleaved pairs, warm-up pairs, and T (None: the task's)."""

    batch: int
    pairs: int = MIN_PAIRS
    warmup: int = 1
    max_new_tokens: int | None = None


QUICK = P2Sizes(batch=32)
FULL = P2Sizes(batch=64)


def tokens_up_to_eos(new_tokens: torch.Tensor, eos_token_id: int) -> torch.Tensor:
    """(B,) tokens each row generated, its first EOS included (the whole width when it has none).

    Example:
        >>> tokens_up_to_eos(torch.tensor([[5, 0, 1, 1], [5, 6, 7, 8], [0, 1, 1, 1]]), eos_token_id=0).tolist()
        [2, 4, 1]
    """
    is_eos = new_tokens == eos_token_id  # (B, n)
    first = torch.where(is_eos.any(-1), is_eos.int().argmax(-1) + 1, new_tokens.shape[1])
    return first


def _autocast(device: torch.device, bf16: bool) -> contextlib.AbstractContextManager[Any]:
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


class HandWritten:
    """The user's loop: ``generate()`` on a batch of prompts, then one reward call and one gold call.

    Args:
        model: the causal LM (the SFT policy's model).
        tokenizer: its tokenizer.
        score: the reward model's ``score(prompts, responses)``.
        gold_judge: ``(prompts, responses) -> scores``, or None.
        temperature: the sampling temperature.
        max_new_tokens: the response budget.
        device: where the model runs.
        bf16: run under bf16 autocast.
    """

    def __init__(
        self, model: Any, tokenizer: Any, *, score: Callable[..., torch.Tensor], gold_judge: Callable[..., Any] | None,
        temperature: float, max_new_tokens: int, device: torch.device, bf16: bool = False,
    ) -> None:
        self.model, self.tokenizer, self.score, self.gold_judge = model, tokenizer, score, gold_judge
        self.temperature, self.max_new_tokens, self.device, self.bf16 = temperature, max_new_tokens, device, bf16

    @torch.no_grad()
    def run(self, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, prompts: Sequence[Any], seed: int) -> Sample:
        """One timed batch: work is new tokens up to EOS; extra holds the scoring seconds and the mean reward.

        Args:
            prompt_ids, prompt_mask: (B, P') the left-padded prompt block.
            prompts: B `rlhf_gym.env.prompts.Prompt` (texts for the reward model, records for the judge).
        """
        eos, pad = self.tokenizer.eos_token_id, self.tokenizer.pad_token_id
        torch.manual_seed(seed)
        synchronize(self.device)
        start = time.perf_counter()
        with _autocast(self.device, self.bf16):
            out = self.model.generate(
                input_ids=prompt_ids, attention_mask=prompt_mask, do_sample=True, temperature=self.temperature,
                top_k=0, top_p=1.0, max_new_tokens=self.max_new_tokens, pad_token_id=pad, eos_token_id=eos,
            )
            new = out[:, prompt_ids.shape[1]:]  # (B, n) n <= max_new_tokens; pad after a row's EOS
            lengths = tokens_up_to_eos(new, eos)
            ended = (new == eos).any(-1)
            texts = self.tokenizer.batch_decode(
                [row[:n] for row, n in zip(new.tolist(), (lengths - ended.long()).tolist())],  # EOS is not text
                skip_special_tokens=False, clean_up_tokenization_spaces=False,
            )
            scoring_start = time.perf_counter()
            rewards = self.score([p.text for p in prompts], texts)
            if self.gold_judge is not None:
                self.gold_judge(prompts, texts)
            synchronize(self.device)
        end = time.perf_counter()
        return Sample(work=float(lengths.sum()), seconds=end - start,
                      extra={"scoring_seconds": end - scoring_start, "mean_reward": float(rewards.float().mean())})


def rollout_comparison(
    *, quick: bool, env_id: str, device: str = "cpu", bf16: bool = False, seed: int = 0,
    sizes: P2Sizes | None = None, log: Log = print,
) -> dict[str, Any]:
    """P2: ours (A) against the hand-written loop (B), interleaved, on the same prompts.

    Returns:
        The results: ``headline`` (the report's rows), the comparison (rates in new tokens
        per second), the ratio without scoring, each side's scoring share, and the settings.
    """
    sizes = sizes or (QUICK if quick else FULL)
    device_ = torch.device(device)
    task = get_task(env_id)
    kwargs: dict[str, Any] = {"autoreset_mode": "disabled", "device": device_}
    if sizes.max_new_tokens is not None:
        kwargs["max_new_tokens"] = sizes.max_new_tokens
    env = gym.make_vec(env_id, num_envs=sizes.batch, **kwargs).unwrapped
    policy = task.sft_policy(device_).eval()
    width = env.max_prompt_tokens
    hand = HandWritten(
        policy.model, env.tokenizer, score=env.reward_model.score, gold_judge=env.gold_judge,  # the originals, untimed
        temperature=policy.temperature, max_new_tokens=env.max_new_tokens, device=device_, bf16=bf16,
    )
    prompt_columns: list[int] = []

    def run_seed(index: int) -> int:
        return seed + 1_000 + index  # warm-up pairs (negative indices) take seeds below the timed ones

    with scoring_clock([env]) as clock:

        def ours(index: int) -> Sample:
            clock.reset()
            generator = torch.Generator(device_).manual_seed(run_seed(index))
            synchronize(device_)
            start = time.perf_counter()
            with _autocast(device_, bf16):
                batch = collect_episodes(env, policy, seed=run_seed(index), generator=generator, rows=(0, sizes.batch))
            synchronize(device_)
            seconds = time.perf_counter() - start
            return Sample(work=float(batch.response_mask.sum()), seconds=seconds,
                          extra={"scoring_seconds": clock.seconds, "mean_reward": float(batch.preference.mean())})

        def by_hand(index: int) -> Sample:
            obs, _ = env.reset(seed=run_seed(index))  # the same prompts, tokenised and left-padded (untimed)
            ids, mask, trimmed = trim_shared_left_padding(obs["input_ids"][:, :width], obs["attention_mask"][:, :width], width)
            prompt_columns.append(trimmed)
            return hand.run(ids, mask, env.prompts, run_seed(index))

        comparison = compare(Side("env rollout", ours), Side("generate() + one reward call", by_hand),
                             pairs=sizes.pairs, warmup=sizes.warmup)
    env.close()
    unscored = _ratio_without(comparison, "scoring_seconds")
    results = {
        "env": env_id,
        "device": str(device_),
        "batch": sizes.batch,
        "max_new_tokens": env.max_new_tokens,
        "temperature": policy.temperature,
        "bf16": bf16,
        "gold_judge": hand.gold_judge is not None,
        # The env's fixed prompt block, and the columns both sides prefill: the batch's longest prompt (our
        # prefill skips the columns that are padding in every row, as the hand-written padding never has them).
        "prompt_block_columns": {"env_block": width, "prefilled": statistics.median(prompt_columns)},
        "ratio": comparison.ratio,
        "ratio_without_scoring": unscored,
        "a_tokens_per_s": comparison.a_rate,
        "b_tokens_per_s": comparison.b_rate,
        "a_scoring_share": statistics.median(s.extra["scoring_seconds"] / s.seconds for s in comparison.a_samples),
        "b_scoring_share": statistics.median(s.extra["scoring_seconds"] / s.seconds for s in comparison.b_samples),
        "comparison": comparison.to_json(),
    }
    log(f"P2 batch {sizes.batch}: env rollout {comparison.a_rate:,.0f} tok/s, generate() + one reward call "
        f"{comparison.b_rate:,.0f} tok/s, ratio {comparison.ratio:.2f} (without scoring {unscored:.2f}; scoring "
        f"{results['a_scoring_share']:.0%} / {results['b_scoring_share']:.0%} of the time)")
    gold = "gold judge on both sides" if results["gold_judge"] else "no gold judge"
    detail = f"{comparison.a_rate:,.0f} vs {comparison.b_rate:,.0f} new tokens/s, batch {sizes.batch}, {gold}"
    results["headline"] = [
        {"figure": f"P2 rollout tokens/s, env rollout / generate() + one reward call{' (bf16)' if bf16 else ''}",
         "ratio": comparison.ratio, "value": f"{comparison.ratio:.2f}x", "goal": f">= {ROLLOUT_GOAL:g}x",
         "met": comparison.ratio >= ROLLOUT_GOAL, "detail": detail},
        {"figure": f"P2 rollout tokens/s without scoring on either side{' (bf16)' if bf16 else ''}",
         "ratio": unscored, "value": f"{unscored:.2f}x", "goal": None, "met": None,
         "detail": f"scoring {results['a_scoring_share']:.0%} (env) and {results['b_scoring_share']:.0%} (by hand) of the time"},
    ]
    return results


def _ratio_without(comparison: Comparison, key: str) -> float:
    """Median over pairs of the ratio of rates once each run's ``extra[key]`` seconds are taken out."""

    def rate(sample: Sample) -> float:
        return sample.work / max(sample.seconds - sample.extra[key], 1e-12)

    return statistics.median(rate(a) / rate(b) for a, b in zip(comparison.a_samples, comparison.b_samples))


__all__ = ["HandWritten", "P2Sizes", "rollout_comparison", "tokens_up_to_eos"]
