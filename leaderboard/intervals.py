"""Intervals of a leaderboard mean: a two-level bootstrap over runs (seeds) and test posts.

A submission's gold score is a table of numbers, ``(R, P)``: run ``r`` (one training seed,
or one sampling seed of a fixed policy) answered test post ``p`` with gold score
``values[r, p]``. The row's point estimate is the plain mean of the table. Its interval
has to say how much that mean would move with other seeds *and* other test posts, so
`crossed_bootstrap` resamples both:

1. draw ``R`` runs with replacement;
2. draw ``P`` posts with replacement, **one set of post indices per resample, applied to
   every resampled run**;
3. take the mean of the resampled ``R x P`` table;

and reports the 2.5% and 97.5% percentiles of ``n_resamples`` such means.

Why one post draw for all runs (a *crossed* design, Owen 2007, "The pigeonhole
bootstrap", Ann. Appl. Stat.): every run answers the *same* test posts, so a hard post
lowers every run's score together. A post's effect is shared by the runs, and the grand
mean carries it once, with variance ``var(post) / P``. Resampling posts separately inside
each run (a *nested* design) would treat the runs' post effects as independent and average
them down by a further factor ``R``: the interval would be too narrow by exactly the part
that a different test set would move. Drawing one set of posts per resample and applying
it to every run keeps the shared effect shared.

The paired change ``gold - sft_gold`` gets the same treatment: per post and run, the
submitted policy's gold minus the SFT policy's gold on the same post and sampling stream.
The post difficulty cancels in the difference, which is why the change's interval is much
narrower than the two gold intervals would suggest.

How well it covers. `tests/leaderboard/test_intervals.py` simulates
``values[r, p] = mu + seed_r + post_p + noise_rp`` with ``R = 3`` and ``P = 256`` (the
leaderboard's shape) and counts how often the 95% interval holds ``mu``:

- when the post effects dominate (sd 0.2 posts, 0.01 seeds, 0.1 noise: posts differ in
  difficulty far more than trained seeds differ in skill, as on the leaderboard, where
  the three seeds of an RL row land within about 0.02 of gold), coverage is close to
  nominal: 94.5% over 2,000 replications. The noise term is counted by both
  resampling levels, which makes the interval slightly conservative (Owen 2007), and the
  run level's small-sample shrinkage (below) slightly liberal; here they roughly cancel.
- when the between-seed variance dominates (sd 0.1 seeds, 0.01 posts, 0.02 noise) the
  interval is **too narrow with 3 seeds**: coverage 73.3% (2,000 replications). A
  bootstrap over 3 runs only sees those 3 values: the resampled mean's variance is
  ``(R - 1) / R`` of the plug-in variance ``s^2 / R``, and its percentiles come from 10
  distinct multisets, while an honest 95% interval with 2 degrees of freedom needs a t
  multiplier of 4.3, not 1.96. No resampling scheme can learn a between-seed spread from
  3 seeds; more seeds can (30 seeds: 93.5% in the test).

Hence the table's wording: "mean [95% bootstrap interval over seeds and test posts]",
never a "confidence interval" with a promise attached.

Why not the ``rliable`` library (Agarwal et al. 2021), whose stratified bootstrap would
otherwise be the reference: it does not install cleanly on this project's stack.
rliable 1.2.0 requires ``arch<8``; arch 7.2 fails to import with pandas 3.1
(``deprecate_kwarg() missing 1 required positional argument``), and arch 8 breaks rliable's
``StratifiedBootstrap`` (it rejects ``random_state=None``). Its bootstrap resamples runs
only, too, not the test posts: the interval here is a few lines of numpy.

The bootstrap seed is fixed, so the same table always gives the same interval (the
leaderboard build is byte-deterministic).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

N_RESAMPLES = 2000
"""Bootstrap resamples per interval."""
CONFIDENCE = 0.95
"""The central mass of the percentile interval."""
BOOTSTRAP_SEED = 0
"""The fixed seed of every interval's resamples: the build is deterministic."""
_CHUNK = 250  # resamples drawn and reduced at once: memory ~ _CHUNK * P floats; a constant, so the draws never depend on it


@dataclass(frozen=True)
class Interval:
    """A mean and its bootstrap interval ``[low, high]``."""

    mean: float
    low: float
    high: float

    def overlaps(self, other: Interval) -> bool:
        """Whether the two intervals share a point.

        >>> Interval(0.5, 0.4, 0.6).overlaps(Interval(0.7, 0.6, 0.8))
        True
        >>> Interval(0.5, 0.4, 0.6).overlaps(Interval(0.7, 0.61, 0.8))
        False
        """
        return self.low <= other.high and other.low <= self.high


def _counts(rng: np.random.Generator, n_resamples: int, n: int) -> np.ndarray:
    """How often each of ``n`` items is drawn in each of ``n_resamples`` draws of ``n`` with replacement: ``(n_resamples, n)``."""
    draws = rng.integers(0, n, size=(n_resamples, n))  # (B, n) indices
    offsets = (np.arange(n_resamples) * n)[:, None]
    return np.bincount((draws + offsets).ravel(), minlength=n_resamples * n).reshape(n_resamples, n)


def resampled_means(values: np.ndarray, n_resamples: int = N_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> np.ndarray:
    """The mean of each crossed resample of ``values`` ``(R, P)``: ``(n_resamples,)``.

    A resample's mean is ``sum_r sum_p a_r b_p values[r, p] / (R P)`` with ``a`` the run
    counts and ``b`` the post counts of its draw, so no resampled table is materialised.
    """
    table = np.asarray(values, dtype=np.float64)
    runs, posts = table.shape
    rng = np.random.default_rng(seed)
    means = np.empty(n_resamples)
    for start in range(0, n_resamples, _CHUNK):
        size = min(_CHUNK, n_resamples - start)
        run_counts = _counts(rng, size, runs).astype(np.float64)  # (b, R)
        post_counts = _counts(rng, size, posts).astype(np.float64)  # (b, P): one post draw shared by every run of the resample
        # einsum without BLAS: small products, and the same summation order on every machine
        means[start : start + size] = np.einsum("br,rp,bp->b", run_counts, table, post_counts) / (runs * posts)
    return means


def crossed_bootstrap(
    values: np.ndarray,
    n_resamples: int = N_RESAMPLES,
    confidence: float = CONFIDENCE,
    seed: int = BOOTSTRAP_SEED,
) -> Interval:
    """The mean of ``values`` ``(R runs, P posts)`` and its percentile bootstrap interval over runs and posts.

    Args:
        values: one row per run, one column per test post (the same posts in every row).
        n_resamples: bootstrap resamples.
        confidence: the interval's central mass, in (0, 1).
        seed: the resamples' seed (fixed: the same table gives the same interval).

    Returns:
        The plain mean of the table and the ``(1 - confidence) / 2`` and
        ``(1 + confidence) / 2`` percentiles of the resampled means.

    Raises:
        ValueError: ``values`` is not a non-empty 2-d table of finite numbers, or
            ``confidence`` / ``n_resamples`` is out of range.

    >>> crossed_bootstrap(np.full((3, 4), 0.25))
    Interval(mean=0.25, low=0.25, high=0.25)
    >>> table = np.array([[0.0, 1.0], [0.0, 1.0], [0.0, 1.0]])  # post 1 easier than post 0, every run alike
    >>> interval = crossed_bootstrap(table)
    >>> interval.mean, interval.low, interval.high
    (0.5, 0.0, 1.0)
    """
    table = np.asarray(values, dtype=np.float64)
    if table.ndim != 2 or 0 in table.shape:
        raise ValueError(f"values must be a (runs, posts) table with at least one of each, got shape {table.shape}")
    if not np.all(np.isfinite(table)):
        raise ValueError("values must be finite numbers; the table holds NaN or infinity")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1, got {n_resamples}")
    means = resampled_means(table, n_resamples, seed)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return Interval(float(table.mean()), float(low), float(high))
