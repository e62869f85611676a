"""The A/B harness: pairs run A B A B after untimed warm-ups, the figure is the median of pairwise ratios."""

from __future__ import annotations

import pytest

from rlhf_gym.bench.interleave import MIN_PAIRS, Sample, Side, compare


def _side(name: str, seconds: list[float], calls: list[tuple[str, int]], work: float = 10.0) -> Side:
    def run(index: int) -> Sample:
        calls.append((name, index))
        return Sample(work=work, seconds=seconds[len([c for c in calls if c[0] == name]) - 1], extra={"scoring_seconds": 0.5})

    return Side(name, run)


def test_pairs_alternate_after_untimed_warmups():
    calls: list[tuple[str, int]] = []
    a = _side("a", [9.0, 9.0, 1.0, 2.0, 4.0], calls)
    b = _side("b", [9.0, 9.0, 2.0, 2.0, 2.0], calls)
    result = compare(a, b, pairs=3, warmup=2)
    assert calls == [("a", -1), ("b", -1), ("a", -2), ("b", -2), ("a", 0), ("b", 0), ("a", 1), ("b", 1), ("a", 2), ("b", 2)]
    assert len(result.a_samples) == len(result.b_samples) == 3  # warm-ups are not kept
    assert result.ratios == [2.0, 1.0, 0.5]  # rate(A) / rate(B), pair by pair
    assert result.ratio == 1.0  # their median, not the ratio of median rates or of sums
    assert result.extra_median("a", "scoring_seconds") == 0.5


def test_the_median_resists_one_disturbed_pair():
    calls: list[tuple[str, int]] = []
    a = _side("a", [1.0, 1.0, 1.0, 50.0, 1.0, 1.0], calls)
    b = _side("b", [3.0, 3.0, 3.0, 3.0, 3.0, 3.0], calls)
    assert compare(a, b, pairs=5, warmup=1).ratio == 3.0


@pytest.mark.parametrize(("pairs", "warmup"), [(0, 1), (-1, 0), (3, -1)])
def test_compare_rejects_too_few_pairs_or_negative_warmup(pairs, warmup):
    side = Side("x", lambda index: Sample(1.0, 1.0))
    with pytest.raises(ValueError, match="pairs >= 1 and warmup >= 0"):
        compare(side, side, pairs=pairs, warmup=warmup)


def test_a_run_without_time_is_rejected():
    good = Side("good", lambda index: Sample(1.0, 1.0))
    zero = Side("zero", lambda index: Sample(1.0, 0.0))
    with pytest.raises(ValueError, match="side 'zero' reported 0.0 seconds"):
        compare(good, zero, pairs=1, warmup=0)


def test_the_default_is_at_least_five_pairs():
    assert MIN_PAIRS >= 5
    calls: list[tuple[str, int]] = []
    result = compare(_side("a", [1.0] * 9, calls), _side("b", [1.0] * 9, calls))
    assert len(result.ratios) == MIN_PAIRS and result.to_json()["a_samples"][0]["scoring_seconds"] == 0.5
