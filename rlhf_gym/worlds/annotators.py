"""Simulated annotators: noisy, biased labellers whose preferences derive from a gold judge.

Annotator ``k`` prefers response A to response B with probability

    P(A > B) = noise_k / 2 + (1 - noise_k) * sigmoid((gold(A) - gold(B)
               + length_bias_k * (words(A) - words(B))
               + cue_bias_k * (cue(A) - cue(B))) / temperature_k)

a Bradley-Terry choice on the gold score (the model the preference model is trained
under), plus human failure modes: a per-word liking for longer responses (Stiennon et
al., 2020 found labellers' and reward models' preference for length, which RL then
exploits), an optional liking for a world-defined surface cue (e.g. refusal words, which
harmlessness raters over-reward: Bai et al. 2022) and lapses, answers at random.

Annotators see only gold scores, lengths and cues, so one pool serves every world; a
world gives only its calibration (`rlhf_gym.worlds.world.AnnotatorCalibration`), or one
per pool with its share, and its cue (`World.annotator_cues`; none by default), tuned so
its labels agree with its gold judge about as often as human labellers agree with each
other (~73-77% on TL;DR, Stiennon et al.). A preference model trained on these labels
therefore cannot be much better than a human-label proxy, and the gap between it and the
gold judge is what reward over-optimisation exploits.

Example:
    >>> import numpy as np
    >>> pool = AnnotatorPool(num_annotators=4, seed=0)
    >>> prefers_a, who = pool.label_scored(0.9, 0.1, 10, 12, np.random.default_rng(0))
    >>> who in {a.annotator_id for a in pool.annotators}
    True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from rlhf_gym.worlds.world import AnnotatorCalibration

__all__ = ["Annotator", "AnnotatorPool", "label_accuracy_ceiling", "pool_sizes", "scored_gold_agreement"]

Calibrations = AnnotatorCalibration | tuple[AnnotatorCalibration, ...]
"""A world's annotators: one calibration, or one per pool (`World.annotators`)."""

# Pool-level defaults (`AnnotatorCalibration`'s). Each annotator's parameters are drawn
# around a calibration: temperature * lognormal(0, 0.3), length_bias * U(0, 2) (some care
# about length, some not at all), noise * U(0.5, 1.5).
DEFAULT_TEMPERATURE = AnnotatorCalibration.temperature
DEFAULT_LENGTH_BIAS = AnnotatorCalibration.length_bias  # gold points per extra word
DEFAULT_NOISE = AnnotatorCalibration.noise
_GOLD_TIE = 1e-9


@dataclass(frozen=True)
class Annotator:
    """One simulated labeller.

    Attributes:
        annotator_id: Index in its pool.
        temperature: ``tau`` in ``sigmoid((gold(A) - gold(B) + bias) / tau)``; lower is
            more decisive. Must be > 0.
        length_bias: Gold points added per extra word of A over B (> 0 likes length).
        noise: Probability of a lapse, a coin-flip answer, in [0, 1].
        cue_bias: Gold points added per unit of the world's cue of A over B.
    """

    annotator_id: int
    temperature: float
    length_bias: float
    noise: float
    cue_bias: float = 0.0

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if not 0.0 <= self.noise <= 1.0:
            raise ValueError(f"noise must be in [0, 1], got {self.noise}")


def _prob_prefers_first(gold_a: float, gold_b: float, words_a: int, words_b: int,
                        annotator: Annotator, cue_a: float = 0.0, cue_b: float = 0.0) -> float:
    margin = gold_a - gold_b + annotator.length_bias * (words_a - words_b) + annotator.cue_bias * (cue_a - cue_b)
    # tanh form of the sigmoid: no overflow as temperature -> 0.
    decisive = 0.5 * (1.0 + math.tanh(margin / (2.0 * annotator.temperature)))
    return annotator.noise * 0.5 + (1.0 - annotator.noise) * decisive


class AnnotatorPool:
    """A seeded pool of simulated annotators; each label comes from one drawn at random.

    Args:
        num_annotators: Pool size, >= 1.
        seed: Seed of the annotators' parameters (not of the labels: ``label`` takes a
            generator).
        temperature: Pool mean of the annotators' temperatures, > 0.
        length_bias: Pool mean of the per-word length bias.
        noise: Pool mean of the lapse probability, in [0, 1].
        cue_bias: Pool mean of the bias per unit of the world's cue; each annotator's is
            ``cue_bias * U(0, 2)``, drawn from a stream of its own so that a pool without
            a cue bias has the same annotators as before the cue existed.

    Attributes:
        annotators: The pool's annotators, ``annotator_id`` = index.

    Example:
        >>> pool = AnnotatorPool(num_annotators=3, seed=1)
        >>> [a.annotator_id for a in pool.annotators]
        [0, 1, 2]
        >>> oracle = AnnotatorPool(temperature=1e-9, length_bias=0.0, noise=0.0)
        >>> max(a.noise for a in oracle.annotators)
        0.0
    """

    def __init__(
        self,
        num_annotators: int = 16,
        seed: int | Sequence[int] = 0,
        *,
        temperature: float = DEFAULT_TEMPERATURE,
        length_bias: float = DEFAULT_LENGTH_BIAS,
        noise: float = DEFAULT_NOISE,
        cue_bias: float = 0.0,
    ) -> None:
        if num_annotators < 1:
            raise ValueError(f"num_annotators must be >= 1, got {num_annotators}")
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if not 0.0 <= noise <= 1.0:
            raise ValueError(f"noise must be in [0, 1], got {noise}")
        rng = np.random.default_rng(seed)
        entropy = list(seed) if isinstance(seed, Sequence) else [seed]
        cue_rng = np.random.default_rng([*entropy, 1]) if cue_bias else None
        self.annotators: tuple[Annotator, ...] = tuple(
            Annotator(
                annotator_id=i,
                temperature=float(temperature * rng.lognormal(0.0, 0.3)),
                length_bias=float(length_bias * rng.uniform(0.0, 2.0)),
                noise=float(min(1.0, noise * rng.uniform(0.5, 1.5))),
                cue_bias=float(cue_bias * cue_rng.uniform(0.0, 2.0)) if cue_rng is not None else 0.0,
            )
            for i in range(num_annotators)
        )

    @classmethod
    def from_calibration(cls, calibration: Calibrations, seed: int = 0, num_annotators: int = 16) -> AnnotatorPool:
        """The pool of a world's calibration (`AnnotatorCalibration`), or of several pools.

        With a tuple of calibrations, pool ``k`` gets ``shares[k]`` of the ``num_annotators``
        (largest remainders, at least one each) drawn around its own calibration from seed
        ``[seed, k]``; the annotators are numbered across pools in order. A label comes from
        one annotator drawn uniformly, so each pool labels its share of the pairs.

        Example:
            >>> helpful = AnnotatorCalibration(share=3.0)
            >>> harmless = AnnotatorCalibration(length_bias=0.0, cue_bias=0.1, share=1.0)
            >>> pool = AnnotatorPool.from_calibration((helpful, harmless), seed=0, num_annotators=8)
            >>> [a.cue_bias > 0 for a in pool.annotators]
            [False, False, False, False, False, False, True, True]
        """
        if isinstance(calibration, AnnotatorCalibration):
            return cls(num_annotators, seed, temperature=calibration.temperature, length_bias=calibration.length_bias,
                       noise=calibration.noise, cue_bias=calibration.cue_bias)
        annotators: list[Annotator] = []
        for k, (c, count) in enumerate(zip(calibration, pool_sizes([c.share for c in calibration], num_annotators),
                                           strict=True)):
            part = cls(count, [seed, k], temperature=c.temperature, length_bias=c.length_bias, noise=c.noise,
                       cue_bias=c.cue_bias)
            annotators += [replace(a, annotator_id=len(annotators) + i) for i, a in enumerate(part.annotators)]
        pool = cls(num_annotators, seed)  # a pool object; its annotators are the pools' own
        pool.annotators = tuple(annotators)
        return pool

    def prob_prefers_first(self, gold_a: float, gold_b: float, words_a: int, words_b: int, annotator: Annotator,
                           cue_a: float = 0.0, cue_b: float = 0.0) -> float:
        """Probability that ``annotator`` prefers response A (gold ``gold_a``, ``words_a``
        words, cue ``cue_a``) to response B.

        Example:
            >>> pool = AnnotatorPool(seed=0)
            >>> pool.prob_prefers_first(1.0, 0.0, 10, 10, pool.annotators[0]) > 0.5
            True
        """
        return _prob_prefers_first(gold_a, gold_b, words_a, words_b, annotator, cue_a, cue_b)

    def label_scored(self, gold_a: float, gold_b: float, words_a: int, words_b: int,
                     rng: np.random.Generator, cue_a: float = 0.0, cue_b: float = 0.0) -> tuple[bool, int]:
        """Draw an annotator from the pool and their label for a pair of scored responses.

        Args:
            gold_a, gold_b: the two responses' gold scores.
            words_a, words_b: their lengths in words.
            rng: source of the annotator choice and of the label.
            cue_a, cue_b: the world's annotator cue of each (`World.annotator_cues`).

        Returns:
            ``(a_preferred, annotator_id)``.

        Example:
            >>> import numpy as np
            >>> oracle = AnnotatorPool(temperature=1e-9, length_bias=0.0, noise=0.0)
            >>> oracle.label_scored(0.2, 0.8, 5, 5, np.random.default_rng(0))[0]
            False
        """
        annotator = self.annotators[int(rng.integers(len(self.annotators)))]
        p = _prob_prefers_first(gold_a, gold_b, words_a, words_b, annotator, cue_a, cue_b)
        return bool(rng.random() < p), annotator.annotator_id


def pool_sizes(shares: Sequence[float], total: int) -> list[int]:
    """Split ``total`` annotators by ``shares``: largest remainders, then at least one per
    pool (taken from the largest).

    Example:
        >>> pool_sizes([0.6, 0.4], 16), pool_sizes([1.0, 1.0, 1.0], 4), pool_sizes([0.95, 0.05], 4)
        ([10, 6], [2, 1, 1], [3, 1])
    """
    if not shares or min(shares) <= 0 or total < len(shares):
        raise ValueError(f"need positive shares and at least one annotator per pool, got {list(shares)} for {total}")
    exact = np.asarray(shares, dtype=np.float64) / np.sum(shares) * total
    counts = np.floor(exact).astype(int)
    counts[np.argsort(-(exact - counts), kind="stable")[:total - counts.sum()]] += 1
    for empty in np.flatnonzero(counts == 0):
        counts[np.argmax(counts)] -= 1
        counts[empty] = 1
    return [int(c) for c in counts]


def scored_gold_agreement(pool: AnnotatorPool, gold_a: Sequence[float], gold_b: Sequence[float],
                          words_a: Sequence[int], words_b: Sequence[int], rng: np.random.Generator,
                          cue_a: Sequence[float] | None = None, cue_b: Sequence[float] | None = None) -> float:
    """Fraction of labelled pairs on which the pool's label matches the gold judge's choice.

    Pairs the gold judge scores as a tie are skipped (there is no gold choice to match).
    ``cue_a``/``cue_b`` are the world's annotator cues of each pair's responses (None: 0).

    Raises:
        ValueError: every pair is a gold tie (or there are none).

    Example:
        >>> import numpy as np
        >>> oracle = AnnotatorPool(temperature=1e-9, length_bias=0.0, noise=0.0)
        >>> scored_gold_agreement(oracle, [0.9, 0.5], [0.1, 0.5], [5, 5], [5, 5], np.random.default_rng(0))
        1.0
    """
    cue_a, cue_b = _cues(cue_a, len(gold_a)), _cues(cue_b, len(gold_b))
    agree = total = 0
    for ga, gb, wa, wb, ca, cb in zip(gold_a, gold_b, words_a, words_b, cue_a, cue_b, strict=True):
        if abs(ga - gb) <= _GOLD_TIE:
            continue
        prefers_a, _ = pool.label_scored(ga, gb, wa, wb, rng, ca, cb)
        agree += prefers_a == (ga > gb)
        total += 1
    if total == 0:
        raise ValueError("scored_gold_agreement needs at least one pair the gold judge does not tie")
    return agree / total


def label_accuracy_ceiling(pool: AnnotatorPool, gold_a: Sequence[float], gold_b: Sequence[float],
                           words_a: Sequence[int], words_b: Sequence[int],
                           cue_a: Sequence[float] | None = None, cue_b: Sequence[float] | None = None) -> float:
    """The best accuracy any scorer can expect against this pool's labels on these pairs.

    A label comes from an annotator drawn uniformly from the pool, so A is preferred with
    probability ``p``, the pool's mean of ``P(A > B)``; the best guess is the likelier
    side, right with probability ``max(p, 1 - p)``. The mean over pairs bounds a
    preference model's accuracy against annotator labels (the Bayes rate), whatever its
    size: it is what the accuracy bar should be read against.

    Args:
        pool: The annotators.
        gold_a, gold_b: Gold scores of the two summaries of each pair.
        words_a, words_b: Their lengths in words (the pool's length bias reads them).
        cue_a, cue_b: The world's annotator cues of each (None: 0; the cue bias reads them).

    Returns:
        Expected accuracy in [0.5, 1].

    Example:
        >>> oracle = AnnotatorPool(temperature=1e-9, length_bias=0.0, noise=0.0)
        >>> label_accuracy_ceiling(oracle, [0.9, 0.2], [0.1, 0.8], [5, 5], [5, 5])
        1.0
        >>> label_accuracy_ceiling(AnnotatorPool(), [0.5], [0.5], [5], [5])  # a tie: a coin flip
        0.5
    """
    if not len(gold_a) == len(gold_b) == len(words_a) == len(words_b) > 0:
        raise ValueError(
            f"need one gold score and length per summary of each pair, got {len(gold_a)}, "
            f"{len(gold_b)}, {len(words_a)} and {len(words_b)} (and at least one pair)"
        )
    best = []
    for ga, gb, wa, wb, ca, cb in zip(gold_a, gold_b, words_a, words_b, _cues(cue_a, len(gold_a)),
                                      _cues(cue_b, len(gold_a)), strict=True):
        p = float(np.mean([_prob_prefers_first(ga, gb, wa, wb, a, ca, cb) for a in pool.annotators]))
        best.append(max(p, 1.0 - p))
    return float(np.mean(best))


def _cues(cues: Sequence[float] | None, n: int) -> Sequence[float]:
    """``cues``, or n zeros when there are none."""
    return [0.0] * n if cues is None else cues
