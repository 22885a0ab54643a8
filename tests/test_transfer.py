"""The transfer study: eval per benchmark and step, the slope/verdict per benchmark (checked
against an independent least-squares fit), fit --transfer end to end with the figure."""

from __future__ import annotations

import json

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from rlscale.core.laws.transfer import collect, slope_trend, transfer_report
from tests.conftest import jsonl, run_cli


def reference_slope(curves, level=0.95):
    """Dummy-variable OLS (one intercept per curve + log10 x), SE from (X'X)^-1."""
    x_all, y_all, columns = [], [], []
    for index, (xs, ys) in enumerate(curves.values()):
        for x, y in zip(xs, ys, strict=True):
            row = [0.0] * len(curves)
            row[index] = 1.0
            columns.append(row + [np.log10(x)])
            y_all.append(y)
            x_all.append(x)
    design, target = np.array(columns), np.array(y_all)
    beta, *_ = np.linalg.lstsq(design, target, rcond=None)
    dof = len(target) - design.shape[1]
    sigma2 = float(((target - design @ beta) ** 2).sum()) / dof
    se = np.sqrt(sigma2 * np.linalg.inv(design.T @ design)[-1, -1])
    half = stats.t.ppf(0.5 + level / 2, dof) * se
    return beta[-1], beta[-1] - half, beta[-1] + half


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 3), st.integers(3, 8), st.floats(-0.2, 0.2), st.integers(0, 10_000))
def test_slope_matches_dummy_variable_least_squares(n_sizes, n_steps, slope, seed):
    rng = np.random.default_rng(seed)
    curves = {}
    for size in range(n_sizes):
        x = np.logspace(18, 18 + rng.uniform(0.5, 2), n_steps)
        y = 0.3 * size + 0.5 + slope * np.log10(x) + rng.normal(0, 0.01, n_steps)
        curves[10.0 ** (8 + size)] = (list(x), list(y))
    trend = slope_trend(curves)
    expected = reference_slope(curves)
    assert trend.slope == pytest.approx(expected[0], abs=1e-9)
    assert (trend.lo, trend.hi) == pytest.approx(expected[1:], abs=1e-9)


def test_verdicts_follow_the_interval():
    x = list(np.logspace(19, 21, 9))
    noise = np.random.default_rng(0).normal(0, 0.002, 9)
    falling = {1e9: (x, list(0.8 - 0.05 * np.log10(x) + 1.0 + noise))}
    rising = {1e9: (x, list(0.2 + 0.03 * np.log10(x) - 0.5 + noise))}
    flat = {1e9: (x, list(0.4 + noise))}
    assert slope_trend(falling).verdict == "improves"
    assert slope_trend(rising).verdict == "degrades"
    assert slope_trend(flat).verdict == "flat"
    # a single point per size has no slope; one curve of two points has no interval
    assert slope_trend({1: ([1e20], [0.5])}).verdict == "insufficient"
    two = slope_trend({1: ([1e20, 1e21], [0.5, 0.4])})
    assert (two.slope, two.lo, two.verdict) == (pytest.approx(-0.1), None, "insufficient")


def test_bad_points_are_refused():
    from rlscale.core.laws.transfer import TransferError

    for record, message in [({"C": 1e20, "loss": 0.5}, "no 'data_source'"),
                            ({"data_source": "a", "C": "x", "loss": 0.5}, "'C' must be"),
                            ({"data_source": "a", "C": -1.0, "loss": 0.5}, "must be > 0")]:
        with pytest.raises(TransferError, match=message):
            collect([record], "data_source", "C", "loss", "N")


def scored_records():
    """Graded samples of three benchmarks over steps: code flat, logic degrades, math improves."""
    records = []
    rates = {"codegen__humaneval": lambda step: 0.5,
             "logic__zebra_puzzle_dataset": lambda step: 0.6 - 0.1 * step,
             "math__math_500": lambda step: 0.2 + 0.15 * step}
    for name, rate in rates.items():
        for step in range(4):
            n_correct = round(rate(step) * 20)
            for prompt in range(20):
                records.append({"data_source": name, "step": step, "prompt_id": prompt,
                                "reward": 1.0 if prompt < n_correct else 0.0})
    return records


def test_eval_by_benchmark_and_step_then_fit_transfer(tmp_path):
    result = run_cli(["eval", "--by", "data_source,step", "--set", "N=5e8"],
                     input=jsonl(scored_records()))
    assert result.exit_code == 0, result.stderr
    points = [orjson.loads(line) for line in result.stdout.split("\n")
              if line and "rlscale_end" not in line]
    assert len(points) == 12  # one per benchmark and step
    by_key = {(p["data_source"], p["step"]): p for p in points}
    assert by_key[("logic__zebra_puzzle_dataset", 3)]["loss"] == pytest.approx(0.7)
    assert by_key[("math__math_500", 0)]["loss"] == pytest.approx(0.8)
    for p in points:  # compute: 10^(20 + step/2)
        p["C"] = 10 ** (20 + p["step"] / 2)
    figure = tmp_path / "transfer.png"
    result = run_cli(["fit", "--transfer", "data_source", "--plot", str(figure)],
                     input=jsonl(points))
    assert result.exit_code == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.split("\n")
            if line and "rlscale_end" not in line]
    pooled = {row["benchmark"]: row for row in rows if row["N"] is None}
    assert {name: row["verdict"] for name, row in pooled.items()} == {
        "codegen__humaneval": "flat", "logic__zebra_puzzle_dataset": "degrades",
        "math__math_500": "improves"}
    # logic loss rises 0.1 per step = 0.2 per decade of C (half a decade per step)
    assert pooled["logic__zebra_puzzle_dataset"]["slope_per_decade"] == pytest.approx(0.2)
    assert figure.stat().st_size > 1000
    lines = result.stderr.strip().splitlines()
    assert any(line.startswith("rlscale fit: logic__zebra_puzzle_dataset: degrades (slope "
                               "0.2000 loss per 10x compute") for line in lines), lines


def test_report_has_one_row_per_benchmark_and_size():
    data = {"b": {5e8: ([1e20, 1e21, 1e22], [0.5, 0.4, 0.3]),
                  7e9: ([1e20, 1e21, 1e22], [0.4, 0.4, 0.4])}}
    rows = transfer_report(data)
    assert [(row["benchmark"], row["N"]) for row in rows] == [("b", None), ("b", 5e8),
                                                              ("b", 7e9)]
    assert rows[1]["slope_per_decade"] == pytest.approx(-0.1)
    assert rows[2]["slope_per_decade"] == pytest.approx(0.0, abs=1e-12)
    assert rows[0]["slope_per_decade"] == pytest.approx(-0.05)


def test_transfer_usage_errors():
    result = run_cli(["fit", "--transfer", "data_source", "--compare"], input="")
    assert result.exit_code == 2
    assert result.stderr.strip().startswith("rlscale fit: --transfer does not go with")
    result = run_cli(["fit", "--transfer", "data_source"],
                     input=jsonl([{"data_source": "a", "C": "big", "loss": 0.5}]))
    assert result.exit_code == 1
    assert result.stderr.strip() == "rlscale fit: record 1: 'C' must be a finite number, got 'big'"


def test_transfer_plot_is_written_atomically(tmp_path, monkeypatch):
    import os
    from io import BytesIO

    import matplotlib.image
    from matplotlib.figure import Figure

    from rlscale.api.fit import transfer as run_transfer
    from rlscale.core.laws.transfer import TransferError

    records = [{"data_source": name, "N": n, "C": 10.0 ** (20 + step), "loss": 0.5 + 0.01 * step}
               for name in ("a", "b") for n in (5e8, 7e9) for step in range(4)]
    png = tmp_path / "transfer.png"
    run_transfer(records, "data_source", plot=str(png))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert matplotlib.image.imread(str(png)).ndim == 3  # a whole, decodable image
    pdf = tmp_path / "transfer.pdf"
    run_transfer(records, "data_source", plot=str(pdf))
    assert pdf.read_bytes()[:5] == b"%PDF-"  # the format the suffix names
    before = png.read_bytes()
    real = Figure.savefig

    def savefig(self, target, **kwargs):  # half an image to the target, then a full disk
        image = BytesIO()
        real(self, image, **kwargs)
        if isinstance(target, str | os.PathLike):
            with open(target, "wb") as handle:
                handle.write(image.getvalue()[:64])
        else:
            target.write(image.getvalue()[:64])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Figure, "savefig", savefig)
    with pytest.raises(TransferError, match=r"^--plot .*transfer\.png: \[Errno 28\] No space"):
        run_transfer(records, "data_source", plot=str(png))
    assert png.read_bytes() == before  # the old figure is intact
    assert sorted(os.listdir(tmp_path)) == ["transfer.pdf", "transfer.png"]  # no partial file
