"""The kit's simulated annotators (`rlhf_gym.worlds.annotators`): a pool built from a world's
calibration (or several pools, each with its share), its Bradley-Terry choice with length
bias, a world's cue bias and lapses, labels from gold scores, lengths and cues, and the
agreement and Bayes-ceiling figures the card reports.

They see only gold scores, word counts and cues, so these tests use synthetic pairs; each world's
calibration is checked against its own gold judge in ``test_conformance.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

from rlhf_gym.worlds import AnnotatorCalibration, AnnotatorPool
from rlhf_gym.worlds.annotators import (
    DEFAULT_LENGTH_BIAS,
    DEFAULT_NOISE,
    DEFAULT_TEMPERATURE,
    Annotator,
    label_accuracy_ceiling,
    pool_sizes,
    scored_gold_agreement,
)


def synthetic_pairs(n: int, seed: int) -> tuple[list[float], list[float], list[int], list[int]]:
    """Gold scores in [0, 1] and lengths of ``n`` pairs; a tenth of them gold ties."""
    rng = np.random.default_rng(seed)
    gold_a, gold_b = rng.random(n), rng.random(n)
    ties = rng.random(n) < 0.1
    gold_b[ties] = gold_a[ties]
    return list(gold_a), list(gold_b), list(rng.integers(3, 40, n)), list(rng.integers(3, 40, n))


PAIRS = synthetic_pairs(2500, seed=0)


# The pool ---------------------------------------------------------------------------------
def test_pool_parameters_are_seeded_and_varied() -> None:
    pool = AnnotatorPool(num_annotators=16, seed=0)
    assert [a.annotator_id for a in pool.annotators] == list(range(16))
    assert pool.annotators == AnnotatorPool(num_annotators=16, seed=0).annotators
    assert pool.annotators != AnnotatorPool(num_annotators=16, seed=1).annotators
    assert len({a.temperature for a in pool.annotators}) == 16
    assert all(a.temperature > 0 and a.length_bias >= 0 and 0 <= a.noise <= 1 for a in pool.annotators)


def test_pool_means_follow_the_calibration() -> None:
    """Each annotator's parameters are the calibration's, times the same seeded draws."""
    base = AnnotatorPool.from_calibration(AnnotatorCalibration(temperature=0.1, length_bias=0.01, noise=0.1), seed=3)
    scaled = AnnotatorPool.from_calibration(AnnotatorCalibration(temperature=0.2, length_bias=0.03, noise=0.05), seed=3)
    for a, b in zip(base.annotators, scaled.annotators, strict=True):
        assert b.temperature == pytest.approx(2 * a.temperature)
        assert b.length_bias == pytest.approx(3 * a.length_bias)
        assert b.noise == pytest.approx(a.noise / 2)
    many = AnnotatorPool(num_annotators=2000, seed=0, temperature=0.2, length_bias=0.01, noise=0.2)
    # temperature * lognormal(0, 0.3) has mean 0.2 * exp(0.045); bias * U(0, 2) and noise * U(0.5, 1.5) mean 1x.
    assert np.mean([a.temperature for a in many.annotators]) == pytest.approx(0.2 * np.exp(0.045), rel=0.03)
    assert np.mean([a.length_bias for a in many.annotators]) == pytest.approx(0.01, rel=0.05)
    assert np.mean([a.noise for a in many.annotators]) == pytest.approx(0.2, rel=0.05)


def test_from_calibration_is_the_pool_of_those_means() -> None:
    calibration = AnnotatorCalibration(temperature=0.3, length_bias=0.02, noise=0.25)
    pool = AnnotatorPool.from_calibration(calibration, seed=7, num_annotators=5)
    assert pool.annotators == AnnotatorPool(5, 7, temperature=0.3, length_bias=0.02, noise=0.25).annotators
    # The default calibration is the pool's default.
    default = AnnotatorCalibration()
    assert (default.temperature, default.length_bias, default.noise) == (
        DEFAULT_TEMPERATURE, DEFAULT_LENGTH_BIAS, DEFAULT_NOISE)
    assert AnnotatorPool.from_calibration(default).annotators == AnnotatorPool().annotators


def test_probability_follows_gold_length_bias_and_noise() -> None:
    pool = AnnotatorPool(num_annotators=1)
    fair = Annotator(0, temperature=0.1, length_bias=0.0, noise=0.0)
    p = pool.prob_prefers_first(0.9, 0.4, 10, 10, fair)
    assert p > 0.99
    assert pool.prob_prefers_first(0.4, 0.9, 10, 10, fair) == pytest.approx(1 - p)
    assert pool.prob_prefers_first(0.5, 0.5, 10, 10, fair) == 0.5
    lapsing = Annotator(0, temperature=0.1, length_bias=0.0, noise=1.0)
    assert pool.prob_prefers_first(0.9, 0.4, 10, 10, lapsing) == 0.5
    half = Annotator(0, temperature=1e-9, length_bias=0.0, noise=0.5)
    assert pool.prob_prefers_first(0.9, 0.4, 10, 10, half) == pytest.approx(0.75)  # a lapse is a coin flip
    # Equal gold, one longer: a length lover prefers the longer one, and enough length
    # outweighs a gold margin.
    lover = Annotator(0, temperature=0.1, length_bias=0.05, noise=0.0)
    assert pool.prob_prefers_first(0.5, 0.5, 14, 10, lover) > 0.8
    assert pool.prob_prefers_first(0.4, 0.5, 20, 10, lover) > 0.9
    # No overflow as the temperature goes to zero.
    sharp = Annotator(0, temperature=1e-12, length_bias=0.0, noise=0.0)
    assert pool.prob_prefers_first(0.51, 0.5, 1, 1, sharp) == 1.0


def test_label_scored_is_reproducible_and_reports_the_annotator() -> None:
    pool = AnnotatorPool(num_annotators=4, seed=3)
    labels = [pool.label_scored(1.0, 0.0, 8, 8, np.random.default_rng(s)) for s in range(40)]
    assert labels == [pool.label_scored(1.0, 0.0, 8, 8, np.random.default_rng(s)) for s in range(40)]
    assert {who for _, who in labels} == {0, 1, 2, 3}
    assert sum(a for a, _ in labels) >= 30  # the better response wins, bar lapses


def test_label_scored_draws_labels_at_the_pools_probability() -> None:
    """Labels drawn for one pair: their mean is the pool's mean probability (4 standard errors)."""
    pool = AnnotatorPool(num_annotators=8, seed=2)
    rng = np.random.default_rng(4)
    for gold_a, gold_b, words_a, words_b in [(0.6, 0.5, 10, 12), (0.3, 0.5, 20, 8), (0.5, 0.5, 5, 5)]:
        p = np.mean([pool.prob_prefers_first(gold_a, gold_b, words_a, words_b, a) for a in pool.annotators])
        n = 4000
        share = np.mean([pool.label_scored(gold_a, gold_b, words_a, words_b, rng)[0] for _ in range(n)])
        assert abs(share - p) < 4 * np.sqrt(p * (1 - p) / n), (gold_a, gold_b, share, p)


# Agreement with the gold judge -------------------------------------------------------------
def test_noiseless_decisive_pool_agrees_with_gold_and_a_noisy_one_less() -> None:
    oracle = AnnotatorPool(temperature=1e-9, length_bias=0.0, noise=0.0)
    assert scored_gold_agreement(oracle, *PAIRS, rng=np.random.default_rng(0)) == 1.0
    default = scored_gold_agreement(AnnotatorPool(), *PAIRS, rng=np.random.default_rng(0))
    noisier = scored_gold_agreement(AnnotatorPool(noise=0.6), *PAIRS, rng=np.random.default_rng(0))
    warmer = scored_gold_agreement(AnnotatorPool(temperature=0.6), *PAIRS, rng=np.random.default_rng(0))
    assert 0.5 < noisier < default < 1.0 and warmer < default


def test_agreement_skips_gold_ties_and_rejects_all_ties() -> None:
    pool = AnnotatorPool()
    gold_a, gold_b, words_a, words_b = PAIRS
    untied = [i for i in range(len(gold_a)) if gold_a[i] != gold_b[i]]
    pick = [[column[i] for i in untied] for column in PAIRS]
    # Ties draw no label, so the labels of the untied pairs are the same draws.
    assert scored_gold_agreement(pool, *PAIRS, rng=np.random.default_rng(5)) == \
        scored_gold_agreement(pool, *pick, rng=np.random.default_rng(5))
    with pytest.raises(ValueError, match="tie"):
        scored_gold_agreement(pool, [0.5, 0.2], [0.5, 0.2], [3, 4], [5, 6], np.random.default_rng(0))
    with pytest.raises(ValueError, match="tie"):
        scored_gold_agreement(pool, [], [], [], [], np.random.default_rng(0))
    with pytest.raises(ValueError):
        scored_gold_agreement(pool, [0.9, 0.1], [0.1], [3, 3], [3, 3], np.random.default_rng(0))


# The Bayes ceiling ------------------------------------------------------------------------
def test_label_ceiling_is_what_the_best_guess_scores_against_fresh_labels() -> None:
    pool, rng = AnnotatorPool(), np.random.default_rng(1)
    ceiling = label_accuracy_ceiling(pool, *PAIRS)
    p = [np.mean([pool.prob_prefers_first(ga, gb, wa, wb, a) for a in pool.annotators]) for ga, gb, wa, wb in zip(*PAIRS)]
    labels = [pool.label_scored(ga, gb, wa, wb, rng)[0] for ga, gb, wa, wb in zip(*PAIRS)]
    best_guess = np.mean([(pi > 0.5) == label if pi != 0.5 else 0.5 for pi, label in zip(p, labels)])
    assert 0.6 < ceiling < 0.95
    assert abs(best_guess - ceiling) < 0.03  # 2,500 labels: ~0.009 standard error
    always_a = np.mean(labels)
    assert ceiling > max(always_a, 1 - always_a) + 0.1  # far better than a constant guess
    # Nothing beats it: the gold judge's own choice scores no better against the labels.
    gold_choice = np.mean([(ga > gb) == label for ga, gb, label in zip(PAIRS[0], PAIRS[1], labels) if ga != gb])
    assert gold_choice <= ceiling + 0.03


def test_label_ceiling_of_an_oracle_a_tie_and_a_coin() -> None:
    oracle = AnnotatorPool(temperature=1e-9, length_bias=0.0, noise=0.0)
    assert label_accuracy_ceiling(oracle, [0.9, 0.2], [0.1, 0.8], [5, 5], [5, 5]) == 1.0
    assert label_accuracy_ceiling(AnnotatorPool(), [0.5], [0.5], [5], [5]) == 0.5
    coin = AnnotatorPool(num_annotators=1)
    coin.annotators = (Annotator(0, temperature=0.1, length_bias=0.0, noise=1.0),)
    assert label_accuracy_ceiling(coin, *PAIRS) == 0.5


@pytest.mark.parametrize(
    "pairs",
    [([0.5, 0.2], [0.1], [3, 3], [3, 3]), ([0.5], [0.1], [3], [3, 4]), ([], [], [], [])],
    ids=["gold", "words", "empty"],
)
def test_label_ceiling_rejects_mismatched_or_empty_pairs(pairs: tuple[list, ...]) -> None:
    with pytest.raises(ValueError, match="one gold score and length"):
        label_accuracy_ceiling(AnnotatorPool(), *pairs)


# Bad arguments ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"num_annotators": 0}, "num_annotators must be >= 1, got 0"), ({"temperature": 0.0}, "temperature must be > 0"),
     ({"temperature": -1.0}, "temperature must be > 0"), ({"noise": 1.5}, r"noise must be in \[0, 1\], got 1.5"),
     ({"noise": -0.1}, "noise must be in")],
)
def test_bad_pool_arguments_are_rejected(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        AnnotatorPool(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"temperature": 0.0}, "temperature must be > 0, got 0.0"), ({"noise": 2.0}, r"noise must be in \[0, 1\], got 2.0")],
)
def test_bad_calibration_and_annotator_are_rejected(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        AnnotatorCalibration(**kwargs)
    with pytest.raises(ValueError, match=match):
        Annotator(0, **{"temperature": 0.1, "length_bias": 0.0, "noise": 0.0, **kwargs})


# Pools of several kinds of labeller, and a cue some of them over-reward -------------------
def test_a_pool_without_a_cue_bias_is_the_pool_it_always_was() -> None:
    """The cue bias is drawn from a stream of its own: with none, the annotators (and so every
    shipped build's labels) are unchanged, and a one-calibration world gets one pool."""
    pool = AnnotatorPool.from_calibration(AnnotatorCalibration(temperature=0.3, length_bias=0.02, noise=0.25), seed=7)
    assert all(a.cue_bias == 0.0 for a in pool.annotators)
    plain = AnnotatorPool(16, 7, temperature=0.3, length_bias=0.02, noise=0.25)
    assert [(a.temperature, a.length_bias, a.noise) for a in pool.annotators] == \
        [(a.temperature, a.length_bias, a.noise) for a in plain.annotators]
    biased = AnnotatorPool(16, 7, temperature=0.3, length_bias=0.02, noise=0.25, cue_bias=0.1)
    assert [(a.temperature, a.length_bias, a.noise) for a in biased.annotators] == \
        [(a.temperature, a.length_bias, a.noise) for a in plain.annotators]
    assert 0.0 < np.mean([a.cue_bias for a in biased.annotators]) < 0.2


def test_pools_split_the_annotators_by_share_with_their_own_calibrations() -> None:
    helpful = AnnotatorCalibration(temperature=0.1, length_bias=0.01, noise=0.1, share=0.6)
    harmless = AnnotatorCalibration(temperature=0.2, length_bias=0.0, noise=0.05, cue_bias=0.3, share=0.4)
    pool = AnnotatorPool.from_calibration((helpful, harmless), seed=3, num_annotators=16)
    assert [a.annotator_id for a in pool.annotators] == list(range(16))
    first, second = pool.annotators[:10], pool.annotators[10:]
    assert all(a.cue_bias == 0.0 and a.length_bias >= 0 for a in first)
    assert all(a.cue_bias > 0.0 and a.length_bias == 0.0 for a in second)
    assert np.mean([a.temperature for a in second]) > np.mean([a.temperature for a in first])
    assert AnnotatorPool.from_calibration((helpful, harmless), seed=3).annotators == pool.annotators  # seeded
    assert AnnotatorPool.from_calibration((helpful,), seed=3, num_annotators=4).annotators == \
        AnnotatorPool.from_calibration((helpful,), seed=3, num_annotators=4).annotators


@pytest.mark.parametrize(
    ("shares", "total", "sizes"),
    [([0.6, 0.4], 16, [10, 6]), ([1.0, 1.0, 1.0], 4, [2, 1, 1]), ([0.95, 0.05], 4, [3, 1]), ([2.0], 5, [5])],
)
def test_pool_sizes_follow_the_shares_and_give_every_pool_an_annotator(shares: list[float], total: int,
                                                                       sizes: list[int]) -> None:
    assert pool_sizes(shares, total) == sizes
    assert sum(pool_sizes(shares, total)) == total


def test_pool_sizes_and_shares_reject_what_cannot_be_split() -> None:
    with pytest.raises(ValueError, match="at least one annotator per pool"):
        pool_sizes([0.5, 0.5], 1)
    with pytest.raises(ValueError, match="positive shares"):
        pool_sizes([1.0, 0.0], 4)
    with pytest.raises(ValueError, match="share must be > 0, got 0.0"):
        AnnotatorCalibration(share=0.0)


def test_a_cue_bias_moves_the_choice_toward_the_cued_response() -> None:
    pool = AnnotatorPool(num_annotators=1)
    cued = Annotator(0, temperature=0.1, length_bias=0.0, noise=0.0, cue_bias=0.2)
    plain = Annotator(0, temperature=0.1, length_bias=0.0, noise=0.0)
    # A gold margin of 0.3 against the cued response, which holds two more cues (0.4 points).
    assert pool.prob_prefers_first(0.3, 0.6, 10, 10, cued, cue_a=2.0, cue_b=0.0) > 0.5
    assert pool.prob_prefers_first(0.3, 0.6, 10, 10, plain, cue_a=2.0, cue_b=0.0) < 0.05
    assert pool.prob_prefers_first(0.3, 0.6, 10, 10, cued) == pool.prob_prefers_first(0.3, 0.6, 10, 10, plain)


def test_cues_lower_agreement_and_the_ceiling_reads_them() -> None:
    """Cues that favour the worse response of each pair pull the biased pool's labels away
    from gold; without cues (None) the figures are those of the plain call."""
    gold_a, gold_b, words_a, words_b = PAIRS
    worse_first = [float(ga < gb) for ga, gb in zip(gold_a, gold_b)]
    cue_a, cue_b = [2 * c for c in worse_first], [2 * (1 - c) for c in worse_first]
    pool = AnnotatorPool(seed=0, cue_bias=0.1)
    plain = scored_gold_agreement(pool, *PAIRS, rng=np.random.default_rng(0))
    assert scored_gold_agreement(pool, *PAIRS, rng=np.random.default_rng(0), cue_a=None, cue_b=None) == plain
    assert scored_gold_agreement(pool, *PAIRS, rng=np.random.default_rng(0), cue_a=cue_a, cue_b=cue_b) < plain - 0.05
    assert label_accuracy_ceiling(pool, *PAIRS, cue_a=None, cue_b=None) == label_accuracy_ceiling(pool, *PAIRS)
    assert label_accuracy_ceiling(pool, *PAIRS, cue_a=cue_a, cue_b=cue_b) != label_accuracy_ceiling(pool, *PAIRS)


def test_a_world_has_no_cue_unless_it_says_so() -> None:
    from rlhf_gym.worlds import World

    assert World().annotator_cues([None, None], [" a", " b c"]).tolist() == [0.0, 0.0]
