"""Run an env's evaluation protocol on a policy: ``rlhf-gym evaluate`` and `rlhf_gym.evaluate`.

    rlhf-gym evaluate --env RLHF-Summarize-v0 --policy runs/ppo/final_policy --seed 0
    rlhf-gym evaluate --env RLHF-Summarize-v0 --policy runs/ppo/seed{0,1,2}/final_policy --seed 0 1 2 \\
        --agent "PPO, 20k env steps" --training-env-steps 20000 --submission leaderboard/submissions/ppo.json

For each decoding of the protocol (the protocol temperature, and greedy) the policy and the
shipped SFT policy answer the same test posts with the same sampling stream, batch by
batch through the env, and each response is scored by the env (the preference model and,
where the env has one, the gold judge). The metrics (`rlhf_gym.leaderboard.protocol.METRICS`;
each protocol reports those its env supports, `Protocol.metrics`):

- ``gold``, and ``gold_change`` ± ``gold_change_sem``: the mean per-post difference from the
  SFT policy and its standard error (paired: common random numbers); with a gold judge only;
- ``win_rate``: against the reference responses under the gold judge, ties counted half;
  with a gold judge and references only;
- ``proxy_reward``: the shipped preference model's normalised score;
- ``kl``: KL(pi || pi_SFT) per response, the Monte-Carlo k1 estimate
  ``sum_t log pi(y_t) - log pi_SFT(y_t)`` over the sampled responses at the protocol
  temperature (both policies scored at it); reported for the sampled decoding only;
- ``rouge_l`` (F-measure, `rouge-score`) and ``bleu`` (corpus BLEU, `sacrebleu`) against
  the references; with references only;
- ``perplexity`` of the responses under the SFT policy (its untempered distribution), over
  all response tokens;
- ``distinct_1``, ``distinct_2``: distinct word n-grams over all n-grams of the responses;
- ``response_length`` (tokens, EOS included) and ``eos_rate``;
- the world's own metrics, where its protocol has any (`World.protocol_metrics`, computed
  by `World.response_metrics` from the posts' records, the responses and the references:
  Dialogue's over-refusal rate, say); a metric with no case is null.

Each result also carries the per-post scores of both sides (``per_post``), which a
submission records so that the table can compute intervals over posts: the gold scores
(``gold``, ``sft_gold``), or, where the env has no gold judge, the proxy's (``proxy``,
``sft_proxy``; `Protocol.per_post_keys`), the score the table then ranks by.

**What a policy must be.** A causal LM checkpoint (safetensors, no remote code: see
`rlhf_gym.lm.loading`) whose vocabulary is the env's: the protocol reads and writes token ids
with the *env's* tokenizer, so ``config.vocab_size`` must equal the env's action count, and a
checkpoint that ships a tokenizer of its own must ship the env's (same token -> id mapping).
A checkpoint without a tokenizer is read with the env's (``rlhf-gym evaluate`` prints a note
saying so). `load_policy` checks all of this before anything is evaluated and raises
`PolicyError` with one line naming the policy.

``--policy best-of-N:PATH`` evaluates best-of-N sampling from PATH: N samples per post (N
sampling streams), the one the shipped preference model scores highest is the response.
Its ``kl`` is the analytic ``log N - (N - 1) / N`` (Stiennon et al. 2020, appendix G.3; an
upper bound, and exact for distinct samples), since best-of-N has no log-probs to estimate
it from; its greedy row is PATH's greedy decoding (one greedy response per post).

``--policy temperature-T:PATH`` evaluates PATH sampled at temperature T instead of the
protocol's (a decoding baseline: the SFT policy at T=0.3, say); its ``kl`` is the k1
estimate over its own samples, against the SFT policy at the protocol temperature.

**Writing a submission** (``--submission FILE``) checks, before evaluating anything, that
there are at least `MIN_RUNS` runs, that ``--agent`` names the agent, that
``--training-env-steps`` is given (0 said explicitly for an untrained policy), and that each
run's training command is known when the steps are > 0 (``--training-command TEMPLATE``
with ``{seed}``, or the ``"command"`` of ``summary.json`` beside the policy folder, as
``rlhf-gym train`` writes it). Local policy paths are stored relative to the submission
file's folder; a hub id needs ``--revision``, the 40-hex commit evaluated.
"""

from __future__ import annotations

import json
import math
import platform
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import torch
from safetensors import SafetensorError
from tqdm.auto import tqdm

import rlhf_gym
from rlhf_gym.env.rollout import EpisodeBatch, collect_episodes, paired_difference
from rlhf_gym.leaderboard.policy_spec import (
    REVISION,
    PolicyError,
    decoding_prefix,
    is_hub_id,
    parse_policy,
    policy_temperature,
    relative_policy,
)
from rlhf_gym.leaderboard.protocol import METRICS, Protocol, get_protocol
from rlhf_gym.leaderboard.validate import MIN_RUNS, SCHEMA_VERSION, agent_name_problem, validate_submission
from rlhf_gym.lm.loading import MissingArtifactError, UnsafeCheckpointError, load_tokenizer, one_line
from rlhf_gym.lm.policy import CausalLMPolicy, per_token_kl
from rlhf_gym.worlds import wins_against

__all__ = ["PolicyError", "evaluate", "load_policy", "parse_policy", "submission"]

DECODINGS = ("sampled", "greedy")
PER_POST_DECIMALS = 6
"""A submission's per-post scores are rounded to this many decimals (their means stay within 1e-6)."""
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model", "spiece.model")
"""Files that mean a checkpoint folder ships a tokenizer of its own."""


@dataclass
class _Side:
    """One policy's episodes under one decoding, concatenated over the protocol's batches."""

    gold: list[float]  # empty without a gold judge
    proxy: list[float]
    responses: list[str]
    references: list[str]
    reference_gold: list[float]  # empty unless the protocol reports win_rate
    kl: list[float]
    sft_logprob_sum: float
    tokens: int
    lengths: list[int]
    eos: list[bool]
    records: list[Any]  # each post's record (what the gold judge and the world's metrics read)


@dataclass
class LoadedPolicy:
    """A policy that passed `load_policy`'s checks.

    Attributes:
        best_of: N of ``best-of-N:``, 1 for a plain policy.
        policy: the checkpoint, as a `CausalLMPolicy`.
        note: what the user should know but need not act on (the checkpoint has no
            tokenizer, so the env's is used), or None.
    """

    best_of: int
    policy: CausalLMPolicy
    note: str | None


# Loading and checking a policy --------------------------------------------------------------
def load_policy(env_id: str, spec: str, *, revision: str | None = None, temperature: float = 1.0) -> LoadedPolicy:
    """Load the policy ``spec`` names and check that ``env_id``'s protocol can evaluate it.

    Args:
        env_id: the env whose protocol will evaluate the policy.
        spec: a local checkpoint folder, a hub id, or ``best-of-N:`` or ``temperature-T:`` either.
        revision: the hub commit (or branch, tag) for a hub id; None for a local folder.
        temperature: the policy's sampling temperature (a ``temperature-T:`` spec's T replaces it).

    Raises:
        PolicyError (one line, naming ``spec``): a malformed ``best-of-`` spec; a missing
            folder; a revision for a non-hub-id; a checkpoint refused as unsafe (pickled
            weights only, remote code) or failing to load; a vocabulary of another size than
            the env's action space; a tokenizer of its own that is not the env's.
    """
    best_of, location = parse_policy(spec)
    temperature = policy_temperature(spec) or temperature  # temperature-T: samples at T instead
    local = Path(location)
    if revision is not None and not is_hub_id(location):
        raise PolicyError(f"policy {spec!r}: a revision ({revision}) names a hub commit, but {location!r} is no hub id owner/name")
    if revision is None and not local.is_dir() and not is_hub_id(location):
        raise PolicyError(f"policy {spec!r}: no folder {str(local.resolve())!r}; expected a checkpoint folder, a hub id "
                          "owner/name (with its revision), best-of-N:PATH or temperature-T:PATH")
    is_local = revision is None and local.is_dir()
    try:
        policy = CausalLMPolicy.from_pretrained(location, temperature=temperature, revision=None if is_local else revision,
                                                local_files_only=is_local)
    except UnsafeCheckpointError as error:
        raise PolicyError(f"policy {spec!r}: {one_line(error)}") from None
    except (OSError, ValueError, RuntimeError, SafetensorError) as error:  # OSError includes MissingArtifactError
        raise PolicyError(f"policy {spec!r}: the checkpoint does not load ({type(error).__name__}: {one_line(error)})") from None
    env_tokenizer = rlhf_gym.get_task(env_id).tokenizer()
    actions = len(env_tokenizer)  # the env's Discrete(V)
    vocab = getattr(policy.model.config, "vocab_size", None) or policy.model.get_output_embeddings().weight.shape[0]
    if vocab != actions:
        why = ("it could choose token ids the env has no action for" if vocab > actions
               else "it cannot read the env's token ids at or above its vocabulary size")
        raise PolicyError(f"policy {spec!r}: its vocabulary has {vocab} tokens (config vocab_size), the env {env_id} has {actions} "
                          f"actions (its tokenizer's size); {why}. Train the policy with the env's tokenizer")
    note = _tokenizer_note(spec, location, revision if not is_local else None, is_local, env_tokenizer)
    return LoadedPolicy(best_of, policy, note)


def _tokenizer_note(spec: str, location: str, revision: str | None, is_local: bool, env_tokenizer: Any) -> str | None:
    """None when ``location`` ships the env's tokenizer; a note when it ships none; raises
    `PolicyError` when it ships another one."""
    absent = (f"{spec} has no tokenizer of its own; the protocol reads and writes its token ids with the env's tokenizer, "
              "as it would anyway")
    if is_local and not any((Path(location) / name).is_file() for name in TOKENIZER_FILES):
        return absent
    try:
        own = load_tokenizer(location, revision=revision, local_files_only=is_local)
    except UnsafeCheckpointError as error:
        raise PolicyError(f"policy {spec!r}: {one_line(error)}") from None
    except MissingArtifactError as error:
        if not is_local:
            return absent  # a hub repository without tokenizer files
        raise PolicyError(f"policy {spec!r}: it ships tokenizer files that do not load ({one_line(error)})") from None
    except ValueError as error:  # no EOS, or pad == EOS: the env's tokenizer has both, so this one is another
        raise PolicyError(f"policy {spec!r}: it ships its own tokenizer, which is not the env's ({one_line(error)}); "
                          "the protocol uses the env's tokenizer: save the checkpoint without one, or with the env's") from None
    mine, theirs = own.get_vocab(), env_tokenizer.get_vocab()
    if mine == theirs:
        return None
    token = next((t for t in sorted(set(mine) | set(theirs)) if mine.get(t) != theirs.get(t)), None)
    raise PolicyError(
        f"policy {spec!r}: it ships its own tokenizer ({len(mine)} tokens), which differs from the env's ({len(theirs)} tokens; "
        f"e.g. {token!r} is id {mine.get(token)} in its tokenizer and {theirs.get(token)} in the env's). The protocol reads and "
        "writes token ids with the env's tokenizer, so the policy must be trained with it: save the checkpoint without a "
        "tokenizer, or with the env's"
    )


def check_policies(env_id: str, policies: Sequence[tuple[str, str | None]]) -> tuple[list[str | None], list[str | None]]:
    """`load_policy` on each ``(spec, revision)`` before anything is evaluated.

    Each model is loaded, checked and released, so that a missing or hostile checkpoint of
    the last run is found before the first run is evaluated.

    Returns:
        Per policy: the `PolicyError` message or None, and the note or None.
    """
    problems: list[str | None] = []
    notes: list[str | None] = []
    for spec, revision in policies:
        try:
            loaded = load_policy(env_id, spec, revision=revision)
        except PolicyError as error:
            problems.append(str(error))
            notes.append(None)
            continue
        problems.append(None)
        notes.append(loaded.note)
        del loaded
    return problems, notes


# The protocol --------------------------------------------------------------------------------
def evaluate(
    env_id: str,
    policy: str | Path,
    *,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = True,
    revision: str | None = None,
) -> dict[str, Any]:
    """Run ``env_id``'s protocol on ``policy`` with seed ``seed``.

    Args:
        env_id: the env (it has a protocol: `rlhf_gym.leaderboard.protocol`).
        policy: a checkpoint folder, a hub id, or ``best-of-N:`` or ``temperature-T:`` either (see `load_policy`
            for what the checkpoint must be; one without a tokenizer is read with the env's).
        seed: selects the sampling stream (the posts are the same for every seed).
        device: where the env and the models run.
        progress: show a progress bar.
        revision: the hub commit of a hub-id policy.

    Returns:
        ``{"env_id", "protocol_version", "protocol_hash", "seed", "policy", "revision",
        "metrics": {"sampled": {...}, "greedy": {...}}, "per_post": {"sampled": {"gold":
        [...], "sft_gold": [...]}, "greedy": {...}}}`` (``metrics`` has the protocol's
        metrics; ``per_post`` its `Protocol.per_post_keys`: ``proxy`` and ``sft_proxy``
        without a gold judge).

    Raises:
        PolicyError: the policy cannot be evaluated (checked before the protocol starts).
    """
    protocol = get_protocol(env_id)
    loaded = load_policy(env_id, str(policy), revision=revision, temperature=protocol.temperature)
    best_of = loaded.best_of
    candidate = loaded.policy.to(device).eval()
    env = protocol.make_env(device)
    sft = protocol.task.sft_policy(device, protocol.temperature).eval()
    sft_untempered = CausalLMPolicy(sft.model, temperature=1.0)
    name = Path(parse_policy(str(policy))[1]).name
    bar = tqdm(total=(best_of + 3) * protocol.posts, desc=f"evaluate {name}", unit="response", disable=not progress)
    metrics, per_post = {}, {}
    for decoding in DECODINGS:
        greedy = decoding == "greedy"
        sides = [_run(env, actor, sft, sft_untempered, protocol, seed, greedy=greedy,
                      best_of=1 if greedy or actor is sft else best_of, bar=bar) for actor in (candidate, sft)]
        metrics[decoding] = _metrics(*sides, protocol.metrics, with_kl=not greedy, world=protocol.task.world)
        scores = [side.gold if protocol.has_gold_judge else side.proxy for side in sides]
        per_post[decoding] = dict(zip(protocol.per_post_keys, scores))
        if best_of > 1 and not greedy:
            metrics[decoding]["kl"] = math.log(best_of) - (best_of - 1) / best_of
    bar.close()
    return {"env_id": env_id, "protocol_version": protocol.version, "protocol_hash": protocol.hash, "seed": seed,
            "policy": str(policy), "revision": revision, "metrics": metrics, "per_post": per_post}


@torch.no_grad()
def _run(env, actor: CausalLMPolicy, sft: CausalLMPolicy, sft_untempered: CausalLMPolicy, protocol: Protocol,
         seed: int, *, greedy: bool, bar, best_of: int = 1) -> _Side:
    side = _Side([], [], [], [], [], [], 0.0, 0, [], [], [])
    width = env.max_prompt_tokens
    task = protocol.task
    with_references = task.has_references
    with_win_rate = "win_rate" in protocol.metrics  # the gold judge scores the references too
    for reset_seed in protocol.batch_seeds():
        stream = protocol.sampling_seed + seed * 1_000_003 + reset_seed
        batch = _best_of(env, actor, reset_seed, stream, best_of, greedy)
        prompts = env.prompts
        mask = batch.response_mask
        sft_logprobs, _ = sft.token_logprobs(batch.input_ids, batch.attention_mask, width, entropy=False)
        if actor is sft:
            actor_logprobs = sft_logprobs
        else:
            actor_logprobs = actor.token_logprobs(batch.input_ids, batch.attention_mask, width, entropy=False)[0]
        untempered, _ = sft_untempered.token_logprobs(batch.input_ids, batch.attention_mask, width, entropy=False)
        side.kl.extend(per_token_kl(actor_logprobs, sft_logprobs, mask).sum(-1).tolist())
        side.sft_logprob_sum += float((untempered * mask).sum())
        side.tokens += int(mask.sum())
        if protocol.has_gold_judge:  # without one the env's gold is NaN: never a metric
            side.gold.extend(batch.gold.tolist())
        side.proxy.extend(batch.preference.tolist())
        side.responses.extend(batch.response_texts)
        if with_references:
            references = [p.reference or "" for p in prompts]
            side.references.extend(references)
            if with_win_rate:
                side.reference_gold.extend(task.gold_judge(prompts, references).tolist())
        side.lengths.extend(batch.response_lengths.tolist())
        side.eos.extend(batch.terminated.tolist())
        side.records.extend(p.record for p in prompts)
        bar.update(len(prompts) * best_of)  # best-of-N samples N responses per post
    n = protocol.posts
    for name in ("gold", "proxy", "responses", "references", "reference_gold", "kl", "lengths", "eos", "records"):
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
        for name in ("input_ids", "attention_mask", "response_mask", "logprobs", "scores", "preference", "penalty", "gold", "terminated"):
            mine, theirs = getattr(best, name), getattr(other, name)
            setattr(best, name, torch.where(better.view(-1, *[1] * (mine.ndim - 1)), theirs, mine))
        best.response_texts = [t if b else s for s, t, b in zip(best.response_texts, other.response_texts, better.tolist())]
    return best


def _metrics(policy: _Side, sft: _Side, names: Sequence[str], *, with_kl: bool, world: Any = None) -> dict[str, float | None]:
    """The metrics ``names`` (a protocol's, in its order) of ``policy`` against ``sft``; ``kl`` only ``with_kl``;
    the names of ``world``'s `World.protocol_metrics` from its `World.response_metrics`."""
    result: dict[str, float | None] = {}
    if "gold" in names:
        gold, sft_gold = np.asarray(policy.gold, dtype=np.float64), np.asarray(sft.gold, dtype=np.float64)
        change, sem = paired_difference(gold, sft_gold)
        result |= {"gold": float(gold.mean()), "gold_change": change, "gold_change_sem": sem}
    if "win_rate" in names:
        ref_gold = np.asarray(policy.reference_gold, dtype=np.float64)
        result["win_rate"] = float(np.mean(wins_against(gold, ref_gold)))  # ties within GOLD_TIE count half
    result["proxy_reward"] = float(np.mean(policy.proxy))
    if with_kl:  # a greedy decoding is no sample of pi: the k1 estimate does not apply
        result["kl"] = float(np.mean(policy.kl))
    if "rouge_l" in names:
        from rouge_score import rouge_scorer

        scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
        result["rouge_l"] = float(np.mean([scorer.score(ref, hyp)["rougeL"].fmeasure
                                           for ref, hyp in zip(policy.references, policy.responses)]))
    if "bleu" in names:
        from sacrebleu.metrics import BLEU

        result["bleu"] = float(BLEU().corpus_score(policy.responses, [policy.references]).score)
    result |= {
        "perplexity": float(math.exp(-policy.sft_logprob_sum / max(policy.tokens, 1))),
        "distinct_1": distinct_n(policy.responses, 1),
        "distinct_2": distinct_n(policy.responses, 2),
        "response_length": float(np.mean(policy.lengths)),
        "eos_rate": float(np.mean(policy.eos)),
    }
    own = [name for name in names if name not in METRICS]
    if own:
        computed = world.response_metrics(policy.records, policy.responses, policy.references or [""] * len(policy.responses))
        result |= {name: None if computed[name] is None else float(computed[name]) for name in own}
    unexpected = set(result) - set(names)
    if unexpected:  # the protocol's metric set and this function must agree
        raise AssertionError(f"computed metrics {sorted(unexpected)} that the protocol does not report")
    return {name: result[name] for name in names if name in result}


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
    training_commands: Sequence[str | None] | None = None,
    submission_dir: str | Path | None = None,
    paper: str | None = None,
    code: str | None = None,
    description: str | None = None,
    hardware: str | None = None,
) -> dict[str, Any]:
    """A leaderboard submission (leaderboard/schema.json, version 2) from `evaluate` results, one per run.

    Args:
        results: `evaluate`'s results, one per run (seed), all under one env and protocol.
        agent: the agent's name (the row's label).
        training_env_steps: env steps used to train each run's policy (0: not trained).
        training_commands: per run, the shell command that trained its policy; required
            (non-empty) when ``training_env_steps > 0``, all None when it is 0.
        submission_dir: the folder the file will be written to; local policy paths are then
            stored relative to it (the form `rlhf-gym leaderboard verify` resolves). None
            keeps them as given.
        paper, code: links (http(s) URLs) or None.
        description: a sentence about the agent, or None.
        hardware: what evaluated it (default: `default_hardware` with torch's thread count).

    Raises:
        ValueError: no results, results of different envs or protocols, or training commands
            that do not fit ``training_env_steps``.
    """
    if not results:
        raise ValueError("a submission needs the results of at least one run")
    first = results[0]
    for result in results:
        if (result["env_id"], result["protocol_hash"]) != (first["env_id"], first["protocol_hash"]):
            raise ValueError("every run of a submission must be evaluated on the same env and protocol")
    commands = [None] * len(results) if training_commands is None else list(training_commands)
    if len(commands) != len(results):
        raise ValueError(f"{len(commands)} training commands for {len(results)} runs; give one per run")
    if training_env_steps > 0 and not all(isinstance(c, str) and c.strip() for c in commands):
        raise ValueError(f"training_env_steps is {training_env_steps}: every run needs the command that trained it")
    if training_env_steps == 0 and any(c is not None for c in commands):
        raise ValueError("training_env_steps is 0 (not trained): the runs have no training commands")
    runs = []
    for result, command in zip(results, commands):
        policy, revision = result["policy"], result.get("revision")
        if submission_dir is not None and revision is None:
            prefix, location = decoding_prefix(policy)
            policy = prefix + relative_policy(location, submission_dir)
        runs.append({
            "seed": result["seed"],
            "policy": policy,
            **({"revision": revision} if revision is not None else {}),
            "training_command": command,
            "metrics": result["metrics"],
            "per_post": {decoding: {side: [round(float(x), PER_POST_DECIMALS) for x in scores]
                                    for side, scores in result["per_post"][decoding].items()}
                         for decoding in DECODINGS},
        })
    return {
        "schema_version": SCHEMA_VERSION,
        "env_id": first["env_id"],
        "protocol_version": first["protocol_version"],
        "protocol_hash": first["protocol_hash"],
        "agent": {"name": agent, "paper": paper, "code": code, **({"description": description} if description else {})},
        "training_env_steps": int(training_env_steps),
        "hardware": hardware or default_hardware("cpu", torch.get_num_threads()),
        "date": date.today().isoformat(),
        "runs": runs,
    }


def metrics_line(metrics: dict[str, dict[str, float]]) -> str:
    """One run's headline metrics in one line (``rlhf-gym evaluate`` prints it): those the protocol reports.

    Example:
        >>> metrics_line({"sampled": {"proxy_reward": 0.5, "kl": 1.25}, "greedy": {"proxy_reward": 0.75}})
        'proxy +0.500 (no gold judge), KL 1.25; greedy proxy +0.750'
        >>> metrics_line({"sampled": {"proxy_reward": 0.5, "kl": 1.25, "over_refusal": 0.1}, "greedy": {"proxy_reward": 0.75}})
        'proxy +0.500 (no gold judge), KL 1.25, over refusal 0.100; greedy proxy +0.750'
    """
    sampled, greedy = metrics["sampled"], metrics["greedy"]
    parts = []
    if "gold" in sampled:
        parts.append(f"gold {sampled['gold']:.3f} ({sampled['gold_change']:+.3f} ± {sampled['gold_change_sem']:.3f} vs SFT)")
    if "win_rate" in sampled:
        parts.append(f"win rate {sampled['win_rate']:.3f}")
    parts.append(f"KL {sampled['kl']:.2f}")
    proxy = f"proxy {sampled['proxy_reward']:+.3f}"
    if "gold" in sampled:
        parts.append(proxy)
    else:
        parts.insert(0, f"{proxy} (no gold judge)")
    if "rouge_l" in sampled:
        parts.append(f"ROUGE-L {sampled['rouge_l']:.3f}")
    if "bleu" in sampled:
        parts.append(f"BLEU {sampled['bleu']:.1f}")
    for name in (key for key in sampled if key not in METRICS):  # the world's own, e.g. over_refusal
        value = sampled[name]
        parts.append(f"{name.replace('_', ' ')} {'n/a' if value is None else f'{value:.3f}'}")
    headline = f"greedy gold {greedy['gold']:.3f}" if "gold" in greedy else f"greedy proxy {greedy['proxy_reward']:+.3f}"
    return ", ".join(parts) + "; " + headline


def submission_json(data: dict[str, Any]) -> str:
    """A submission as JSON text: indented, with each array of numbers on one line (the
    per-post scores would otherwise take a line per number).

    Example:
        >>> print(submission_json({"runs": [{"gold": [0.5, 1.0]}]}), end="")
        {
          "runs": [
            {
              "gold": [0.5, 1.0]
            }
          ]
        }
    """
    text = json.dumps(data, indent=2, ensure_ascii=False)
    # A JSON string never holds a raw newline, so "[" + newline starts an array in the text.
    return re.sub(r"\[\n[\s\d.eE+,-]*\]", lambda m: "[" + ", ".join(x.strip() for x in m.group(0)[1:-1].split(",")) + "]", text) + "\n"


def default_hardware(device: str, threads: int) -> str:
    """What a submission says it was evaluated on, by default: the device and the CPU threads."""
    if torch.device(device).type == "cuda" and torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(torch.device(device))}, {threads} CPU thread{'s' * (threads != 1)}"
    return f"{platform.machine()} CPU, {threads} thread{'s' * (threads != 1)}"


# The command line ----------------------------------------------------------------------------
def evaluate_main(
    env: str,
    policy: Sequence[str],
    *,
    seed: Sequence[int] | None = None,
    revision: Sequence[str] | None = None,
    device: str = "cpu",
    threads: int = 2,
    submission_path: str | None = None,
    agent: str | None = None,
    training_env_steps: int | None = None,
    training_command: str | None = None,
    paper: str | None = None,
    code: str | None = None,
    description: str | None = None,
    hardware: str | None = None,
) -> None:
    """``rlhf-gym evaluate``: print each run's metrics; with a submission path, write the submission.

    Everything that can be checked is checked before the first run is evaluated: the
    arguments, a submission's requirements (see the module docstring), and every policy
    (`check_policies`). A problem is one line on stderr, ``error: ...``, and exit code 2.
    """
    policies = list(policy)
    seeds = list(range(len(policies))) if seed is None else list(seed)
    revisions, problems = _revisions(policies, revision)
    if len(seeds) != len(policies):
        problems.append(f"--seed gives {len(seeds)} seeds for {len(policies)} policies; give one per policy")
    if threads < 1:
        problems.append(f"--threads {threads}: expected a number of CPU threads >= 1")
    try:
        get_protocol(env)
    except KeyError as error:
        problems.append(error.args[0])
    for spec in policies:
        try:
            parse_policy(spec)
        except PolicyError as error:
            problems.append(f"--policy: {error}")
    if submission_path is None:
        flags = [flag for flag, value in (("--agent", agent), ("--training-env-steps", training_env_steps),
                                          ("--training-command", training_command), ("--paper", paper), ("--code", code),
                                          ("--description", description), ("--hardware", hardware)) if value is not None]
        if flags:
            problems.append(f"{', '.join(flags)} describe a submission, which needs --submission FILE; add it, or drop them")
        commands: list[str | None] = [None] * len(policies)
    elif not problems:
        found, commands = _submission_problems(policies, seeds, revisions, submission_path, agent, training_env_steps,
                                               training_command)
        problems += found
    if problems:
        _usage_error(problems)
    torch.set_num_threads(threads)
    failures, notes = check_policies(env, list(zip(policies, revisions)))
    if any(failures):
        _usage_error([problem for problem in failures if problem])
    for note in filter(None, notes):
        print(f"note: {note}")
    results = []
    for spec, run_seed, run_revision in zip(policies, seeds, revisions):
        result = evaluate(env, spec, seed=run_seed, device=device, revision=run_revision)
        results.append(result)
        print(f"{spec} (seed {run_seed}): {metrics_line(result['metrics'])}")
    if submission_path is None:
        return
    out = Path(submission_path)
    data = submission(results, agent=str(agent), training_env_steps=int(training_env_steps or 0), training_commands=commands,
                      submission_dir=out.parent, paper=paper, code=code, description=description,
                      hardware=hardware or default_hardware(device, threads))
    out.write_text(submission_json(data), encoding="utf-8")
    print(f"wrote {out} ({len(results)} runs, protocol {data['protocol_version']} {data['protocol_hash'][:19]}...)")
    invalid = validate_submission(out)
    if invalid:  # the checks above should make this unreachable; say so rather than publish a bad file
        print("error: the written submission does not validate:", *(f"  {p}" for p in invalid), sep="\n", file=sys.stderr)
        raise SystemExit(1)


def _revisions(policies: list[str], revision: Sequence[str] | None) -> tuple[list[str | None], list[str]]:
    """Each policy's ``--revision`` (one per policy, or one for all), and the problems."""
    if not revision:
        return [None] * len(policies), []
    if len(revision) not in (1, len(policies)):
        return [None] * len(policies), [f"--revision gives {len(revision)} revisions for {len(policies)} policies; "
                                        "give one per policy, or one for all"]
    revisions: list[str | None] = list(revision) * (len(policies) if len(revision) == 1 else 1)
    problems = []
    for spec, rev in zip(policies, revisions):
        try:
            location = parse_policy(spec)[1]
        except PolicyError:
            continue  # reported with the policies
        if Path(location).is_dir() or not is_hub_id(location):
            problems.append(f"--revision {rev} is for hub ids owner/name; --policy {spec!r} is a local path")
    return revisions, problems


def _submission_problems(
    policies: list[str],
    seeds: list[int],
    revisions: list[str | None],
    submission_path: str,
    agent: str | None,
    steps: int | None,
    template: str | None,
) -> tuple[list[str], list[str | None]]:
    """What ``--submission`` needs beyond evaluating: the problems, and each run's training command."""
    problems = []
    if len(policies) < MIN_RUNS:
        problems.append(f"--submission needs at least {MIN_RUNS} runs (one --policy per training seed), got {len(policies)}; "
                        "the leaderboard reports results over seeds (evaluate without --submission to see one run's metrics)")
    if len(set(seeds)) != len(seeds):
        problems.append(f"--seed {' '.join(map(str, seeds))}: every run of a submission needs a distinct seed")
    if agent is None:
        problems.append("--submission needs --agent NAME, the row's label in the table (e.g. \"PPO, 20k env steps\")")
    elif (problem := agent_name_problem(agent)) is not None:
        problems.append(f"--agent: {problem}")
    folder = Path(submission_path).parent
    if not folder.is_dir():
        problems.append(f"--submission {submission_path}: the folder {str(folder)!r} does not exist")
    for spec, rev in zip(policies, revisions):
        location = parse_policy(spec)[1]
        if rev is None and not Path(location).exists() and is_hub_id(location):
            problems.append(f"--policy {spec!r}: no such folder; for a hub id give --revision COMMIT, the 40-hex commit to "
                            "evaluate, so the checkpoint cannot change after it is verified")
        elif rev is not None and not REVISION.fullmatch(rev):
            problems.append(f"--revision {rev!r}: a submission records the 40-hex commit hash (branches and tags move)")
    commands: list[str | None] = [None] * len(policies)
    if steps is None:
        problems.append("--submission needs --training-env-steps N, the env steps that trained each policy "
                        "(0, said explicitly, for a policy that was not trained: the SFT policy, best-of-N)")
    elif steps < 0:
        problems.append(f"--training-env-steps {steps}: expected a number of env steps >= 0")
    elif steps == 0:
        if template is not None:
            problems.append("--training-command with --training-env-steps 0: a policy that was not trained has no training "
                            "command; give the training budget in --training-env-steps, or drop --training-command")
    else:
        commands, missing = _training_commands(policies, seeds, template)
        problems += missing
    return problems, commands


def _training_commands(policies: list[str], seeds: list[int], template: str | None) -> tuple[list[str | None], list[str]]:
    """Each run's training command: ``template`` with ``{seed}`` replaced, or the ``"command"``
    of ``summary.json`` beside the policy folder (``runs/x/final_policy`` -> ``runs/x/summary.json``)."""
    if template is not None:
        if not template.strip():
            return [None] * len(policies), ["--training-command is empty; give the shell command that trained the runs"]
        if "{seed}" not in template and len(policies) > 1:
            return [None] * len(policies), [f"--training-command {template!r} has no {{seed}}: it is each run's command with "
                                            "{seed} standing for the run's seed (--seed)"]
        return [template.replace("{seed}", str(seed)) for seed in seeds], []
    commands: list[str | None] = []
    problems = []
    for spec in policies:
        summary = Path(parse_policy(spec)[1]).parent / "summary.json"
        try:
            command = json.loads(summary.read_text(encoding="utf-8")).get("command")
        except (OSError, ValueError, AttributeError):
            command = None
        if not (isinstance(command, str) and command.strip()):
            problems.append(f"--policy {spec!r}: no training command known ({summary} has no \"command\"); pass "
                            "--training-command 'TEMPLATE', the command that trained each run with {seed} for its seed")
        commands.append(command if isinstance(command, str) else None)
    return commands, problems


def _usage_error(problems: list[str]) -> NoReturn:
    """Print each problem as one ``error:`` line on stderr and exit with code 2 (nothing evaluated)."""
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    raise SystemExit(2)
