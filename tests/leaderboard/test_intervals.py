"""`rlhf_gym.leaderboard.intervals`: the crossed bootstrap over runs and test posts, and how well it covers.

The coverage tests simulate ``values[r, p] = mu + seed_r + post_p + noise_rp`` with the
leaderboard's shape (3 runs, 256 posts), build the 95% interval of each replication and
count how often it holds ``mu``. Fixed seeds: each test computes the same coverage on every
run, and the docstrings report what it measured. The required one (post variance
dominates, the leaderboard's case) is in the fast tier; the two that document limits are slow.
"""

from __future__ import annotations

import numpy as np
import pytest

from rlhf_gym.leaderboard.intervals import Interval, crossed_bootstrap, resampled_means

RUNS, POSTS, MU = 3, 256, 0.6


def _tables(sd_seed: float, sd_post: float, sd_noise: float, replications: int, runs: int = RUNS, seed: int = 1):
    """``replications`` synthetic (runs, posts) tables with true mean `MU`."""
    rng = np.random.default_rng(seed)
    for _ in range(replications):
        yield (MU + rng.normal(0, sd_seed, (runs, 1)) + rng.normal(0, sd_post, (1, POSTS))
               + rng.normal(0, sd_noise, (runs, POSTS)))


def _coverage(intervals: list[Interval]) -> float:
    return float(np.mean([iv.low <= MU <= iv.high for iv in intervals]))


def test_hand_made_tables():
    assert crossed_bootstrap(np.full((3, 5), 0.25)) == Interval(0.25, 0.25, 0.25)
    # Every run alike, posts 0 and 1: a resample's mean is 0, 0.5 or 1 with chance 1/4, 1/2, 1/4.
    means = resampled_means(np.array([[0.0, 1.0]] * 3), n_resamples=4000)
    assert set(np.unique(means)) == {0.0, 0.5, 1.0}
    assert np.mean(means == 0.5) == pytest.approx(0.5, abs=0.03)
    # Every post alike, runs 0 and 1 (and a third 0): the post draw cannot matter, the run draw can.
    means = resampled_means(np.array([[0.0] * 4, [1.0] * 4, [0.0] * 4]), n_resamples=4000)
    assert set(np.unique(means)) == {0.0, 1 / 3, 2 / 3, 1.0}
    interval = crossed_bootstrap(np.array([[0.1, 0.3], [0.5, 0.7], [0.2, 0.6]]))
    assert interval.mean == pytest.approx(0.4)  # the plain mean of the table
    assert interval.low <= interval.mean <= interval.high


def test_one_post_draw_is_shared_by_every_run():
    """The resampled means equal a brute-force crossed resample made from the same random draws."""
    rng = np.random.default_rng(7)
    table = rng.normal(size=(4, 9))
    n = 200  # one chunk of draws: runs (n, R), then posts (n, P)
    draws = np.random.default_rng(11)
    run_index = draws.integers(0, 4, size=(n, 4))
    post_index = draws.integers(0, 9, size=(n, 9))
    brute = np.array([table[run_index[b]][:, post_index[b]].mean() for b in range(n)])  # one post draw for all runs
    np.testing.assert_allclose(resampled_means(table, n_resamples=n, seed=11), brute, rtol=0, atol=1e-12)


def test_deterministic_and_checked():
    table = np.random.default_rng(0).normal(size=(3, 50))
    assert crossed_bootstrap(table) == crossed_bootstrap(table.copy())
    assert crossed_bootstrap(table, seed=1) != crossed_bootstrap(table, seed=2)
    narrow, wide = crossed_bootstrap(table, confidence=0.5), crossed_bootstrap(table, confidence=0.99)
    assert wide.low < narrow.low < narrow.high < wide.high
    with pytest.raises(ValueError, match=r"\(runs, posts\) table.*shape \(5,\)"):
        crossed_bootstrap(np.zeros(5))
    with pytest.raises(ValueError, match="shape \\(0, 4\\)"):
        crossed_bootstrap(np.zeros((0, 4)))
    with pytest.raises(ValueError, match="NaN or infinity"):
        crossed_bootstrap(np.array([[0.1, np.nan]]))
    with pytest.raises(ValueError, match="confidence must be in \\(0, 1\\), got 95"):
        crossed_bootstrap(table, confidence=95)
    with pytest.raises(ValueError, match="n_resamples must be at least 1, got 0"):
        crossed_bootstrap(table, n_resamples=0)
    assert Interval(0.5, 0.4, 0.6).overlaps(Interval(0.6, 0.6, 0.7))
    assert not Interval(0.5, 0.4, 0.6).overlaps(Interval(0.7, 0.65, 0.8))


def test_coverage_when_post_variance_dominates():
    """Posts differ far more than seeds (sd 0.2 posts, 0.01 seeds, 0.1 noise): near-nominal coverage.

    Measured: 95.5% over these 400 replications (94.5% over 2,000 in the module docstring).
    """
    intervals = [crossed_bootstrap(table, n_resamples=1000, seed=i) for i, table in enumerate(_tables(0.01, 0.2, 0.1, 400))]
    assert 0.92 <= _coverage(intervals) <= 0.98


@pytest.mark.slow
def test_a_nested_bootstrap_would_under_cover_the_same_data():
    """Why one post draw per resample: drawing posts separately for each run (nested) treats
    the shared post effects as independent, averages them down and under-covers.

    Measured: 80.5% for the nested design on the data of the test above (the crossed one: 95.5%).
    """
    hits = []
    rng = np.random.default_rng(0)
    for table in _tables(0.01, 0.2, 0.1, 400):
        runs = rng.integers(0, RUNS, size=(1000, RUNS))
        posts = rng.integers(0, POSTS, size=(1000, RUNS, POSTS))  # a post draw per run: the nested design
        means = table[runs[:, :, None], posts].mean(axis=(1, 2))
        low, high = np.quantile(means, [0.025, 0.975])
        hits.append(low <= MU <= high)
    assert np.mean(hits) < 0.88


@pytest.mark.slow
def test_coverage_when_seed_variance_dominates_needs_more_than_three_seeds():
    """Seeds differ far more than posts (sd 0.1 seeds, 0.01 posts, 0.02 noise): with 3 seeds the
    interval is too narrow (measured 72.25% over these 400 replications; 73.3% over 2,000 in the
    module docstring); with 30 seeds it nears nominal (measured 93.5% over 200).
    """
    three = [crossed_bootstrap(table, n_resamples=1000, seed=i) for i, table in enumerate(_tables(0.1, 0.01, 0.02, 400))]
    assert 0.6 <= _coverage(three) <= 0.85
    thirty = [crossed_bootstrap(table, n_resamples=1000, seed=i) for i, table in enumerate(_tables(0.1, 0.01, 0.02, 200, runs=30))]
    assert _coverage(thirty) >= 0.88
