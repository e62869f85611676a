"""The headroom audit: how much of a task's headroom decoding alone already buys (``rlhf-gym audit ENV``).

An RL benchmark is only as deep as the gap that decoding cannot close. If the SFT policy's
greedy output already scores near the ceiling, or best-of-16 closes most of the way to it,
an agent's gain is a decoding trick (best-of-n is asymptotically the optimal KL-regularised
policy, Yang et al. 2024, arXiv 2404.01730). So every world reports, for its shipped SFT
policy on the first N prompts of the valid split:

- `decoding_figures`: gold and proxy (the task's preference model, normalised) at T = 0
  (greedy), 0.3, the protocol's temperature and 1.0, each with its standard error over
  prompts;
- `best_of_n_figures`: best-of-n for n = 4, 16, 64 from samples at the protocol
  temperature, picked by the gold judge and by the proxy: the gold and proxy of the pick,
  the analytic KL of best-of-n (`best_of_n_kl`) and the share of the headroom it closes
  (`headroom_closed`);
- `reference_figures`: the mean reference gold and the share of references at gold >= 0.95
  (a world whose references score 1.0 caps every agent's win rate);
- `decision_figures`: for a world that exposes its decisions (`World.decisions`), the share
  of prompts where the SFT policy's greedy choice is not the gold judge's best
  (argmax_SFT != argmax_gold), and the share of protocol-temperature samples that take it.

Without a gold judge the audit reports the proxy figures only and says so (``"gold_judge":
False``). A world's declared thresholds (`AuditTargets`) are checked by `check_targets`;
``docs/audit.md`` explains each figure and target.

Reproducible: each decoding samples from a torch generator of its own, seeded from
``(seed, decoding)``; the same task, prompts, seed, ``batch_size`` and device give the
same dict.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from rlhf_gym.worlds.world import AuditTargets, World

if TYPE_CHECKING:
    from rlhf_gym.env.prompts import Prompt
    from rlhf_gym.rewards.preference_model import PreferenceModel
    from rlhf_gym.worlds.task import Task

SPLIT = "valid"
LOW_TEMPERATURES = (0.0, 0.3)  # greedy and near-greedy: what a decoding trick would use
HIGH_TEMPERATURE = 1.0
BEST_OF_N = (4, 16, 64)
SAMPLES_PER_PROMPT = max(BEST_OF_N)  # one pool per prompt; each n < 64 averages over its 64/n disjoint groups
GOOD_REFERENCE = 0.95  # a reference at least this good leaves an agent nothing to win against it


@dataclass(frozen=True)
class Decoded:
    """The responses of one decoding of the audit's prompts, ``k`` per prompt, and their scores.

    Attributes:
        temperature: the sampling temperature (0: greedy).
        responses: one list of ``k`` texts per prompt.
        gold: (N, k) float64 gold scores, None without a gold judge.
        proxy: (N, k) float64 normalised preference-model scores.
    """

    temperature: float
    responses: list[list[str]]
    gold: np.ndarray | None
    proxy: np.ndarray


def run_audit(
    task: Task,
    *,
    prompts: int = 512,
    seed: int = 0,
    device: str = "cpu",
    batch_size: int = 256,
    progress: bool = True,
) -> dict[str, Any]:
    """Audit ``task``'s shipped SFT policy on the first ``prompts`` prompts of its valid split.

    Best-of-n is estimated from one pool of 64 samples per prompt at the protocol
    temperature: best-of-64 picks from the whole pool, and best-of-n for n < 64 is the mean
    over the pool's 64/n disjoint groups of n (an unbiased estimate that reuses every
    sample). The protocol-temperature row of the decoding table is the pool's mean (64
    samples per prompt); the other temperatures take one sample per prompt.

    Args:
        task: the task (its SFT policy, tokenizer, preference model and gold judge).
        prompts: how many valid prompts, the split's first (a fixed set).
        seed: seeds every sample (each decoding draws from a stream of its own).
        device: where the policy and the preference model run.
        batch_size: rows decoded together (256: four prompts' pools; twice as fast as 64
            for the shipped Summarize policy on a busy 2-core CPU); the samples depend on it and on
            the device (as `rlhf_gym.lm.sampling.sample_completions` says), so keep both to
            reproduce a run.
        progress: print stage lines and progress bars.

    Returns:
        A JSON-able dict: ``task``, ``split``, ``prompts``, ``seed``, ``batch_size``, ``device``,
        ``protocol_temperature``, ``samples_per_prompt``, ``gold_judge`` (and ``note``
        without one), ``decodings``, ``best_of_n``, ``references`` (a task with references),
        ``decisions`` (a world that exposes them) and ``targets`` (a world that declares
        `AuditTargets`; see `check_targets`).

    Raises:
        ValueError: ``prompts`` is not in [1, size of the valid split], or ``batch_size`` < 1.
    """
    source = task.prompt_source(SPLIT)
    if not 1 <= prompts <= len(source):
        raise ValueError(f"prompts must be in [1, {len(source)}] (the {SPLIT} split of {task.env_id}), got {prompts}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    log = _Log(progress)
    items = source.get_many(range(prompts))
    sampler = _Sampler(task, items, device=device, seed=seed, batch_size=batch_size, progress=progress)

    temperatures = sorted({*LOW_TEMPERATURES, task.temperature, HIGH_TEMPERATURE})
    decoded = {}
    for stream, temperature in enumerate(temperatures):
        per_prompt = SAMPLES_PER_PROMPT if temperature == task.temperature else 1
        log(f"decoding {per_prompt} per prompt at {_label(temperature)} and scoring")
        decoded[temperature] = sampler.decode(temperature, per_prompt, stream)
    pool = decoded[task.temperature]

    audit: dict[str, Any] = {
        "task": task.env_id, "split": SPLIT, "prompts": prompts, "seed": seed, "batch_size": batch_size, "device": device,
        "protocol_temperature": task.temperature, "samples_per_prompt": SAMPLES_PER_PROMPT,
        "gold_judge": task.gold_judge is not None,
    }
    if task.gold_judge is None:
        audit["note"] = "no gold judge: proxy figures only (best-of-n picked by the proxy, no headroom share)"
    audit["decodings"] = decoding_figures(list(decoded.values()), task.temperature)
    sft_gold = None if pool.gold is None else float(pool.gold.mean())
    audit["best_of_n"] = best_of_n_figures(pool, sft_gold)
    if task.has_references and all(p.reference is not None for p in items):
        log("scoring the references")
        audit["references"] = reference_figures(sampler.score(items, [p.reference for p in items]))
    if task.world is not None:
        decisions = decision_figures(task.world, items, decoded[0.0], pool)
        if decisions:
            audit["decisions"] = decisions
    if task.world is not None and task.world.audit_targets is not None:
        audit["targets"] = [
            # A range limit is stored as a list, as JSON reads it back: the card on disk equals the returned one.
            {"target": target, "value": value, "limit": list(limit) if isinstance(limit, tuple) else limit, "passed": passed}
            for target, value, limit, passed in check_targets(audit, task.world.audit_targets)
        ]
    log("done")
    return audit


class _Sampler:
    """Decodes the audit's prompts with the task's SFT policy and scores the responses."""

    def __init__(self, task: Task, items: list[Prompt], *, device: str, seed: int, batch_size: int, progress: bool) -> None:
        self.task, self.items = task, items
        self.policy = task.sft_policy(device).model
        self.tokenizer = task.tokenizer()
        self.preference_model: PreferenceModel = task.preference_model(device)
        self.seed, self.batch_size, self.progress = seed, batch_size, progress

    def decode(self, temperature: float, per_prompt: int, stream: int) -> Decoded:
        """``per_prompt`` responses per prompt at ``temperature`` (0: greedy), from stream ``stream``."""
        from rlhf_gym.lm.sampling import sample_completions

        rows = [p for p in self.items for _ in range(per_prompt)]  # prompt-major: a prompt's samples are adjacent
        texts = sample_completions(
            self.policy, self.tokenizer, [p.text for p in rows],
            max_new_tokens=self.task.max_new_tokens, temperature=temperature, seed=stream_seed(self.seed, stream),
            max_prompt_tokens=self.task.max_prompt_tokens, batch_size=self.batch_size,
            progress=f"SFT {_label(temperature)}" if self.progress else None,
        )
        gold, proxy = self.score(rows, texts)
        shape = (len(self.items), per_prompt)
        return Decoded(
            temperature,
            [texts[i : i + per_prompt] for i in range(0, len(texts), per_prompt)],
            None if gold is None else gold.reshape(shape),
            proxy.reshape(shape),
        )

    def score(self, rows: Sequence[Prompt], texts: Sequence[str]) -> tuple[np.ndarray | None, np.ndarray]:
        """(gold or None, proxy), each (len(rows),) float64."""
        proxy = self.preference_model.score([p.text for p in rows], texts).double().cpu().numpy()
        judge = self.task.gold_judge
        return (None if judge is None else np.asarray(judge(rows, texts), dtype=np.float64)), proxy


# Figures --------------------------------------------------------------------------------
def decoding_figures(decodings: Sequence[Decoded], protocol_temperature: float) -> list[dict[str, Any]]:
    """Gold and proxy of each decoding: the mean over prompts of each prompt's mean, with its
    standard error over prompts."""
    rows = []
    for d in decodings:
        row: dict[str, Any] = {
            "decoding": _label(d.temperature), "temperature": d.temperature,
            "protocol": d.temperature == protocol_temperature, "samples_per_prompt": d.proxy.shape[1],
        }
        for name, scores in (("gold", d.gold), ("proxy", d.proxy)):
            if scores is not None:
                row[name], row[f"{name}_se"] = mean_and_se(scores.mean(axis=1))
        rows.append(row)
    return rows


def best_of_n_figures(pool: Decoded, sft_gold: float | None) -> list[dict[str, Any]]:
    """Best-of-n for each n of `BEST_OF_N` from ``pool`` (k samples per prompt, k divisible by n).

    For each n and each judge that picks (``by_gold``, ``by_proxy``): the mean gold and proxy
    of the picked response (with standard errors over prompts) and, with a gold judge, the
    share of the headroom above ``sft_gold`` (the pool's mean gold) that the pick closes.
    """
    rows = []
    for n in BEST_OF_N:
        row: dict[str, Any] = {"n": n, "kl": best_of_n_kl(n)}
        for judge, pick in (("gold", pool.gold), ("proxy", pool.proxy)):
            if pick is None:
                continue
            figures: dict[str, Any] = {}
            for name, values in (("gold", pool.gold), ("proxy", pool.proxy)):
                if values is not None:
                    figures[name], figures[f"{name}_se"] = mean_and_se(best_of_n(pick, values, n))
            if sft_gold is not None:
                figures["headroom_closed"] = headroom_closed(figures["gold"], sft_gold)
            row[f"by_{judge}"] = figures
        rows.append(row)
    return rows


def reference_figures(scores: tuple[np.ndarray | None, np.ndarray]) -> dict[str, Any]:
    """Mean gold of the references, the share at gold >= `GOOD_REFERENCE`, and their mean proxy."""
    gold, proxy = scores
    figures: dict[str, Any] = {}
    if gold is not None:
        figures["gold"], figures["gold_se"] = mean_and_se(gold)
        figures["share_gold_at_least_0.95"] = float(np.mean(gold >= GOOD_REFERENCE))
    figures["proxy"], figures["proxy_se"] = mean_and_se(proxy)
    return figures


def decision_figures(world: World, items: Sequence[Prompt], greedy: Decoded, pool: Decoded) -> dict[str, dict[str, Any]]:
    """Per decision the world exposes: does greedy SFT miss the gold judge's best option, and
    how often does a protocol-temperature sample take it?

    Returns:
        ``{decision: {"best_option": the most common best option, "greedy_not_best": share
        of prompts whose greedy response takes another option (argmax_SFT != argmax_gold),
        "samples_best": share of the pool's samples that take the best option}}``; empty when
        the world exposes no decision.
    """
    best = [world.best_decisions(p.record) for p in items]
    names = list(dict.fromkeys(name for b in best for name in b))  # a decision may exist for some prompts only
    figures = {}
    for name in names:
        rows = [i for i, b in enumerate(best) if name in b]
        greedy_taken = [world.decisions(items[i].record, greedy.responses[i][0])[name] for i in rows]
        sampled = [world.decisions(items[i].record, text)[name] == best[i][name] for i in rows for text in pool.responses[i]]
        figures[name] = {
            "best_option": Counter(best[i][name] for i in rows).most_common(1)[0][0],
            "prompts": len(rows),
            "greedy_not_best": float(np.mean([g != best[i][name] for g, i in zip(greedy_taken, rows, strict=True)])),
            "samples_best": float(np.mean(sampled)),
        }
    return figures


# Estimators -----------------------------------------------------------------------------
def best_of_n(pick: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """(N,) per prompt: the mean, over the k/n disjoint groups of n samples, of the value of
    the sample that ``pick`` scores highest in each group (the first of ties).

    Args:
        pick: (N, k) the scores the pick maximises.
        values: (N, k) the scores reported for the picked samples.
        n: group size; must divide k.

    Example:
        >>> best_of_n(np.array([[0.0, 2.0, 1.0, 3.0]]), np.array([[10.0, 20.0, 30.0, 40.0]]), 2)
        array([30.])
    """
    prompts, k = pick.shape
    if n < 1 or k % n:
        raise ValueError(f"best-of-{n} needs n >= 1 dividing the {k} samples per prompt")
    chosen = pick.reshape(prompts, k // n, n).argmax(axis=2)  # (N, k/n)
    picked = np.take_along_axis(values.reshape(prompts, k // n, n), chosen[..., None], axis=2)[..., 0]
    return picked.mean(axis=1)


def best_of_n_kl(n: int) -> float:
    """KL(best-of-n || policy) in nats, ``log n - (n - 1) / n``: the analytic value of
    Stiennon et al. 2020 (appendix), an upper bound on the true KL (Beirami et al. 2024,
    "Theoretical guarantees on the best-of-n alignment policy").

    Example:
        >>> best_of_n_kl(1), round(best_of_n_kl(16), 3)
        (0.0, 1.835)
    """
    return math.log(n) - (n - 1) / n


def headroom_closed(gold: float, sft_gold: float) -> float | None:
    """The share of the way from ``sft_gold`` to the ceiling (gold 1) that ``gold`` covers;
    None when SFT is already at the ceiling.

    Example:
        >>> headroom_closed(0.75, 0.5)
        0.5
    """
    return None if sft_gold >= 1.0 else (gold - sft_gold) / (1.0 - sft_gold)


def mean_and_se(values: np.ndarray) -> tuple[float, float | None]:
    """The mean of ``values`` (one per prompt) and its standard error (None for one value).

    Example:
        >>> mean_and_se(np.array([0.0, 0.5, 1.0]))
        (0.5, 0.2886751345948129)
    """
    values = np.asarray(values, dtype=np.float64)
    se = float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else None
    return float(values.mean()), se


def stream_seed(seed: int, stream: int) -> int:
    """The torch seed of decoding ``stream`` of an audit seeded ``seed`` (distinct pairs give
    unrelated seeds: seed 0's second stream is not seed 1's first)."""
    return int(np.random.SeedSequence([seed, stream]).generate_state(1)[0])


# Targets --------------------------------------------------------------------------------
def check_targets(audit: dict[str, Any], targets: AuditTargets) -> list[tuple[str, float | None, Any, bool]]:
    """Check an audit against a world's declared thresholds.

    Args:
        audit: `run_audit` output.
        targets: the thresholds (a None field is not checked).

    Returns:
        One ``(target, value, limit, passed)`` per checked figure: ``limit`` is the bound
        (a ``(low, high)`` pair for a range); ``value`` is None, and the check fails, when
        the audit lacks the figure (e.g. a gold target without a gold judge).

    Example:
        >>> audit = {"protocol_temperature": 0.7, "decodings": [{"temperature": 0.7, "gold": 0.4}]}
        >>> check_targets(audit, AuditTargets(sft_gold_range=(0.25, 0.5)))
        [('SFT gold at T=0.7 in range', 0.4, (0.25, 0.5), True)]
    """
    by_temperature = {row["temperature"]: row.get("gold") for row in audit["decodings"]}
    protocol = audit["protocol_temperature"]
    sft = by_temperature.get(protocol)
    closed = {row["n"]: row.get("by_gold", {}).get("headroom_closed") for row in audit.get("best_of_n", [])}
    checks: list[tuple[str, float | None, Any, bool]] = []

    def at_most(target: str, value: float | None, limit: float) -> None:
        checks.append((target, value, limit, value is not None and value <= limit))

    def at_least(target: str, value: float | None, limit: float) -> None:
        checks.append((target, value, f"≥ {limit:g}", value is not None and value >= limit))

    if targets.max_low_temperature_gain is not None:
        for temperature in LOW_TEMPERATURES:
            low = by_temperature.get(temperature)
            gain = None if low is None or sft is None else low - sft
            at_most(f"{_label(temperature)} gold - {_label(protocol)} gold", gain, targets.max_low_temperature_gain)
    for n, limit in ((16, targets.max_best_of_16_closed), (64, targets.max_best_of_64_closed)):
        if limit is not None:
            at_most(f"best-of-{n} by gold: headroom closed", closed.get(n), limit)
    if targets.sft_gold_range is not None:
        low, high = targets.sft_gold_range
        checks.append((f"SFT gold at {_label(protocol)} in range", sft, (low, high), sft is not None and low <= sft <= high))
    if targets.max_reference_gold is not None:
        at_most("mean reference gold", audit.get("references", {}).get("gold"), targets.max_reference_gold)
    if targets.max_good_references is not None:
        at_most(f"share of references at gold >= {GOOD_REFERENCE}",
                audit.get("references", {}).get("share_gold_at_least_0.95"), targets.max_good_references)
    if targets.min_greedy_not_best is not None:
        decisions = audit.get("decisions") or {}
        if not decisions:  # a world that exposes no decision cannot pass
            at_least("per decision: greedy misses the best option", None, targets.min_greedy_not_best)
        for name, figures in decisions.items():
            at_least(f"{name}: greedy misses the best option", figures["greedy_not_best"], targets.min_greedy_not_best)
    return checks


# Rendering and the card -----------------------------------------------------------------
def render_audit(audit: dict[str, Any]) -> list[str]:
    """The audit as Markdown lines: the decoding table, the best-of-n table, then the
    references, decisions and targets where the audit has them (each table ends with a
    blank line)."""
    protocol = _label(audit["protocol_temperature"])
    gold = audit["gold_judge"]
    lines = [
        f"SFT policy on the first {audit['prompts']} {audit['split']} prompts (seed {audit['seed']}); "
        "± one standard error over prompts; proxy: the preference model's normalised score.",
        "",
    ]
    if not gold:
        lines += [f"Note: {audit['note']}.", ""]
    lines += ["| SFT decoding | gold | proxy |", "|---|---|---|"]
    for row in audit["decodings"]:
        label = row["decoding"] + (f" (protocol, {row['samples_per_prompt']} samples per prompt)" if row["protocol"] else "")
        lines.append(f"| {label} | {_pm(row, 'gold', 3)} | {_pm(row, 'proxy', 2)} |")
    lines += [
        "",
        f"| best-of-n at {protocol} | KL (nats) | by gold: gold | by gold: headroom closed "
        "| by proxy: gold | by proxy: proxy | by proxy: headroom closed |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in audit["best_of_n"]:
        by_gold, by_proxy = row.get("by_gold", {}), row["by_proxy"]
        lines.append(
            f"| {row['n']} | {row['kl']:.3f} | {_pm(by_gold, 'gold', 3)} | {_share(by_gold.get('headroom_closed'))} "
            f"| {_pm(by_proxy, 'gold', 3)} | {_pm(by_proxy, 'proxy', 2)} | {_share(by_proxy.get('headroom_closed'))} |"
        )
    lines.append("")
    if "references" in audit:
        ref = audit["references"]
        lines += [
            "| references | gold | share at gold ≥ 0.95 | proxy |", "|---|---|---|---|",
            f"| {audit['prompts']} prompts | {_pm(ref, 'gold', 3)} | {_share(ref.get('share_gold_at_least_0.95'))} "
            f"| {_pm(ref, 'proxy', 2)} |",
            "",
        ]
    if "decisions" in audit:
        lines += [f"| decision (gold's best option) | greedy SFT takes another | {protocol} samples taking the best |",
                  "|---|---|---|"]
        lines += [f"| {name} ({f['best_option']}) | {f['greedy_not_best']:.2f} | {f['samples_best']:.2f} |"
                  for name, f in audit["decisions"].items()]
        lines.append("")
    if "targets" in audit:
        lines += ["| audit target | value | limit | |", "|---|---|---|---|"]
        lines += [f"| {t['target']} | {_number(t['value'])} | {_limit(t['limit'])} | {'PASS' if t['passed'] else 'FAIL'} |"
                  for t in audit["targets"]]
        lines.append("")
    return lines


def _label(temperature: float) -> str:
    """``greedy``, ``T=0.3``, ``T=1.0``: the temperatures as the issue and the docs write them."""
    if temperature == 0:
        return "greedy"
    text = f"{temperature:g}"
    return f"T={text}" if "." in text or "e" in text else f"T={text}.0"


def _pm(figures: dict[str, Any], name: str, digits: int) -> str:
    """``mean ± se`` of ``figures[name]``, or a dash when the audit lacks it."""
    if figures.get(name) is None:
        return "—"
    se = figures.get(f"{name}_se")
    return f"{figures[name]:.{digits}f}" + ("" if se is None else f" ± {se:.{digits}f}")


def _share(value: float | None) -> str:
    return "—" if value is None else f"{value:.0%}"


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def _limit(limit: Any) -> str:
    if isinstance(limit, str):  # an at-least bound, written "≥ x" by `check_targets`
        return limit
    if isinstance(limit, (list, tuple)):
        return f"[{limit[0]:g}, {limit[1]:g}]"
    return f"≤ {limit:g}"


class _Log:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.start = time.time()

    def __call__(self, message: str) -> None:
        if self.enabled:
            print(f"[audit {time.time() - self.start:7.1f}s] {message}", flush=True)


__all__ = [
    "BEST_OF_N", "SAMPLES_PER_PROMPT", "Decoded", "best_of_n", "best_of_n_kl", "best_of_n_figures", "check_targets",
    "decision_figures", "decoding_figures", "headroom_closed", "mean_and_se", "reference_figures", "render_audit",
    "run_audit",
]
