"""Simulated annotators: calibrated agreement with the gold judge, and their parameters."""

from __future__ import annotations

import numpy as np
import pytest

from rlhf_gym.envs.summarize.annotators import (
    Annotator,
    AnnotatorPool,
    gold_agreement,
    label_accuracy_ceiling,
)
from rlhf_gym.envs.summarize.perturbations import sample_candidate
from rlhf_gym.envs.summarize.world import PostRecord, generate_post


def _comparison_pairs(n: int, seed: int) -> list[tuple[PostRecord, str, str]]:
    """Pairs of candidates, each the reference, a perturbation or a double perturbation."""
    rng = np.random.default_rng(seed)
    pairs = []
    for post_id in rng.integers(0, 10_000_000, size=n):
        post = generate_post(int(post_id))
        (_, a), (_, b) = sample_candidate(post, rng), sample_candidate(post, rng)
        pairs.append((post.record, a, b))
    return pairs


PAIRS = _comparison_pairs(2500, seed=0)


def test_default_pool_agrees_with_gold_about_as_often_as_human_labellers() -> None:
    agreement = gold_agreement(AnnotatorPool(), PAIRS, np.random.default_rng(0))
    assert 0.70 <= agreement <= 0.80


def test_noiseless_zero_temperature_pool_agrees_with_gold() -> None:
    oracle = AnnotatorPool(temperature=1e-9, length_bias=0.0, noise=0.0)
    assert gold_agreement(oracle, PAIRS, np.random.default_rng(0)) >= 0.999


@pytest.mark.slow
def test_label_ceiling_bounds_the_observed_accuracy_of_the_best_scorer() -> None:
    """The Bayes rate is what the pool's own expected choice scores against fresh labels."""
    from rlhf_gym.envs.summarize.gold_judge import gold_score

    pool, rng = AnnotatorPool(), np.random.default_rng(1)
    gold_a = [gold_score(r, a) for r, a, _ in PAIRS]
    gold_b = [gold_score(r, b) for r, _, b in PAIRS]
    words_a = [len(a.split()) for _, a, _ in PAIRS]
    words_b = [len(b.split()) for _, _, b in PAIRS]
    ceiling = label_accuracy_ceiling(pool, gold_a, gold_b, words_a, words_b)
    p = [np.mean([pool.prob_prefers_first(r, a, b, x) for x in pool.annotators]) for r, a, b in PAIRS]
    labels = [pool.label_scored(ga, gb, wa, wb, rng)[0] for ga, gb, wa, wb in zip(gold_a, gold_b, words_a, words_b)]
    best_guess_accuracy = np.mean([(pi > 0.5) == label for pi, label in zip(p, labels) if pi != 0.5])
    assert 0.6 < ceiling < 0.95
    assert abs(best_guess_accuracy - ceiling) < 0.03  # 2,500 labels: ~0.009 standard error
    always_a = np.mean(labels)
    assert ceiling > max(always_a, 1 - always_a) + 0.1  # far better than a constant guess


def test_label_ceiling_rejects_mismatched_pairs() -> None:
    with pytest.raises(ValueError, match="one gold score and length"):
        label_accuracy_ceiling(AnnotatorPool(), [0.5, 0.2], [0.1], [3, 3], [3, 3])


def test_pool_parameters_are_seeded_and_varied() -> None:
    pool = AnnotatorPool(num_annotators=16, seed=0)
    assert len(pool.annotators) == 16
    assert [a.annotator_id for a in pool.annotators] == list(range(16))
    assert pool.annotators == AnnotatorPool(num_annotators=16, seed=0).annotators
    assert pool.annotators != AnnotatorPool(num_annotators=16, seed=1).annotators
    assert len({a.temperature for a in pool.annotators}) == 16
    assert all(a.length_bias >= 0 and 0 <= a.noise <= 1 for a in pool.annotators)


def test_probability_follows_gold_length_bias_and_noise() -> None:
    post = generate_post(0)
    pool = AnnotatorPool(num_annotators=1)
    good, bad = post.reference, post.reference.replace("; ", "? ", 1)[:25]
    fair = Annotator(0, temperature=0.1, length_bias=0.0, noise=0.0)
    p = pool.prob_prefers_first(post.record, good, bad, fair)
    assert p > 0.9
    assert pool.prob_prefers_first(post.record, bad, good, fair) == pytest.approx(1 - p)
    assert pool.prob_prefers_first(post.record, good, good, fair) == 0.5
    lapsing = Annotator(0, temperature=0.1, length_bias=0.0, noise=1.0)
    assert pool.prob_prefers_first(post.record, good, bad, lapsing) == 0.5
    # Equal gold (both empty-ish), one longer: a length lover prefers the longer one.
    lover = Annotator(0, temperature=0.1, length_bias=0.05, noise=0.0)
    assert pool.prob_prefers_first(post.record, " a b c d e", " a", lover) > 0.8


def test_label_is_reproducible_and_reports_the_annotator() -> None:
    post = generate_post(1)
    pool = AnnotatorPool(num_annotators=4, seed=3)
    labels = [pool.label(post.record, post.reference, "", np.random.default_rng(s))
              for s in range(20)]
    assert labels == [pool.label(post.record, post.reference, "", np.random.default_rng(s))
                      for s in range(20)]
    assert {who for _, who in labels} <= {0, 1, 2, 3} and len({w for _, w in labels}) > 1
    assert sum(a for a, _ in labels) >= 14  # the reference beats nothing, bar lapses


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"num_annotators": 0}, "num_annotators"), ({"temperature": 0.0}, "temperature"),
     ({"noise": 1.5}, "noise")],
)
def test_bad_pool_arguments_are_rejected(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        AnnotatorPool(**kwargs)


def test_all_ties_is_an_error() -> None:
    post = generate_post(2)
    with pytest.raises(ValueError, match="tie"):
        gold_agreement(AnnotatorPool(), [(post.record, post.reference, post.reference)],
                       np.random.default_rng(0))


def test_label_scored_draws_the_same_labels_as_label() -> None:
    from rlhf_gym.envs.summarize.gold_judge import gold_score

    pool = AnnotatorPool()
    rng_text, rng_scored = np.random.default_rng(3), np.random.default_rng(3)
    for record, a, b in PAIRS[:200]:
        scored = pool.label_scored(gold_score(record, a), gold_score(record, b), len(a.split()), len(b.split()), rng_scored)
        assert pool.label(record, a, b, rng_text) == scored
