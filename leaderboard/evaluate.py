"""Run an env's evaluation protocol on a policy: ``rlhf-gym evaluate`` and `rlhf_gym.evaluate`.

    rlhf-gym evaluate --env RLHF-Summarize-v0 --policy runs/ppo/final_policy --seed 0
    rlhf-gym evaluate --env RLHF-Summarize-v0 --policy runs/ppo/seed{0,1,2}/final_policy ... --submission my.json

For each decoding of the protocol (the protocol temperature, and greedy) the policy and the
shipped SFT policy answer the same test posts with the same sampling stream, batch by
batch through the env, and each response is scored by the env (the preference model and
the gold judge). The metrics (`rlhf_gym.leaderboard.protocol.METRICS`):

- ``gold``, and ``gold_change`` ± ``gold_change_sem``: the mean per-post difference from the
  SFT policy and its standard error (paired: common random numbers);
- ``win_rate``: against the reference summaries under the gold judge, ties counted half;
- ``proxy_reward``: the shipped preference model's normalised score;
- ``kl``: KL(pi || pi_SFT) per response, the Monte-Carlo k1 estimate
  ``sum_t log pi(y_t) - log pi_SFT(y_t)`` over the sampled responses at the protocol
  temperature (both policies scored at it); reported for the sampled decoding only;
- ``rouge_l`` (F-measure, `rouge-score`) and ``bleu`` (corpus BLEU, `sacrebleu`) against
  the references;
- ``perplexity`` of the responses under the SFT policy (its untempered distribution), over
  all response tokens;
- ``distinct_1``, ``distinct_2``: distinct word n-grams over all n-grams of the responses;
- ``response_length`` (tokens, EOS included) and ``eos_rate``.

``--policy best-of-N:PATH`` evaluates best-of-N sampling from PATH: N samples per post (N
sampling streams), the one the shipped preference model scores highest is the response.
Its ``kl`` is the analytic ``log N - (N - 1) / N`` (Stiennon et al. 2020, appendix G.3; an
upper bound, and exact for distinct samples), since best-of-N has no log-probs to estimate
it from; its greedy row is PATH's greedy decoding (one greedy response per post).
"""

from __future__ import annotations

import json
import math
import platform
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from tqdm.auto import tqdm

import rlhf_gym
from rlhf_gym.env.rollout import EpisodeBatch, collect_episodes, paired_difference
from rlhf_gym.leaderboard.protocol import Protocol, get_protocol
from rlhf_gym.lm.policy import CausalLMPolicy, per_token_kl

DECODINGS = ("sampled", "greedy")


@dataclass
class _Side:
    """One policy's episodes under one decoding, concatenated over the protocol's batches."""

    gold: list[float]
    proxy: list[float]
    responses: list[str]
    references: list[str]
    reference_gold: list[float]
    kl: list[float]
    sft_logprob_sum: float
    tokens: int
    lengths: list[int]
    eos: list[bool]


def evaluate(env_id: str, policy: str | Path, *, seed: int = 0, device: str = "cpu", progress: bool = True) -> dict[str, Any]:
    """Run ``env_id``'s protocol on ``policy`` (a path or hub id of a causal LM) with seed ``seed``.

    Returns:
        ``{"env_id", "protocol_version", "protocol_hash", "seed", "policy", "metrics":
        {"sampled": {...}, "greedy": {...}}}``.
    """
    protocol = get_protocol(env_id)
    task = rlhf_gym.get_task(env_id)
    best_of, path = parse_policy(str(policy))
    env = gym.make_vec(env_id, num_envs=protocol.batch_size, split=protocol.split, autoreset_mode="disabled",
                       max_new_tokens=protocol.max_new_tokens, device=device)
    candidate = CausalLMPolicy.from_pretrained(path, temperature=protocol.temperature).to(device).eval()
    sft = task.sft_policy(device, protocol.temperature).eval()
    sft_untempered = CausalLMPolicy(sft.model, temperature=1.0)
    bar = tqdm(total=(best_of + 3) * protocol.posts, desc=f"evaluate {Path(path).name}", unit="response", disable=not progress)
    metrics = {}
    for decoding in DECODINGS:
        greedy = decoding == "greedy"
        sides = [_run(env, actor, sft, sft_untempered, task, protocol, seed, greedy=greedy,
                      best_of=1 if greedy or actor is sft else best_of, bar=bar) for actor in (candidate, sft)]
        metrics[decoding] = _metrics(*sides, with_kl=not greedy)
        if best_of > 1 and not greedy:
            metrics[decoding]["kl"] = math.log(best_of) - (best_of - 1) / best_of
    bar.close()
    return {"env_id": env_id, "protocol_version": protocol.version, "protocol_hash": protocol.hash, "seed": seed,
            "policy": str(policy), "metrics": metrics}


@torch.no_grad()
def _run(env, actor: CausalLMPolicy, sft: CausalLMPolicy, sft_untempered: CausalLMPolicy, task, protocol: Protocol,
         seed: int, *, greedy: bool, bar, best_of: int = 1) -> _Side:
    side = _Side([], [], [], [], [], [], 0.0, 0, [], [])
    width = env.max_prompt_tokens
    for reset_seed in protocol.batch_seeds():
        stream = protocol.sampling_seed + seed * 1_000_003 + reset_seed
        batch = _best_of(env, actor, reset_seed, stream, best_of, greedy)
        prompts = env.prompts
        mask = batch.response_mask
        sft_logprobs, _ = sft.token_logprobs(batch.input_ids, batch.attention_mask, width)
        actor_logprobs = sft_logprobs if actor is sft else actor.token_logprobs(batch.input_ids, batch.attention_mask, width)[0]
        untempered, _ = sft_untempered.token_logprobs(batch.input_ids, batch.attention_mask, width)
        side.kl.extend(per_token_kl(actor_logprobs, sft_logprobs, mask).sum(-1).tolist())
        side.sft_logprob_sum += float((untempered * mask).sum())
        side.tokens += int(mask.sum())
        side.gold.extend(batch.gold.tolist())
        side.proxy.extend(batch.preference.tolist())
        side.responses.extend(batch.response_texts)
        references = [p.reference or "" for p in prompts]
        side.references.extend(references)
        side.reference_gold.extend(task.gold_judge(prompts, references).tolist())
        side.lengths.extend(batch.response_lengths.tolist())
        side.eos.extend(batch.terminated.tolist())
        bar.update(len(prompts))
    n = protocol.posts
    for name in ("gold", "proxy", "responses", "references", "reference_gold", "kl", "lengths", "eos"):
        setattr(side, name, getattr(side, name)[:n])
    return side


def _best_of(env, actor: CausalLMPolicy, reset_seed: int, stream: int, n: int, greedy: bool) -> EpisodeBatch:
    """One batch of episodes; with ``n > 1``, each row's highest-proxy response of n samples
    (sample j draws from stream ``stream + j * 7_919``; sample 0 is the plain run's)."""
    generator = torch.Generator(env.device)
    best = collect_episodes(env, actor, seed=reset_seed, generator=generator.manual_seed(stream), greedy=greedy)
    for j in range(1, n):
        other = collect_episodes(env, actor, seed=reset_seed, generator=generator.manual_seed(stream + j * 7_919), greedy=greedy)
        better = other.preference > best.preference  # (N,) rows where this sample wins
        for name in ("input_ids", "attention_mask", "response_mask", "logprobs", "scores", "preference", "gold", "terminated"):
            mine, theirs = getattr(best, name), getattr(other, name)
            setattr(best, name, torch.where(better.view(-1, *[1] * (mine.ndim - 1)), theirs, mine))
        best.response_texts = [t if b else s for s, t, b in zip(best.response_texts, other.response_texts, better.tolist())]
    return best


def parse_policy(spec: str) -> tuple[int, str]:
    """``"best-of-N:PATH"`` -> (N, PATH); a plain path or hub id -> (1, it).

    Example:
        >>> parse_policy("best-of-16:envs/summarize/assets/sft_policy"), parse_policy("runs/ppo/final_policy")
        ((16, 'envs/summarize/assets/sft_policy'), (1, 'runs/ppo/final_policy'))
    """
    if spec.startswith("best-of-"):
        count, _, path = spec.removeprefix("best-of-").partition(":")
        if not count.isdigit() or int(count) < 1 or not path:
            raise ValueError(f"policy {spec!r}: expected best-of-N:PATH with N >= 1")
        return int(count), path
    return 1, spec


def _metrics(policy: _Side, sft: _Side, *, with_kl: bool) -> dict[str, float]:
    from rouge_score import rouge_scorer
    from sacrebleu.metrics import BLEU

    gold, sft_gold, ref_gold = (np.asarray(x, dtype=np.float64) for x in (policy.gold, sft.gold, policy.reference_gold))
    change, sem = paired_difference(gold, sft_gold)
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    rouge = [scorer.score(ref, hyp)["rougeL"].fmeasure for ref, hyp in zip(policy.references, policy.responses)]
    result = {
        "gold": float(gold.mean()),
        "gold_change": change,
        "gold_change_sem": sem,
        "win_rate": float(np.mean((gold > ref_gold) + 0.5 * (gold == ref_gold))),
        "proxy_reward": float(np.mean(policy.proxy)),
        "kl": float(np.mean(policy.kl)),
        "rouge_l": float(np.mean(rouge)),
        "bleu": float(BLEU().corpus_score(policy.responses, [policy.references]).score),
        "perplexity": float(math.exp(-policy.sft_logprob_sum / max(policy.tokens, 1))),
        "distinct_1": distinct_n(policy.responses, 1),
        "distinct_2": distinct_n(policy.responses, 2),
        "response_length": float(np.mean(policy.lengths)),
        "eos_rate": float(np.mean(policy.eos)),
    }
    if not with_kl:
        del result["kl"]  # a greedy decoding is no sample of pi: the k1 estimate does not apply
    return result


def distinct_n(texts: Sequence[str], n: int) -> float:
    """Distinct word n-grams over all word n-grams of ``texts`` (Li et al. 2016); 0 with none.

    Example:
        >>> distinct_n(["a b a b", "a b"], 2)  # bigrams: ab, ba, ab, ab -> {ab, ba}
        0.5
    """
    grams = [tuple(words[i : i + n]) for words in (t.split() for t in texts) for i in range(len(words) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def submission(
    results: Sequence[dict[str, Any]],
    *,
    agent: str,
    training_env_steps: int,
    paper: str | None = None,
    code: str | None = None,
    description: str | None = None,
    hardware: str | None = None,
) -> dict[str, Any]:
    """A leaderboard submission (leaderboard/schema.json) from `evaluate` results, one per run."""
    if not results:
        raise ValueError("a submission needs the results of at least one run")
    first = results[0]
    for result in results:
        if (result["env_id"], result["protocol_hash"]) != (first["env_id"], first["protocol_hash"]):
            raise ValueError("every run of a submission must be evaluated on the same env and protocol")
    return {
        "schema_version": 1,
        "env_id": first["env_id"],
        "protocol_version": first["protocol_version"],
        "protocol_hash": first["protocol_hash"],
        "agent": {"name": agent, "paper": paper, "code": code, **({"description": description} if description else {})},
        "training_env_steps": int(training_env_steps),
        "hardware": hardware or f"{platform.machine()} CPU, {torch.get_num_threads()} threads",
        "date": date.today().isoformat(),
        "runs": [{"seed": r["seed"], "policy": r["policy"], "metrics": r["metrics"]} for r in results],
    }


def evaluate_main(
    env: str,
    policy: list[str],
    seed: list[int] | None = None,
    device: str = "cpu",
    submission_path: str | None = None,
    agent: str | None = None,
    training_env_steps: int = 0,
    paper: str | None = None,
    code: str | None = None,
) -> None:
    """``rlhf-gym evaluate``: print each run's metrics; with a submission path, write the submission."""
    seeds = list(range(len(policy))) if seed is None else seed
    if len(seeds) != len(policy):
        raise SystemExit(f"--seed gives {len(seeds)} seeds for {len(policy)} policies; give one per policy")
    try:
        get_protocol(env)
    except KeyError as error:
        raise SystemExit(error.args[0]) from None
    results = []
    for path, run_seed in zip(policy, seeds):
        result = evaluate(env, path, seed=run_seed, device=device)
        results.append(result)
        sampled, greedy = result["metrics"]["sampled"], result["metrics"]["greedy"]
        print(f"{path} (seed {run_seed}): gold {sampled['gold']:.3f} ({sampled['gold_change']:+.3f} ± "
              f"{sampled['gold_change_sem']:.3f} vs SFT), win rate {sampled['win_rate']:.3f}, KL {sampled['kl']:.2f}, "
              f"proxy {sampled['proxy_reward']:+.3f}, ROUGE-L {sampled['rouge_l']:.3f}, BLEU {sampled['bleu']:.1f}; "
              f"greedy gold {greedy['gold']:.3f}")
    if submission_path is not None:
        data = submission(results, agent=agent or Path(policy[0]).name, training_env_steps=training_env_steps, paper=paper, code=code)
        Path(submission_path).write_text(json.dumps(data, indent=2) + "\n")
        print(f"wrote {submission_path} ({len(results)} runs, protocol {data['protocol_version']} {data['protocol_hash'][:19]}...)")
