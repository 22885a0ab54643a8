"""Honest backtests: per-curve held-out error, noise floor, coverage, and the pooled-R2 warning."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rlscale.core.laws.validate import hidden_by_pooling, noise_floor
from tests.conftest import jsonl, run_inprocess


class _Pts:
    def __init__(self, y):
        self.y = np.asarray(y, float)
        self.align = np.arange(len(y), dtype=float)


def test_noise_floor_measures_white_noise_around_a_smooth_curve():
    rng = np.random.default_rng(3)
    steps = np.arange(1, 2001, dtype=float)
    trend = 0.9 * steps ** -0.05
    for sd in (0.002, 0.01, 0.03):
        assert noise_floor(_Pts(trend + rng.normal(0, sd, len(steps)))) == pytest.approx(sd, rel=0.06)
    assert noise_floor(_Pts(trend)) < 2e-4  # a smooth curve: only its early curvature
    assert noise_floor(_Pts([1.0, 2.0])) is None


def test_hidden_by_pooling_names_the_curves():
    curves = {"a": {"r2": -0.5}, "b": {"r2": 0.8}, "c": {"r2": -2.0}}
    message = hidden_by_pooling(0.99, curves)
    assert "held-out R2 is below 0 on 2 of 3 curves (a, c)" in message
    assert hidden_by_pooling(0.5, curves) is None
    assert hidden_by_pooling(0.99, {"a": {"r2": 0.2}}) is None


def _noisy_curves(sd=0.01, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for n, e in ((1.5e9, 0.21), (7e9, 0.70), (32e9, 1.54)):
        k = 0.133 / (1 + 13.78e9 / n)
        for s in range(1, 101):
            c = 1e17 * s * n / 1e9
            rows.append({"run_id": str(n), "N": n, "step": s, "C": c,
                         "loss": 10 ** (e - k * math.log10(c)) + rng.normal(0, sd)})
    return rows


def test_fit_fraction_reports_every_curve_against_independent_numbers():
    rows = _noisy_curves()
    result = run_inprocess(["fit", "--fit-fraction", "0.3", "--space", "linear", "-q"],
                           input=jsonl(rows))
    assert result.exit_code == 0, result.stderr
    [fit] = result.records
    curves = fit["validation"]["per_curve"]
    assert list(curves) == ["1500000000", "7000000000", "32000000000"]
    p = fit["params"]
    for key, entry in curves.items():
        n = float(key)
        test = [r for r in rows if r["N"] == n and r["step"] > 30]
        k = p["K_max"] / (1 + p["N_0"] / n)
        pred = np.array([10 ** (p["E"][key] - k * math.log10(r["C"])) for r in test])
        y = np.array([r["loss"] for r in test])
        assert entry["n_points"] == 70
        assert entry["rmse"] == pytest.approx(float(np.sqrt(np.mean((pred - y) ** 2))), rel=1e-9)
        assert entry["r2"] == pytest.approx(1 - np.sum((y - pred) ** 2) / np.sum((y - y.mean()) ** 2),
                                            rel=1e-9)
        assert entry["final_point"]["rel_error"] == pytest.approx(pred[-1] / y[-1] - 1, rel=1e-9)
        # the simulated noise is 0.01: the floor finds it, and a right law predicts near it
        assert entry["noise_floor"] == pytest.approx(0.01, rel=0.3)
        assert entry["rmse_over_noise"] == pytest.approx(entry["rmse"] / entry["noise_floor"])
        assert entry["rmse_over_noise"] < 2.0


def test_bootstrap_adds_interval_coverage_per_curve():
    result = run_inprocess(["fit", "--fit-fraction", "0.3", "--bootstrap", "20", "-q"],
                           input=jsonl(_noisy_curves()))
    assert result.exit_code == 0, result.stderr
    for entry in result.records[0]["validation"]["per_curve"].values():
        assert 0.0 <= entry["interval_coverage"] <= 1.0


def test_paper_base_pooled_r2_hides_negative_per_curve_r2():
    # fit the first 25 % of every Base curve: pooled held-out R2 0.992, the paper's "R2 > 0.99"
    result = run_inprocess(["fit", "--example", "paper-base", "--space", "linear",
                            "--fit-fraction", "0.25"])
    assert result.exit_code == 0, result.stderr
    [fit] = result.records
    assert round(fit["validation"]["test"]["r2"], 3) == 0.992
    negative = [k for k, e in fit["validation"]["per_curve"].items() if e["r2"] < 0]
    assert negative == ["500000000", "1500000000", "3000000000", "7000000000"]
    assert ("warning: the pooled held-out R2 0.992 hides poor per-curve prediction: the held-out "
            "R2 is below 0 on 4 of 7 curves") in result.stderr
    assert any(w["code"] == "pooled_hides_curves" for w in fit["warnings"])


def test_holdout_group_reports_noise_floor_and_final_point():
    result = run_inprocess(["fit", "--example", "paper-base", "--space", "linear",
                            "--holdout-group", "72e9", "-q"])
    entry = result.records[0]["validation"]["groups"]["72000000000"]
    assert entry["noise_floor"] > 0
    calibrated = entry["calibrated"]
    assert calibrated["rmse_over_noise"] == pytest.approx(calibrated["rmse"] / entry["noise_floor"])
    assert calibrated["final_point"]["y"] == pytest.approx(0.4359, abs=5e-5)


def test_stderr_summary_gives_per_curve_range_not_only_the_pooled_number():
    result = run_inprocess(["fit", "--example", "paper-base", "--space", "linear",
                            "--fit-fraction", "0.25"])
    [fit] = result.records
    r2 = [e["r2"] for e in fit["validation"]["per_curve"].values()]
    ratio = sorted(e["rmse_over_noise"] for e in fit["validation"]["per_curve"].values())
    assert (f"rlscale fit: held-out tails: R2 per curve {min(r2):.3g} to {max(r2):.3g}, "
            f"RMSE / noise floor median {ratio[3]:.2f}, pooled R2 "
            f"{fit['validation']['test']['r2']:.4f}") in result.stderr
