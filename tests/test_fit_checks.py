"""`rlscale fit` refuses or flags what the data cannot support: duplicated (run, step) records,
laws the data do not identify, mistyped filters, outputs into missing folders."""

from __future__ import annotations

import math

import pytest

from rlscale.core.laws.synthetic import paper_base_c_records
from tests.conftest import jsonl, run_inprocess


def _one_size(n=7e9, steps=30, run="a"):
    k = 0.1330 / (1 + 13.78e9 / n)
    return [{"run_id": run, "N": n, "step": s, "C": 1e18 * s, "loss": 10 ** (0.7 - k * math.log10(1e18 * s))}
            for s in range(1, steps + 1)]


def test_one_group_for_a_law_across_groups_warns_with_the_reason():
    result = run_inprocess(["fit"], input=jsonl(_one_size()))
    assert result.exit_code == 0, result.stderr
    [fit] = result.records
    codes = [w["code"] for w in fit["warnings"]]
    assert "not_identifiable" in codes
    message = next(w["message"] for w in fit["warnings"] if w["code"] == "not_identifiable")
    assert "K_max and N_0" in message and "1 group(s)" in message
    assert f"rlscale fit: warning: {message}" in result.stderr
    # the per-group slope law has no parameter across groups: nothing to warn about
    free = run_inprocess(["fit", "--law", "loglinear", "-q"], input=jsonl(_one_size()))
    assert not [w for w in free.records[0]["warnings"] if w["code"] == "not_identifiable"]


def test_strict_turns_it_into_exit_1_with_one_line():
    result = run_inprocess(["fit", "--strict"], input=jsonl(_one_size()))
    assert result.exit_code == 1 and result.stdout == ""
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("rlscale fit: --strict: K_max and N_0 describe how the curves change")


def test_fewer_points_than_parameters_is_flagged():
    records = [r for n in (1.5e9, 7e9) for r in _one_size(n, steps=2, run=str(n))]
    result = run_inprocess(["fit", "-q"], input=jsonl(records))
    assert result.exit_code == 0, result.stderr
    messages = [w["message"] for w in result.records[0]["warnings"]
                if w["code"] == "not_identifiable"]
    assert messages == ["4 point(s) for 4 parameter(s): the law passes through the data and R2 "
                        "means nothing; add points or fit a smaller law"]


def test_a_well_posed_fit_has_no_identifiability_warning():
    result = run_inprocess(["fit", "--strict", "-q"], input=jsonl(paper_base_c_records(0, steps=30)))
    assert result.exit_code == 0, result.stderr
    assert not [w for w in result.records[0]["warnings"]
                if w["code"] in ("not_identifiable", "flat_direction")]


def test_a_parameter_that_changes_nothing_has_no_curvature():
    import numpy as np

    from rlscale.core.laws.fit import FitOptions, arrays_from_points, fit_law
    from rlscale.core.laws.forms import Law, Param

    def predict(p, x, n):
        return p["a"] * np.power(x, -0.1) + 0.0 * p["unused"]

    law = Law("toy", "", "", (Param("a", 0.01, 10.0, grid=(1.0,)),
                              Param("unused", -1.0, 1.0, grid=(0.3,))), predict)
    x = np.arange(1.0, 20.0)
    arrays = arrays_from_points(x, 2.0 * x ** -0.1, np.zeros(len(x), dtype=int),
                                np.array([1.0]), FitOptions())
    result = fit_law(law, arrays)
    [flat] = [w for w in result.warnings if w.code == "flat_direction"]
    assert flat.param == "unused" and "no curvature" in flat.message


def test_duplicated_run_step_records_are_refused_then_averaged_on_request():
    records = _one_size(7e9) + _one_size(32e9, run="b")
    dup = dict(records[4], loss=records[4]["loss"] * 1.1)
    data = jsonl(records + [dup])
    result = run_inprocess(["fit"], input=data)
    assert result.exit_code == 1 and result.stdout == ""
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("rlscale fit: <stdin>:61: duplicate record: run 'a' already has step 5 "
                           "(at <stdin>:5)")
    assert "--replicates mean" in line
    mean = run_inprocess(["fit", "--replicates", "mean", "-q"], input=data)
    assert mean.exit_code == 0, mean.stderr
    [fit] = mean.records
    assert fit["data"]["duplicates_averaged"] == 1
    assert fit["metrics"]["n_points"] == 60
    # the averaged point is the mean of the two records: refit on that point directly agrees
    fixed = [dict(r) for r in records]
    fixed[4]["loss"] = (records[4]["loss"] + dup["loss"]) / 2
    same = run_inprocess(["fit", "-q"], input=jsonl(fixed))
    assert same.records[0]["params"]["K_max"] == pytest.approx(fit["params"]["K_max"], rel=1e-9)


def test_mistyped_where_operator_is_a_usage_error():
    result = run_inprocess(["fit", "--where", "N>>5"], input=jsonl(_one_size()))
    assert result.exit_code == 2
    assert result.stderr.strip() == ("rlscale fit: --where 'N>>5': cannot read the operator; "
                                     "expected one of = != < <= > >=")


def test_save_into_a_missing_folder_is_one_line_before_fitting(tmp_path):
    target = tmp_path / "nonexist" / "f.json"
    result = run_inprocess(["fit", "--save", str(target)], input=jsonl(_one_size()))
    assert result.exit_code == 1
    assert result.stderr.strip() == (f"rlscale fit: --save {target}: directory "
                                     f"{target.parent} does not exist")


def broken_law():
    """A user's law (--law module:function) whose prediction is undefined on the data."""
    import numpy as np

    from rlscale.core.laws.forms import Law, Param

    def predict(p, x, n):
        return np.sqrt(p["a"] - x)  # NaN for every x > a

    return Law("broken", "sqrt(a - x)", "test", (Param("a", -5.0, 0.0, grid=(-1.0,)),), predict,
               numeric_groups=False)


def test_a_law_that_cannot_be_fitted_is_one_line_exit_1():
    result = run_inprocess(["fit", "--law", "tests.test_fit_checks:broken_law"],
                           input=jsonl(_one_size()))
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.strip() == (
        "rlscale fit: cannot fit the 'broken' law to these points: at the best parameters found "
        "its prediction is not finite or not positive at 30 of 30 point(s) (check --x/--y and "
        "the law's domain)")


def test_fix_holds_a_global_parameter_and_refuses_unknown_or_per_group_ones():
    data = jsonl([r for n in (1.5e9, 7e9, 32e9) for r in _one_size(n, run=str(n))])
    held = run_inprocess(["fit", "--fix", "K_max=0.2", "-q"], input=data)
    assert held.exit_code == 0, held.stderr
    [fit] = held.records
    assert fit["params"]["K_max"] == pytest.approx(0.2, rel=1e-9)
    assert fit["fixed"] == {"K_max": 0.2}
    assert not [w for w in fit["warnings"] if w.get("param") == "K_max"]
    free = run_inprocess(["fit", "-q"], input=data).records[0]
    assert free["params"]["K_max"] == pytest.approx(0.1330, abs=1e-4)  # the generating value
    assert fit["metrics"]["objective"] > free["metrics"]["objective"]
    bad = run_inprocess(["fit", "--fix", "L_inf=0.1"], input=data)
    assert bad.exit_code == 2
    assert "--fix L_inf: not a global parameter of the 'saturating' law" in bad.stderr
    bad = run_inprocess(["fit", "--fix", "E=0.1"], input=data)
    assert bad.exit_code == 2 and "(it is per group)" in bad.stderr
    bad = run_inprocess(["fit", "--fix", "K_max=5"], input=data)
    assert bad.exit_code == 2 and "outside its bounds [0, 2]" in bad.stderr
