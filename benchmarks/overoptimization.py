"""Where does optimising the proxy stop paying in gold? The scaling-law fits of Gao et al.

Gao, Schulman & Hilton (2023), "Scaling Laws for Reward Model Overoptimization", found
that the gold score gained over the starting policy follows a simple function of the
distance ``d = sqrt(KL)`` that the optimisation moved the policy:

- best-of-n: ``R_bon(d) = d (alpha - beta d)``, with ``KL = log n - (n - 1) / n``;
- RL: ``R_RL(d) = d (alpha - beta log d)``.

With ``beta > 0`` both curves rise, peak and fall: past the peak, further optimisation of
the proxy lowers the gold score (over-optimisation). The peak is at ``d* = alpha / (2 beta)``
for best-of-n and ``d* = exp(alpha / beta - 1)`` for RL. Both forms are linear in
(alpha, beta), so they are fitted by least squares without intercept (a gain is 0 at
d = 0 by definition), and R^2 says how well the form describes our curve.

Inputs are what other scripts already write: ``best_of_n.json`` of
``benchmarks/best_of_n.py`` (gold and proxy of the proxy's pick, and the gold of the gold
judge's pick, per n) and a training run's ``summary.json`` (its valid-split evaluations:
gold, proxy reward and KL against env steps, the first at step 0). Where the run's
evaluations also carry its world's own metrics (Dialogue's over-refusal, harmful
compliance, ...), the plot adds a panel of them against sqrt(KL): the behaviour behind a
gold curve that turns down.

    python benchmarks/overoptimization.py --best-of-n runs/best_of_n/best_of_n.json
    python benchmarks/overoptimization.py --run runs/ppo --out runs/overoptimization
    python benchmarks/overoptimization.py --best-of-n runs/best_of_n/best_of_n.json --run runs/ppo/summary.json
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import tyro  # noqa: E402


@dataclass
class Config:
    best_of_n: str | None = None  # best_of_n.json written by benchmarks/best_of_n.py
    run: str | None = None  # a training run folder, or its summary.json
    kl_tolerance: float = 0.1  # RL KL estimates down to -kl_tolerance nats count as 0; lower ones are an error
    out: str = "runs/overoptimization"  # overoptimization.json and overoptimization.png


@dataclass(frozen=True)
class Fit:
    """A fitted functional form: its coefficients, R^2 and the number of points fitted."""

    alpha: float
    beta: float
    r2: float  # 1 - SS_res / SS_tot, SS_tot about the mean gain; NaN when every gain is equal
    points: int  # all points, those at d = 0 included


@dataclass(frozen=True)
class Curve:
    """One measured curve: gain over the starting policy against KL, and the form to fit."""

    name: str  # key in overoptimization.json
    label: str  # legend and table text
    source: str  # "best_of_n" or "run": the panel it is drawn in
    score: str  # "gold" or "proxy": the axis it is drawn on
    form: str  # "best_of_n" or "rl"
    kl: np.ndarray
    gain: np.ndarray


def kl_bound(n: int) -> float:
    """KL(best-of-n || policy) in nats, ``log n - (n - 1) / n``, as in benchmarks/best_of_n.py.

    Recomputed here so that this script does not import torch and the env through that one.

    Example:
        >>> kl_bound(1), round(kl_bound(16), 3)
        (0.0, 1.835)
    """
    return math.log(n) - (n - 1) / n


def _as_points(kl: Any, gain: Any) -> tuple[np.ndarray, np.ndarray]:
    """``kl`` and ``gain`` as float arrays, checked to be 1-D, of one length and finite."""
    kl, gain = np.asarray(kl, dtype=float), np.asarray(gain, dtype=float)
    if kl.ndim != 1 or kl.shape != gain.shape:
        raise ValueError(f"kl and gain must be 1-D arrays of one length, got shapes {kl.shape} and {gain.shape}")
    for name, values in (("kl", kl), ("gain", gain)):
        bad = np.flatnonzero(~np.isfinite(values))
        if len(bad):
            raise ValueError(f"{name}[{bad[0]}] is {values[bad[0]]}; expected a finite number")
    return kl, gain


def _check_enough(d: np.ndarray) -> None:
    """Two coefficients need two distinct distances d > 0 (points at d = 0 are fitted by any
    alpha and beta, so they cannot determine them)."""
    distinct = np.unique(d[d > 0])
    if len(distinct) < 2:
        raise ValueError(
            f"need at least 2 distinct points with KL > 0 to fit alpha and beta, got {len(distinct)} "
            f"(KL = {np.round(d**2, 6).tolist()})"
        )


def _least_squares(columns: np.ndarray, gain: np.ndarray) -> Fit:
    """Fit ``gain ~ columns @ (alpha, beta)`` without intercept; R^2 about the mean gain."""
    (alpha, beta), *_ = np.linalg.lstsq(columns, gain, rcond=None)
    ss_res = float(np.sum((gain - columns @ np.array([alpha, beta])) ** 2))
    ss_tot = float(np.sum((gain - gain.mean()) ** 2))
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else math.nan
    return Fit(alpha=float(alpha), beta=float(beta), r2=r2, points=len(gain))


def best_of_n_columns(d: np.ndarray) -> np.ndarray:
    """Regressors of ``R_bon(d) = alpha d - beta d^2``: the columns ``d`` and ``-d^2``."""
    return np.stack([d, -(d**2)], axis=1)


def rl_columns(d: np.ndarray) -> np.ndarray:
    """Regressors of ``R_RL(d) = alpha d - beta d log d``: ``d`` and ``-d log d``, the latter
    taken as its limit 0 at d = 0."""
    d_log_d = np.zeros_like(d)
    positive = d > 0
    d_log_d[positive] = d[positive] * np.log(d[positive])
    return np.stack([d, -d_log_d], axis=1)


def fit_best_of_n(kl: Any, gain: Any) -> Fit:
    """Fit ``R_bon(d) = d (alpha - beta d)``, d = sqrt(KL), to best-of-n gains.

    Args:
        kl: KL of each best-of-n to the policy in nats (``kl_bound(n)``), each >= 0.
        gain: score of each best-of-n minus that of n = 1.

    Example (noiseless gains of alpha = 1, beta = 0.5 at n = 1, 2, 4, ..., 64):
        >>> kl = np.array([kl_bound(2**k) for k in range(7)]); d = np.sqrt(kl)
        >>> fit = fit_best_of_n(kl, d * (1.0 - 0.5 * d))
        >>> round(fit.alpha, 9), round(fit.beta, 9), round(fit.r2, 9), fit.points
        (1.0, 0.5, 1.0, 7)
    """
    kl, gain = _as_points(kl, gain)
    negative = np.flatnonzero(kl < 0)
    if len(negative):
        raise ValueError(
            f"kl[{negative[0]}] = {kl[negative[0]]} is negative; the KL of best-of-n, "
            "log n - (n - 1) / n, is >= 0"
        )
    d = np.sqrt(kl)
    _check_enough(d)
    return _least_squares(best_of_n_columns(d), gain)


def fit_rl(kl: Any, gain: Any, negative_tolerance: float = 0.1) -> Fit:
    """Fit ``R_RL(d) = d (alpha - beta log d)``, d = sqrt(KL), to an RL run's gains.

    Args:
        kl: the run's KL to the starting policy at each evaluation, nats per episode.
        gain: the score at each evaluation minus that of the first (the starting policy).
        negative_tolerance: KL values in [-negative_tolerance, 0) are taken as 0, lower ones
            are an error.

    Example (noiseless gains of alpha = 1, beta = 0.5; the first point at KL 0):
        >>> kl = np.array([0.0, 0.5, 1.0, 2.0, 4.0, 8.0]); d = np.sqrt(kl)
        >>> fit = fit_rl(kl, d * (1.0 - 0.5 * np.log(np.where(d > 0, d, 1.0))))
        >>> round(fit.alpha, 9), round(fit.beta, 9), round(fit.r2, 9), fit.points
        (1.0, 0.5, 1.0, 6)
    """
    kl, gain = _as_points(kl, gain)
    too_negative = np.flatnonzero(kl < -negative_tolerance)
    if len(too_negative):
        raise ValueError(
            f"kl[{too_negative[0]}] = {kl[too_negative[0]]} nats is below -{negative_tolerance}; "
            "a KL estimate may dip under 0 by sampling noise, expected no lower than that"
        )
    # The run's KL is a Monte-Carlo estimate (the mean log-ratio over the sampled episodes),
    # which can fall slightly below 0 while the policy is still close to the starting one;
    # the true KL is >= 0, so such values are taken as 0 (d = 0, where both forms predict 0).
    d = np.sqrt(np.clip(kl, 0.0, None))
    _check_enough(d)
    return _least_squares(rl_columns(d), gain)


def best_of_n_peak(fit: Fit) -> float | None:
    """Distance d >= 0 where the fitted best-of-n curve peaks: ``alpha / (2 beta)``.

    None when ``beta <= 0`` (the curve never turns down); 0 when ``alpha <= 0`` with
    ``beta > 0`` (it only falls).

    Example:
        >>> best_of_n_peak(Fit(alpha=1.0, beta=0.5, r2=1.0, points=5)), best_of_n_peak(Fit(1.0, -0.1, 1.0, 5))
        (1.0, None)
    """
    if fit.beta <= 0:
        return None
    return max(fit.alpha / (2 * fit.beta), 0.0)


def rl_peak(fit: Fit) -> float | None:
    """Distance d where the fitted RL curve peaks: ``exp(alpha / beta - 1)``, where the
    derivative ``alpha - beta (log d + 1)`` is 0.

    None when ``beta <= 0`` (the curve never turns down) or the peak is too far to be a
    float.

    Example:
        >>> round(rl_peak(Fit(alpha=1.0, beta=0.5, r2=1.0, points=5)), 6), rl_peak(Fit(1.0, 0.0, 1.0, 5))
        (2.718282, None)
    """
    if fit.beta <= 0:
        return None
    exponent = fit.alpha / fit.beta - 1.0
    return math.exp(exponent) if exponent < 700 else None


def best_of_n_curve(d: np.ndarray, fit: Fit) -> np.ndarray:
    """The fitted best-of-n gain at distances ``d``."""
    return best_of_n_columns(d) @ np.array([fit.alpha, fit.beta])


def rl_curve(d: np.ndarray, fit: Fit) -> np.ndarray:
    """The fitted RL gain at distances ``d``."""
    return rl_columns(d) @ np.array([fit.alpha, fit.beta])


FORMS: dict[str, tuple[str, Callable[[np.ndarray, Fit], np.ndarray], Callable[[Fit], float | None]]] = {
    "best_of_n": ("d (alpha - beta d)", best_of_n_curve, best_of_n_peak),
    "rl": ("d (alpha - beta log d)", rl_curve, rl_peak),
}


def best_of_n_curves(path: Path) -> list[Curve]:
    """Gains over n = 1 in a best_of_n.json: ``{"rows": [{"n", "kl_bound", "gold", "proxy",
    "oracle_gold"}, ...]}``; the oracle curve only when its rows have ``oracle_gold``."""
    rows = json.loads(path.read_text())["rows"]
    for row in rows:
        if not isinstance(row["n"], int) or row["n"] < 1:
            raise ValueError(f"{path}: n = {row['n']!r} in a row; expected an integer >= 1")
    base = next((row for row in rows if row["n"] == 1), None)
    if base is None:
        raise ValueError(f"{path}: no row for n = 1 (the policy itself), which the gains are measured from; "
                         f"got n = {[row['n'] for row in rows]}")
    kl = np.array([kl_bound(row["n"]) for row in rows])
    picks = [("bon_gold", "best-of-n gold (proxy's pick)", "gold", "gold"),
             ("bon_proxy", "best-of-n proxy (proxy's pick)", "proxy", "proxy")]
    if all("oracle_gold" in row for row in rows):
        picks.append(("bon_oracle_gold", "best-of-n gold (oracle's pick)", "gold", "oracle_gold"))
    return [Curve(name, label, "best_of_n", score, "best_of_n", kl,
                  np.array([row[key] - base[key] for row in rows], dtype=float))
            for name, label, score, key in picks]


def run_curves(path: Path) -> list[Curve]:
    """Gains over the first evaluation in a run's summary.json: ``{"evals": [{"env_steps",
    "proxy_reward", "gold", "kl"}, ...]}``, the first eval at env step 0."""
    summary_path = path / "summary.json" if path.is_dir() else path
    evals = json.loads(summary_path.read_text())["evals"]
    if not evals or evals[0]["env_steps"] != 0:
        first = evals[0]["env_steps"] if evals else "no evals"
        raise ValueError(f"{summary_path}: the first eval must be the starting policy at env_steps 0, got {first}")
    kl = np.array([e["kl"] for e in evals], dtype=float)
    return [Curve(name, label, "run", score, "rl", kl,
                  np.array([e[key] - evals[0][key] for e in evals], dtype=float))
            for name, label, score, key in (("rl_gold", "RL gold", "gold", "gold"),
                                            ("rl_proxy", "RL proxy", "proxy", "proxy_reward"))]


EVAL_KEYS = frozenset({"env_steps", "proxy_reward", "proxy_reward_with_penalty", "gold", "gold_sem", "kl", "response_length",
                       "eos_fraction"})
"""The keys every evaluation of a run has; the others are its world's own metrics (e.g. over_refusal)."""


def world_rates(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """A run's world metrics against KL (``name -> (kl, values)``), e.g. Dialogue's
    over-refusal: what the run did to the behaviours its world counts. Empty without any."""
    summary_path = path / "summary.json" if path.is_dir() else path
    evals = json.loads(summary_path.read_text())["evals"]
    names = [key for key in evals[0] if key not in EVAL_KEYS] if evals else []
    kl = np.array([e["kl"] for e in evals], dtype=float)
    return {name: (kl, np.array([math.nan if e.get(name) is None else e[name] for e in evals], dtype=float)) for name in names}


def fit_curve(curve: Curve, kl_tolerance: float) -> Fit:
    """Fit the curve's form; errors name the curve."""
    try:
        if curve.form == "best_of_n":
            return fit_best_of_n(curve.kl, curve.gain)
        return fit_rl(curve.kl, curve.gain, negative_tolerance=kl_tolerance)
    except ValueError as error:
        raise ValueError(f"{curve.label}: {error}") from error


def _finite_or_none(value: float | None) -> float | None:
    """JSON has no NaN or infinity: write them as null."""
    return value if value is not None and math.isfinite(value) else None


def curve_record(curve: Curve, fit: Fit) -> dict[str, Any]:
    """A curve's entry in overoptimization.json: its fit, peak and points."""
    d_peak = FORMS[curve.form][2](fit)
    d = np.sqrt(np.clip(curve.kl, 0.0, None))
    return {
        "label": curve.label, "source": curve.source, "score": curve.score, "form": curve.form,
        "alpha": fit.alpha, "beta": fit.beta, "r2": _finite_or_none(fit.r2), "points": fit.points,
        "d_peak": _finite_or_none(d_peak),
        "kl_peak": _finite_or_none(d_peak**2) if d_peak is not None else None,
        "kl": curve.kl.tolist(), "sqrt_kl": d.tolist(), "gain": curve.gain.tolist(),
    }


def _align_zeros(gold_ax: plt.Axes, proxy_ax: plt.Axes) -> None:
    """Put gain 0 at one height on both y axes, so that the two curves start together."""
    limits = [(min(lo, 0.0), max(hi, 0.0)) for lo, hi in (gold_ax.get_ylim(), proxy_ax.get_ylim())]
    below = max(-lo / (hi - lo) for lo, hi in limits)  # the largest share of an axis below 0
    if below >= 0.95:  # (nearly) all gains negative on one axis: aligning would squash the other
        return
    for ax, (lo, hi) in zip((gold_ax, proxy_ax), limits):
        ax.set_ylim(min(lo, -below * hi / (1 - below)), hi)


def plot(curves: list[Curve], fits: list[Fit], path: Path, rates: dict[str, tuple[np.ndarray, np.ndarray]] | None = None) -> None:
    """One panel per input: gain points against sqrt(KL) and the fitted curves; gold on the
    left axis, proxy on the right (their scales differ); and, for a run whose world counts
    behaviours (``rates``, `world_rates`), a last panel of those against sqrt(KL)."""
    sources = list(dict.fromkeys(curve.source for curve in curves))
    panels = len(sources) + bool(rates)
    fig, axes = plt.subplots(1, panels, figsize=(6.5 * panels, 4.5), squeeze=False)
    if rates:
        ax = axes[0][-1]
        for name, (kl, values) in rates.items():
            ax.plot(np.sqrt(np.clip(kl, 0.0, None)), values, "o-", markersize=3, label=name.replace("_", " "))
        ax.set_xlabel("sqrt(KL to the starting policy), sqrt(nats)")
        ax.set_ylabel("rate (valid evaluations)")
        ax.set_title("RL run: the world's own metrics", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    titles = {"best_of_n": "best-of-n", "run": "RL run"}
    for ax, source in zip(axes[0], sources):
        proxy_ax = ax.twinx()
        for index, (curve, fit) in enumerate((c, f) for c, f in zip(curves, fits) if c.source == source):
            target = ax if curve.score == "gold" else proxy_ax
            d = np.sqrt(np.clip(curve.kl, 0.0, None))
            grid = np.linspace(0.0, 1.15 * d.max(), 200)
            color = f"C{index}"
            target.plot(d, curve.gain, "o" if curve.score == "gold" else "s", color=color, label=curve.label)
            target.plot(grid, FORMS[curve.form][1](grid, fit), "-", color=color, alpha=0.7,
                        label=f"fit, R² = {fit.r2:.3f}")
            d_peak = FORMS[curve.form][2](fit)
            if curve.score == "gold" and d_peak is not None and d_peak <= grid[-1]:
                ax.axvline(d_peak, color=color, linestyle=":", label=f"peak, KL = {d_peak**2:.2f}")
        _align_zeros(ax, proxy_ax)
        ax.set_xlabel("sqrt(KL to the starting policy), sqrt(nats)")
        ax.set_ylabel("gold gain")
        proxy_ax.set_ylabel("proxy gain")
        ax.set_title(titles[source], fontsize=10)
        ax.grid(alpha=0.3)
        handles = [h for a in (ax, proxy_ax) for h in a.get_legend_handles_labels()[0]]
        ax.legend(handles, [h.get_label() for h in handles], fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def print_table(curves: list[Curve], fits: list[Fit]) -> None:
    """The fits as a Markdown table, then where each fitted gold curve peaks."""
    print("| curve | form | alpha | beta | R^2 | points |\n|---|---|---:|---:|---:|---:|")
    for curve, fit in zip(curves, fits):
        print(f"| {curve.label} | {FORMS[curve.form][0]} | {fit.alpha:+.4f} | {fit.beta:+.4f} | "
              f"{fit.r2:.4f} | {fit.points} |")
    for curve, fit in zip(curves, fits):
        if curve.score != "gold":
            continue
        d_peak = FORMS[curve.form][2](fit)
        if d_peak is None:
            print(f"{curve.label}: the fitted curve does not turn down (beta <= 0): no over-optimisation seen")
            continue
        beyond = " (beyond the measured KL: an extrapolation)" if d_peak**2 > curve.kl.max() else ""
        print(f"{curve.label}: fitted gold peaks at d = {d_peak:.3f}, KL = {d_peak**2:.3f} nats{beyond}")


def main(config: Config) -> dict[str, Any]:
    if config.best_of_n is None and config.run is None:
        raise ValueError("nothing to fit: give --best-of-n PATH (a best_of_n.json), --run PATH (a run folder), or both")
    curves = []
    if config.best_of_n is not None:
        curves += best_of_n_curves(Path(config.best_of_n))
    if config.run is not None:
        curves += run_curves(Path(config.run))
    fits = [fit_curve(curve, config.kl_tolerance) for curve in curves]
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {"config": vars(config), "curves": {c.name: curve_record(c, f) for c, f in zip(curves, fits)}}
    (out / "overoptimization.json").write_text(json.dumps(result, indent=2))
    rates = world_rates(Path(config.run)) if config.run is not None else {}
    if rates:
        result["world_rates"] = {name: {"kl": kl.tolist(), "values": [_finite_or_none(float(v)) for v in values]}
                                 for name, (kl, values) in rates.items()}
        (out / "overoptimization.json").write_text(json.dumps(result, indent=2))
    plot(curves, fits, out / "overoptimization.png", rates)
    print_table(curves, fits)
    print(f"wrote {out / 'overoptimization.json'} and {out / 'overoptimization.png'}")
    return result


if __name__ == "__main__":
    main(tyro.cli(Config))
