"""Interleaved A/B timing: the median of pairwise ratios, the one way a speed is compared here.

Both sides run alternately (A B A B ...), after ``warmup`` untimed pairs, and each pair
gives one ratio ``rate(A) / rate(B)``. The median of those ratios is the figure reported:
a noisy neighbour that slows one pair slows both of its sides, so a pair's ratio survives
where a single time does not.

Example:
    >>> a = Side("fast", lambda i: Sample(work=100.0, seconds=1.0))
    >>> b = Side("slow", lambda i: Sample(work=100.0, seconds=4.0))
    >>> result = compare(a, b, pairs=5, warmup=1)
    >>> result.ratio, result.a_rate, result.b_rate, len(result.ratios)
    (4.0, 100.0, 25.0, 5)
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

MIN_PAIRS = 5  # the floor: a reported ratio is the median of at least five pairs


@dataclass(frozen=True)
class Sample:
    """One timed run of one side.

    Attributes:
        work: what was done (env steps, new tokens, iterations); a rate is work per second.
        seconds: wall-clock seconds the run took (only the timed part).
        extra: side figures of this run (such as the seconds spent scoring), kept per run.
    """

    work: float
    seconds: float
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.work / self.seconds


@dataclass(frozen=True)
class Side:
    """One side of a comparison: a name and a function running it once (its argument is the run's index)."""

    name: str
    run: Callable[[int], Sample]


@dataclass
class Comparison:
    """The outcome of `compare`: A's rate over B's, pair by pair.

    Attributes:
        a, b: the sides' names.
        ratio: median of the pairwise ratios ``rate(A) / rate(B)``: the reported figure.
        ratios: each pair's ratio, in order.
        a_rate, b_rate: median rate of each side (work per second).
        a_samples, b_samples: every timed run.
    """

    a: str
    b: str
    ratio: float
    ratios: list[float]
    a_rate: float
    b_rate: float
    a_samples: list[Sample]
    b_samples: list[Sample]

    def extra_median(self, side: str, key: str) -> float:
        """Median over side ``"a"`` or ``"b"``'s runs of ``Sample.extra[key]``."""
        samples = self.a_samples if side == "a" else self.b_samples
        return statistics.median(s.extra[key] for s in samples)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("a_samples", "b_samples"):
            data[key] = [{"work": s.work, "seconds": s.seconds, **s.extra} for s in getattr(self, key)]
        return data


def compare(a: Side, b: Side, *, pairs: int = MIN_PAIRS, warmup: int = 1) -> Comparison:
    """Run ``warmup`` untimed pairs, then ``pairs`` timed pairs A B A B ...; ratios are A over B.

    Raises:
        ValueError: if ``pairs`` < 1 or ``warmup`` < 0, or a run reports no time.
    """
    if pairs < 1 or warmup < 0:
        raise ValueError(f"need pairs >= 1 and warmup >= 0, got pairs={pairs}, warmup={warmup}")
    for index in range(warmup):
        a.run(-1 - index)
        b.run(-1 - index)
    a_samples: list[Sample] = []
    b_samples: list[Sample] = []
    for index in range(pairs):
        for side, samples in ((a, a_samples), (b, b_samples)):
            sample = side.run(index)
            if not sample.seconds > 0:
                raise ValueError(f"side {side.name!r} reported {sample.seconds!r} seconds; a timed run takes > 0")
            samples.append(sample)
    ratios = [x.rate / y.rate for x, y in zip(a_samples, b_samples)]
    return Comparison(
        a=a.name,
        b=b.name,
        ratio=statistics.median(ratios),
        ratios=ratios,
        a_rate=statistics.median(s.rate for s in a_samples),
        b_rate=statistics.median(s.rate for s in b_samples),
        a_samples=a_samples,
        b_samples=b_samples,
    )
