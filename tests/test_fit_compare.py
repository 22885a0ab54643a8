"""`fit --compare` / `--law a,b,c` ranks laws on one protocol; `--format table|markdown`."""

from __future__ import annotations

import math

import numpy as np
import orjson
import pytest

from rlscale.core.laws.render import grid
from tests.conftest import jsonl, run_inprocess


def _power_law_curves(seed=0, sd=0.004):
    """Curves that are exact per-group power laws with slopes unrelated to size: loglinear is
    the true law, the shared saturating k(N) is wrong for them."""
    rng = np.random.default_rng(seed)
    rows = []
    for n, k, e in ((1.5e9, 0.06, 1.2), (7e9, 0.01, 0.05), (32e9, 0.09, 1.4)):
        for s in range(1, 81):
            c = 1e17 * s
            rows.append({"run_id": str(n), "N": n, "step": s, "C": c,
                         "loss": 10 ** (e - k * math.log10(c)) * (1 + rng.normal(0, sd))})
    return rows


def test_compare_ranks_the_true_law_first_with_held_out_numbers():
    result = run_inprocess(["fit", "--law", "saturating,loglinear", "--fit-fraction", "0.4"],
                           input=jsonl(_power_law_curves()))
    assert result.exit_code == 0, result.stderr
    [out] = result.records
    assert out["protocol"] == "fit-fraction" and out["ranked_by"] == "heldout_rmse_mean"
    laws = [row["law"] for row in out["compare"]]
    assert laws == ["loglinear", "saturating"] and [r["rank"] for r in out["compare"]] == [1, 2]
    best = out["compare"][0]
    assert best["heldout_rmse_mean"] == pytest.approx(
        np.mean([c["rmse"] for c in best["heldout"].values()]), rel=1e-12)
    assert {"r2", "aic", "bic", "n_params", "warnings", "heldout_r2_worst"} <= set(best)
    assert out["compare"][1]["heldout_rmse_mean"] > 2 * best["heldout_rmse_mean"]
    assert "loglinear predicts the held-out points best" in result.stderr


def test_compare_uses_the_paper_protocol_when_none_is_given_and_refuses_fit_only_options(tmp_path):
    result = run_inprocess(["fit", "--compare", "--law", "saturating,loglinear"],
                           input=jsonl(_power_law_curves()))
    assert result.exit_code == 0, result.stderr
    assert "--fit-fraction 0.3" in result.stderr
    bad = run_inprocess(["fit", "--compare", "--save", str(tmp_path / "f.json")],
                        input=jsonl(_power_law_curves()))
    assert bad.exit_code == 2 and "does not go with" in bad.stderr
    bad = run_inprocess(["fit", "--law", "saturating,nope"], input=jsonl(_power_law_curves()))
    assert bad.exit_code == 2 and "--law 'nope'" in bad.stderr


def test_four_laws_on_the_732_base_points():
    result = run_inprocess(["fit", "--example", "paper-base", "--compare", "-q"])
    assert result.exit_code == 0, result.stderr
    [out] = result.records
    assert sorted(r["law"] for r in out["compare"]) == ["decomposition", "loglinear",
                                                         "saturating", "sigmoid"]
    # the first 30 % of the steps of each curve (105 x 5, 104 and 103 points) are fitted
    expected = sum(math.ceil(0.3 * n) for n in (105, 105, 105, 105, 105, 104, 103))
    assert [r["n_points"] for r in out["compare"]] == [expected] * 4


def test_grid_aligns_text_and_escapes_markdown():
    assert grid(["a", "bb"], [["x|y", 1.5]], "markdown") == ["| a | bb |", "|---|---|",
                                                             "| x\\|y | 1.5000 |"]
    assert grid(["a", "bb"], [["xyz", 2]], "table") == ["a    bb", "---  --", "xyz  2"]


def test_format_table_and_markdown_show_params_groups_metrics_warnings():
    records = jsonl(_power_law_curves())
    as_json = run_inprocess(["fit", "-q"], input=records).records[0]
    for fmt in ("table", "markdown"):
        result = run_inprocess(["fit", "--format", fmt, "-q"], input=records)
        assert result.exit_code == 0, result.stderr
        text = result.stdout
        assert f"{as_json['params']['K_max']:.4f}" in text
        for key, e in as_json["params"]["E"].items():
            assert key in text and f"{e:.4f}" in text
        assert f"{as_json['metrics']['r2']:.4f}" in text
        for w in as_json["warnings"]:
            assert w["message"] in text
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(text)
    assert "| parameter | value |" in run_inprocess(["fit", "--format", "markdown", "-q"],
                                                    input=records).stdout
    bad = run_inprocess(["fit", "--format", "html"], input=records)
    assert bad.exit_code == 2 and "--format" in bad.stderr


def test_compare_on_a_held_out_size_ranks_only_laws_that_can_predict_it():
    result = run_inprocess(["fit", "--example", "paper-base", "--law", "saturating,loglinear",
                            "--holdout-group", "72e9", "-q"])
    assert result.exit_code == 0, result.stderr
    [out] = result.records
    assert out["protocol"] == "holdout-group"
    first, second = out["compare"]
    assert (first["law"], first["rank"]) == ("saturating", 1)
    assert first["heldout_rmse_mean"] == first["heldout"]["72000000000"]["rmse"]
    assert (second["law"], second["rank"], second["heldout_rmse_mean"]) == ("loglinear", None, None)
    assert "cannot predict a new group" in second["heldout"]["72000000000"]["unavailable"]


def test_compare_lists_a_law_that_cannot_be_fitted_and_stops_on_usage_errors():
    records = jsonl(_power_law_curves())
    result = run_inprocess(["fit", "--law", "loglinear,tests.test_fit_checks:broken_law", "-q"],
                           input=records)
    assert result.exit_code == 0, result.stderr
    rows = result.records[0]["compare"]
    assert [r["law"] for r in rows] == ["loglinear", "broken"]
    assert rows[1]["rank"] is None and rows[1]["error"].startswith("cannot fit the 'broken' law")
    bad = run_inprocess(["fit", "--compare", "--holdout-group", "99e9"], input=records)
    assert bad.exit_code == 2 and "--holdout-group 99e9: no such group" in bad.stderr
