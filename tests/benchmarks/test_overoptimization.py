"""benchmarks/overoptimization.py: the Gao et al. (2023) fits, their peaks, bad input, and the CLI."""

from __future__ import annotations

import doctest
import json
import math

import numpy as np
import pytest


@pytest.fixture(scope="module")
def oo(load_script):
    return load_script("overoptimization")


def _bon_gain(d, alpha, beta):
    return d * (alpha - beta * d)


def _rl_gain(d, alpha, beta):
    return d * (alpha - beta * np.log(np.where(d > 0, d, 1.0)))


def test_doctests_pass(oo):
    failures, tried = doctest.testmod(oo)
    assert tried >= 5 and failures == 0


@pytest.mark.parametrize("alpha, beta", [(1.0, 0.5), (0.3, 0.08), (-0.2, 0.1), (0.5, -0.05)])
def test_best_of_n_recovers_known_coefficients(oo, alpha, beta):
    kl = np.array([oo.kl_bound(2**k) for k in range(8)])  # n = 1 ... 128; n = 1 is KL 0
    fit = oo.fit_best_of_n(kl, _bon_gain(np.sqrt(kl), alpha, beta))
    assert fit.alpha == pytest.approx(alpha, abs=1e-10)
    assert fit.beta == pytest.approx(beta, abs=1e-10)
    assert fit.r2 == pytest.approx(1.0, abs=1e-12)
    assert fit.points == 8


@pytest.mark.parametrize("alpha, beta", [(1.0, 0.5), (0.2, 0.03), (0.4, -0.1)])
def test_rl_recovers_known_coefficients(oo, alpha, beta):
    kl = np.array([0.0, 0.05, 0.3, 1.0, 2.5, 5.0, 9.0, 16.0])
    fit = oo.fit_rl(kl, _rl_gain(np.sqrt(kl), alpha, beta))
    assert fit.alpha == pytest.approx(alpha, abs=1e-10)
    assert fit.beta == pytest.approx(beta, abs=1e-10)
    assert fit.r2 == pytest.approx(1.0, abs=1e-12)
    assert fit.points == 8


def test_r2_is_lower_for_the_other_form_and_for_noise(oo):
    d = np.linspace(0.0, 6.0, 21)
    kl = d**2
    rl, bon = _rl_gain(d, 1.0, 0.5), _bon_gain(d, 1.0, 0.2)
    assert oo.fit_rl(kl, rl).r2 > 1 - 1e-12 and oo.fit_best_of_n(kl, bon).r2 > 1 - 1e-12
    assert oo.fit_best_of_n(kl, rl).r2 < 0.9
    assert oo.fit_rl(kl, bon).r2 < 0.95
    noise = np.random.default_rng(0).normal(size=(5, len(d)))
    for fit in (oo.fit_rl, oo.fit_best_of_n):
        r2 = [fit(kl, row).r2 for row in noise]
        assert max(r2) < 0.5 and np.mean(r2) < 0.25


def test_r2_uses_the_mean_gain_as_baseline(oo):
    """R^2 = 1 - SS_res / SS_tot with SS_tot about the mean, computed by hand on a non-exact fit."""
    kl = np.array([0.0, 1.0, 4.0, 9.0])
    gain = np.array([0.0, 0.8, 0.9, 0.5])
    fit = oo.fit_best_of_n(kl, gain)
    d = np.sqrt(kl)
    columns = np.stack([d, -d**2], axis=1)
    coefficients, *_ = np.linalg.lstsq(columns, gain, rcond=None)
    residual = gain - columns @ coefficients
    assert (fit.alpha, fit.beta) == pytest.approx(tuple(coefficients))
    assert fit.r2 == pytest.approx(1 - np.sum(residual**2) / np.sum((gain - gain.mean()) ** 2))
    assert 0 < fit.r2 < 1


def test_peaks_are_the_maxima_of_the_fitted_curves(oo):
    grid = np.linspace(1e-4, 20.0, 200_001)
    rl = oo.Fit(alpha=1.0, beta=0.4, r2=1.0, points=5)
    assert oo.rl_peak(rl) == pytest.approx(math.exp(1.0 / 0.4 - 1.0))
    assert grid[np.argmax(oo.rl_curve(grid, rl))] == pytest.approx(oo.rl_peak(rl), abs=1e-3)
    bon = oo.Fit(alpha=0.6, beta=0.2, r2=1.0, points=5)
    assert oo.best_of_n_peak(bon) == pytest.approx(1.5)
    assert grid[np.argmax(oo.best_of_n_curve(grid, bon))] == pytest.approx(1.5, abs=1e-3)


def test_curves_that_never_turn_down_have_no_peak(oo):
    assert oo.rl_peak(oo.Fit(alpha=1.0, beta=-0.1, r2=1.0, points=5)) is None
    assert oo.rl_peak(oo.Fit(alpha=1.0, beta=0.0, r2=1.0, points=5)) is None
    assert oo.rl_peak(oo.Fit(alpha=1e3, beta=1e-3, r2=1.0, points=5)) is None  # exp overflows
    assert oo.best_of_n_peak(oo.Fit(alpha=1.0, beta=0.0, r2=1.0, points=5)) is None
    assert oo.best_of_n_peak(oo.Fit(alpha=-1.0, beta=0.5, r2=1.0, points=5)) == 0.0  # only falls


@pytest.mark.parametrize("fit_name", ["fit_best_of_n", "fit_rl"])
def test_bad_input_is_rejected(oo, fit_name):
    fit = getattr(oo, fit_name)
    with pytest.raises(ValueError, match=r"kl\[2\] is nan; expected a finite number"):
        fit([0.0, 1.0, math.nan, 2.0], [0.0, 0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match=r"gain\[1\] is nan"):
        fit([0.0, 1.0, 2.0], [0.0, math.nan, 0.3])
    with pytest.raises(ValueError, match=r"gain\[0\] is inf"):
        fit([0.0, 1.0, 2.0], [math.inf, 0.1, 0.3])
    with pytest.raises(ValueError, match="at least 2 distinct points with KL > 0.*got 1"):
        fit([0.0, 0.0, 1.0], [0.0, 0.0, 0.3])
    with pytest.raises(ValueError, match="got 1"):
        fit([0.0, 1.0, 1.0], [0.0, 0.3, 0.2])  # one distance twice cannot give two coefficients
    with pytest.raises(ValueError, match="one length"):
        fit([0.0, 1.0, 2.0], [0.0, 0.3])


def test_best_of_n_rejects_negative_kl(oo):
    with pytest.raises(ValueError, match=r"kl\[1\] = -0.01 is negative.*>= 0"):
        oo.fit_best_of_n([0.0, -0.01, 1.0, 2.0], [0.0, 0.1, 0.2, 0.3])


def test_rl_clips_slightly_negative_kl_and_rejects_large(oo):
    gain = [0.0, 0.01, 0.3, 0.35, 0.2]
    clipped = oo.fit_rl([-0.02, 0.0, 1.0, 3.0, 9.0], gain)
    assert clipped == oo.fit_rl([0.0, 0.0, 1.0, 3.0, 9.0], gain)
    with pytest.raises(ValueError, match=r"kl\[1\] = -0.5 nats is below -0.1"):
        oo.fit_rl([0.0, -0.5, 1.0, 3.0, 9.0], gain)
    assert oo.fit_rl([0.0, -0.5, 1.0, 3.0, 9.0], gain, negative_tolerance=1.0).points == 5


def _write_best_of_n(path, gold=(0.3, 0.2), proxy=(1.2, 0.05), oracle=(0.5, 0.04)):
    """A best_of_n.json as benchmarks/best_of_n.py writes it, with noiseless gains."""
    rows = []
    for k in range(6):
        n = 2**k
        kl = math.log(n) - (n - 1) / n
        d = math.sqrt(kl)
        rows.append({"n": n, "kl_bound": kl, "gold": 0.45 + _bon_gain(d, *gold),
                     "proxy": -0.2 + _bon_gain(d, *proxy), "oracle_gold": 0.45 + _bon_gain(d, *oracle)})
    path.write_text(json.dumps({"config": {"env": "RLHF-Summarize-v0", "n_max": 32},
                                "within_prompt_correlation": 0.2, "rows": rows}, indent=2))


def _write_run(run_dir, gold=(0.2, 0.15), proxy=(0.8, -0.1), first_kl=-0.003):
    """A run folder whose summary.json has evals as agents/common.py finish_run writes them."""
    run_dir.mkdir()
    evals = []
    for step, kl in enumerate([first_kl, 0.2, 0.6, 1.5, 3.0, 5.0, 8.0, 12.0]):
        d = math.sqrt(max(kl, 0.0))
        evals.append({"env_steps": step * 4096, "proxy_reward": 0.1 + float(_rl_gain(np.array(d), *proxy)),
                      "gold": 0.5 + float(_rl_gain(np.array(d), *gold)), "gold_sem": 0.01, "kl": kl,
                      "response_length": 40.0, "eos_fraction": 0.9})
    summary = {"agent": "ppo", "env": "RLHF-Summarize-v0", "seed": 0, "env_steps": evals[-1]["env_steps"],
               "iterations": 7, "wall_time_seconds": 12.0, "initial": evals[0], "final": evals[-1],
               "gold_improvement": evals[-1]["gold"] - evals[0]["gold"], "gold_improvement_sem": 0.014,
               "evals": evals, "config": {"env": "RLHF-Summarize-v0"}}
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))


def test_main_fits_both_inputs_and_writes_json_and_png(oo, tmp_path, capsys):
    _write_best_of_n(tmp_path / "best_of_n.json")
    _write_run(tmp_path / "run")
    out = tmp_path / "out"
    result = oo.main(oo.Config(best_of_n=str(tmp_path / "best_of_n.json"), run=str(tmp_path / "run"), out=str(out)))

    written = json.loads((out / "overoptimization.json").read_text())
    assert written == json.loads(json.dumps(result))
    assert (out / "overoptimization.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    curves = written["curves"]
    assert set(curves) == {"bon_gold", "bon_proxy", "bon_oracle_gold", "rl_gold", "rl_proxy"}
    expected = {"bon_gold": (0.3, 0.2), "bon_proxy": (1.2, 0.05), "bon_oracle_gold": (0.5, 0.04),
                "rl_gold": (0.2, 0.15), "rl_proxy": (0.8, -0.1)}
    for name, (alpha, beta) in expected.items():
        assert (curves[name]["alpha"], curves[name]["beta"]) == pytest.approx((alpha, beta), abs=1e-9), name
        assert curves[name]["r2"] == pytest.approx(1.0, abs=1e-9)
    assert curves["bon_gold"]["points"] == 6 and curves["rl_gold"]["points"] == 8
    assert curves["bon_gold"]["gain"][0] == 0.0 and curves["rl_gold"]["gain"][0] == 0.0
    assert curves["rl_gold"]["sqrt_kl"][0] == 0.0  # the first eval's -0.003 nats, clipped
    assert curves["rl_gold"]["d_peak"] == pytest.approx(math.exp(0.2 / 0.15 - 1))
    assert curves["rl_gold"]["kl_peak"] == pytest.approx(math.exp(0.2 / 0.15 - 1) ** 2)
    assert curves["bon_gold"]["d_peak"] == pytest.approx(0.3 / 0.4)
    assert curves["rl_proxy"]["d_peak"] is None  # beta < 0: the proxy keeps rising

    printed = capsys.readouterr().out
    assert "| curve | form | alpha | beta | R^2 | points |" in printed
    assert "| RL gold | d (alpha - beta log d) | +0.2000 | +0.1500 | 1.0000 | 8 |" in printed
    assert f"RL gold: fitted gold peaks at d = {math.exp(0.2 / 0.15 - 1):.3f}" in printed


def test_main_takes_one_input_and_the_summary_path(oo, tmp_path):
    _write_run(tmp_path / "run", first_kl=0.0)
    result = oo.main(oo.Config(run=str(tmp_path / "run" / "summary.json"), out=str(tmp_path / "out")))
    assert set(result["curves"]) == {"rl_gold", "rl_proxy"}
    assert (tmp_path / "out" / "overoptimization.png").exists()

    rows = [{"n": 1, "kl_bound": 0.0, "gold": 0.4, "proxy": 0.0},  # no oracle_gold: no oracle curve
            {"n": 4, "kl_bound": 0.636, "gold": 0.5, "proxy": 0.7},
            {"n": 16, "kl_bound": 1.835, "gold": 0.55, "proxy": 1.1}]
    (tmp_path / "bon.json").write_text(json.dumps({"rows": rows}))
    result = oo.main(oo.Config(best_of_n=str(tmp_path / "bon.json"), out=str(tmp_path / "out2")))
    assert set(result["curves"]) == {"bon_gold", "bon_proxy"}
    assert result["curves"]["bon_gold"]["kl"][1] == pytest.approx(math.log(4) - 0.75)


def test_main_rejects_missing_or_unusable_input(oo, tmp_path):
    with pytest.raises(ValueError, match="nothing to fit"):
        oo.main(oo.Config(out=str(tmp_path / "out")))
    (tmp_path / "bon.json").write_text(json.dumps({"rows": [{"n": 2, "gold": 0.5, "proxy": 0.1}]}))
    with pytest.raises(ValueError, match="no row for n = 1"):
        oo.main(oo.Config(best_of_n=str(tmp_path / "bon.json"), out=str(tmp_path / "out")))
    _write_run(tmp_path / "run")
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    summary["evals"] = summary["evals"][1:]  # a resumed run: no eval of the starting policy
    (tmp_path / "run" / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(ValueError, match="first eval must be the starting policy at env_steps 0, got 4096"):
        oo.main(oo.Config(run=str(tmp_path / "run"), out=str(tmp_path / "out")))
    summary["evals"] = [{"env_steps": 0, "kl": 0.0, "gold": math.nan, "proxy_reward": 0.0}] * 3
    (tmp_path / "run" / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(ValueError, match=r"RL gold: gain\[0\] is nan; expected a finite number"):
        oo.main(oo.Config(run=str(tmp_path / "run"), out=str(tmp_path / "out")))
    assert not (tmp_path / "out").exists()  # nothing is written before every curve is fitted


def test_a_runs_world_metrics_are_kept_and_plotted_against_kl(oo, tmp_path):
    """Evaluations with a world's own metrics (Dialogue's over-refusal): written beside the fits, nulls kept."""
    _write_run(tmp_path / "run")
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    for i, e in enumerate(summary["evals"]):
        e["over_refusal"] = 0.1 * i
        e["clarification_precision"] = None if i == 0 else 0.5
    (tmp_path / "run" / "summary.json").write_text(json.dumps(summary))
    result = oo.main(oo.Config(run=str(tmp_path / "run"), out=str(tmp_path / "out")))
    rates = result["world_rates"]
    assert set(rates) == {"over_refusal", "clarification_precision"}
    assert rates["over_refusal"]["values"] == pytest.approx([0.1 * i for i in range(8)])
    assert rates["clarification_precision"]["values"][0] is None and rates["over_refusal"]["kl"][3] == 1.5
    assert json.loads((tmp_path / "out" / "overoptimization.json").read_text())["world_rates"] == json.loads(json.dumps(rates))
    _write_run(tmp_path / "plain")
    assert "world_rates" not in oo.main(oo.Config(run=str(tmp_path / "plain"), out=str(tmp_path / "out2")))
