"""`rlscale fit` end to end: output object, options, predict/load/budget/plot, error paths."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import orjson
import pytest

from rlscale.core.laws.synthetic import paper_base_c_records
from tests.conftest import CliResult, jsonl
from tests.conftest import run_cli as run_subprocess


def run_cli(args: list[str], input: str | None = None) -> CliResult:
    """Run the command in-process (fast); a few tests below use the real subprocess."""
    from typer.testing import CliRunner

    from rlscale.cli.app import app

    result = CliRunner().invoke(app, args, input=input)
    return CliResult(result.exit_code, result.stdout, result.stderr)


@pytest.fixture(scope="module")
def runs_file(tmp_path_factory):
    """Three runs per size simulated from the paper's base-C fit, plus the step-0 records."""
    records = paper_base_c_records(0, runs=3, steps=40)
    for run in range(3):
        for n in (0.5e9, 1.5e9, 3e9, 7e9, 14e9, 32e9, 72e9):
            records.append({"run_id": f"run{run}", "N": n, "step": 0, "C": 0.0, "D": 0,
                            "loss": 0.97})
    path = tmp_path_factory.mktemp("fit") / "runs.jsonl"
    path.write_text(jsonl(records))
    return str(path)


@pytest.fixture(scope="module")
def saved_fit(runs_file, tmp_path_factory):
    path = str(tmp_path_factory.mktemp("saved") / "fit.json")
    result = run_cli(["fit", runs_file, "--bootstrap", "30", "--save", path, "-q"])
    assert result.exit_code == 0, result.stderr
    return path, result.records[0]


def test_fit_writes_one_object_with_params_metrics_and_provenance(runs_file):
    result = run_cli(["fit", runs_file, "--x", "C", "--y", "loss", "--group", "N"])
    assert result.exit_code == 0, result.stderr
    [fit] = result.records
    assert (fit["law"], fit["x"], fit["y"], fit["group"], fit["log_base"]) == (
        "saturating", "C", "loss", "N", "10")
    assert set(fit["params"]) == {"K_max", "N_0", "E"}
    assert list(fit["params"]["E"]) == ["500000000", "1500000000", "3000000000", "7000000000",
                                        "14000000000", "32000000000", "72000000000"]
    assert fit["params"]["K_max"] == pytest.approx(0.133, abs=0.015)
    metrics = fit["metrics"]
    assert metrics["n_points"] == 7 * 40  # 3 runs averaged per step, step 0 dropped
    assert metrics["r2"] > 0.99 and set(metrics["r2_group"]) == set(fit["params"]["E"])
    assert metrics["rmse_log"] > 0
    assert fit["data"]["runs"]["7000000000"] == 3 and fit["data"]["step0_dropped"] == 21
    assert fit["seed"] == 0 and fit["rlscale_version"]
    assert "dropped 21 record(s) at step 0 with C = 0" in result.stderr
    assert "rlscale fit: saturating on 280 points, 7 group(s): K_max=" in result.stderr


def test_fit_is_reproducible_for_a_seed(runs_file):
    args = ["fit", runs_file, "--bootstrap", "10", "--seed", "3", "-q"]
    assert run_cli(args).stdout == run_cli(args).stdout


def test_log_base_e_scales_intercepts_by_ln10_and_keeps_k_and_predictions(runs_file, tmp_path):
    queries = tmp_path / "q.jsonl"
    queries.write_text(jsonl([{"N": 7e9, "C": 1e19}, {"N": "72B", "C": 3e20}]))
    ten = run_cli(["fit", runs_file, "-q", "--save", str(tmp_path / "ten.json"),
                   "--predict", str(queries)])
    e = run_cli(["fit", runs_file, "-q", "--log-base", "e", "--save", str(tmp_path / "e.json"),
                 "--predict", str(queries)])
    assert ten.exit_code == e.exit_code == 0, (ten.stderr, e.stderr)
    fit10 = orjson.loads((tmp_path / "ten.json").read_bytes())
    fit_e = orjson.loads((tmp_path / "e.json").read_bytes())
    assert fit_e["log_base"] == "e"
    assert fit_e["params"]["K_max"] == pytest.approx(fit10["params"]["K_max"], rel=1e-9)
    assert fit_e["params"]["N_0"] == pytest.approx(fit10["params"]["N_0"], rel=1e-9)
    for key, value in fit10["params"]["E"].items():
        assert fit_e["params"]["E"][key] == pytest.approx(value * math.log(10), rel=1e-9)
    assert fit_e["metrics"]["rmse_log"] == pytest.approx(
        fit10["metrics"]["rmse_log"] * math.log(10), rel=1e-6)
    for a, b in zip(ten.records, e.records, strict=True):
        assert a["loss_pred"] == pytest.approx(b["loss_pred"], rel=1e-9)


def test_saved_fit_reloads_and_predicts_identically(saved_fit, runs_file, tmp_path):
    path, fit = saved_fit
    assert fit["bootstrap"]["mode"] == "runs" and fit["bootstrap"]["n"] == 30
    lo, hi = fit["ci"]["K_max"]
    assert lo <= fit["params"]["K_max"] <= hi
    queries = jsonl([{"N": 7e9, "C": 1e19, "tag": "a"}, {"N": 1e11, "C": 1e21, "tag": "b"}])
    (tmp_path / "q.jsonl").write_text(queries)
    direct = run_cli(["fit", runs_file, "--bootstrap", "30", "-q", "--predict",
                      str(tmp_path / "q.jsonl")])
    loaded = run_cli(["fit", "--load", path, "--predict", "-"], input=queries)
    assert loaded.exit_code == 0, loaded.stderr
    assert direct.stdout == loaded.stdout
    first, second = loaded.records
    assert first["tag"] == "a" and first["N"] == 7e9  # records pass through
    assert first["loss_pred_lo"] <= first["loss_pred"] <= first["loss_pred_hi"]
    assert "N=100000000000 is not a fitted group; its E is interpolated in log N" in loaded.stderr
    # the prediction is the law itself: 10^(E - k(N) log10 C)
    k = fit["derived"]["k"]["7000000000"]
    assert first["loss_pred"] == pytest.approx(
        10 ** (fit["params"]["E"]["7000000000"] - k * 19), rel=1e-12)


def test_load_in_another_base_re_expresses_the_intercepts(saved_fit):
    path, fit = saved_fit
    result = run_cli(["fit", "--load", path, "--log-base", "e"])
    [again] = result.records
    assert again["log_base"] == "e"
    assert again["params"]["E"]["7000000000"] == pytest.approx(
        fit["params"]["E"]["7000000000"] * math.log(10), rel=1e-12)


def test_budget_planner_records(saved_fit):
    path, _ = saved_fit
    result = run_cli(["fit", "--load", path, "--budget", "1e18,1e21", "--sizes", "7B,14B,72B"])
    assert result.exit_code == 0, result.stderr
    low, high = result.records
    assert low["budget"] == 1e18 and high["budget"] == 1e21
    for plan in (low, high):
        best = min(plan["candidates"], key=lambda c: c["loss_pred"])
        assert plan["N_opt"] == best["N"] and plan["loss_pred"] == best["loss_pred"]
        assert sum(plan["N_opt_share"].values()) == pytest.approx(1.0)
    assert low["N_opt"] <= high["N_opt"]  # larger budgets favour larger models
    ranged = run_cli(["fit", "--load", path, "--budget", "1e21", "--size-range", "1e9:2e11"])
    [plan] = ranged.records
    assert 1e9 <= plan["N_opt"] <= 2e11 and plan["N_opt_ci"][0] <= plan["N_opt_ci"][1]


def test_holdout_group_and_plot(runs_file, tmp_path):
    png = tmp_path / "fit.png"
    result = run_cli(["fit", runs_file, "--holdout-group", "72e9", "--plot", str(png), "-q"])
    assert result.exit_code == 0, result.stderr
    [fit] = result.records
    entry = fit["validation"]["groups"]["72000000000"]
    assert set(entry) == {"n_points", "noise_floor", "pure", "calibrated"}
    assert {"r2", "rmse", "r2_log", "rmse_log", "params"} <= set(entry["calibrated"])
    assert "72000000000" not in fit["params"]["E"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_filters_and_clips_select_points(runs_file):
    result = run_cli(["fit", runs_file, "-q", "--where", "N>=3e9", "--where", "run_id!=run2",
                      "--warmup-clip", "2", "--ending-clip", "3", "--replicates", "keep"])
    assert result.exit_code == 0, result.stderr
    [fit] = result.records
    assert list(fit["params"]["E"]) == ["3000000000", "7000000000", "14000000000",
                                        "32000000000", "72000000000"]
    assert fit["metrics"]["n_points"] == 5 * 2 * (40 - 2 - 3)
    assert fit["data"]["filtered_out"] == 3 * 7 * 41 - 5 * 2 * 41


def test_other_laws_run_from_the_command_line(tmp_path):
    reuse = [{"tau": tau, "step": s, "loss": 0.8 * s ** -k}
             for tau, k in ((1, 0.05), (25, 0.047), (100, 0.02)) for s in range(1, 101)]
    result = run_cli(["fit", "--law", "reuse"], input=jsonl(reuse))
    assert result.exit_code == 0, result.stderr
    [fit] = result.records
    assert "fitting steps 10-100 like the paper" in result.stderr
    assert fit["metrics"]["n_points"] == 3 * 91
    assert fit["reuse"]["reference"] == "1"
    assert fit["reuse"]["groups"]["100"]["delta_pred"] == pytest.approx(
        0.8 * 100 ** -0.02 - 0.8 * 100 ** -0.05, rel=1e-6)
    lookups = [{"N": n, "k": k} for n, k in zip((0.5e9, 1.5e9, 3e9, 7e9, 14e9, 32e9, 72e9),
                                               (0.0065, 0.0247, 0.0182, 0.0450, 0.0745, 0.1072,
                                                0.1126), strict=True)]
    result = run_cli(["fit", "--law", "efficiency", "--weights", "point", "-q"],
                     input=jsonl(lookups))
    [fit] = result.records
    assert fit["params"]["K_max"] == pytest.approx(0.1383, rel=0.02)
    assert fit["params"]["N_0"] == pytest.approx(12.57e9, rel=0.02)


BAD_INPUTS = [
    ('{"N":7e9,"C":1e18,"loss":0.5}\n{"N":7e9,"C":2e18,"loss":0.4}\n{"N":1e9,"C":2e18,"loss":0.4}\n',
     "<stdin>:3: group N=1000000000 has 1 point(s) left after filtering and clipping; each "
     "group needs at least 2 (check --where, --x-min/--x-max, --warmup-clip/--ending-clip)"),
    ('{"N":7e9,"C":1e18,"loss":0.5}\n{"N":7e9,"C":-2,"loss":0.4}\n',
     "<stdin>:2: field 'C' must be > 0 for a log-log fit, got -2 (drop such points with "
     "--x-min or --where)"),
    ('{"N":7e9,"C":1e18,"loss":0.5}\n{"N":7e9,"C":2e18,"loss":0}\n',
     "<stdin>:2: field 'loss' must be > 0 to take its logarithm, got 0 (use --space linear, or "
     "drop the point with --where)"),
    ('{"N":7e9,"C":1e18,"loss":NaN}\n',
     "<stdin>:1: invalid JSON: NaN/Infinity are not JSON numbers (write null or drop the record)"),
    ('{"N":7e9,"C":1e18,"loss":null}\n', "<stdin>:1: field 'loss' is null, expected a number"),
    ('{"N":7e9,"C":1e18,"loss":"0.5"}\n',
     "<stdin>:1: field 'loss' must be a number, got string \"0.5\""),
    ('{"C":1e18,"loss":0.5}\n', "<stdin>:1: missing required field 'N' (the --group field)"),
    ('{"N":"big","C":1e18,"loss":0.5}\n',
     "<stdin>:1: field 'N' must be a positive model size (a number or a label like 7B), "
     "got 'big'"),
]


def test_empty_input_is_valid_and_writes_nothing():
    result = run_cli(["fit"], input="")
    assert (result.exit_code, result.stdout) == (0, "")
    assert result.stderr == "rlscale fit: no input records: nothing to fit\n"


@pytest.mark.parametrize("text,message", BAD_INPUTS)
def test_bad_input_is_one_line_naming_the_record_and_exit_1(text, message):
    result = run_cli(["fit"], input=text)
    assert result.exit_code == 1
    assert result.stderr == f"rlscale fit: {message}\n"
    assert result.stdout == ""


def test_skip_invalid_counts_and_fits_the_rest(runs_file, tmp_path):
    good = open(runs_file).read()
    bad = '{"N":7e9,"C":-5,"loss":0.4,"step":3}\nnot json\n'
    rejects = tmp_path / "rejects.jsonl"
    result = run_cli(["fit", "--skip-invalid", "--rejects", str(rejects), "-q"],
                     input=good + bad)
    assert result.exit_code == 0, result.stderr
    assert rejects.read_text() == bad


@pytest.mark.parametrize("args,message", [
    (["--log-base", "2"], "--log-base '2': expected one of 10, e"),
    (["--law", "chinchilla"], "--law 'chinchilla': expected one of saturating, loglinear, "
                              "decomposition, sigmoid, reuse, efficiency"),
    (["--space", "sqrt"], "--space 'sqrt': expected one of log, linear"),
    (["--predict", "q.jsonl", "--budget", "1e20"], "use either --predict or --budget, not both"),
    (["--intercept", "saturating", "--law", "loglinear"],
     "--intercept applies only to --law saturating, not loglinear"),
    (["--huber", "0"], "--huber must be > 0, got 0"),
    (["--holdout-group", "9e9"], "--holdout-group 9e9: no such group; groups are 500000000, "
                                 "1500000000, 3000000000, 7000000000, 14000000000, "
                                 "32000000000, 72000000000"),
    (["--fit-fraction", "1.5"], "--fit-fraction must be between 0 and 1 (exclusive), got 1.5"),
])
def test_usage_errors_exit_2(runs_file, args, message):
    result = run_cli(["fit", runs_file, "-q", *args])
    assert result.exit_code == 2
    assert result.stderr == f"rlscale fit: {message}\n"


def test_load_errors(tmp_path, runs_file):
    missing = run_cli(["fit", "--load", str(tmp_path / "nope.json")])
    assert (missing.exit_code, missing.stderr) == (
        1, f"rlscale fit: {tmp_path / 'nope.json'}: no such file\n")
    not_a_fit = tmp_path / "x.json"
    not_a_fit.write_text('{"law": "saturating"}')
    result = run_cli(["fit", "--load", str(not_a_fit)])
    assert result.exit_code == 1
    assert result.stderr == (f"rlscale fit: {not_a_fit}: not a saved rlscale fit (not an "
                             "rlscale fit: missing 'params')\n")
    both = run_cli(["fit", "--load", str(not_a_fit), runs_file])
    assert both.exit_code == 2


def test_predict_rejects_an_unpredictable_group(tmp_path):
    curves = [{"g": g, "x": x, "loss": 2.0 * x ** -k} for g, k in (("a", 0.1), ("b", 0.2))
              for x in (1.0, 10.0, 100.0)]
    runs = tmp_path / "runs.jsonl"
    runs.write_text(jsonl(curves))
    result = run_cli(["fit", str(runs), "--law", "loglinear", "--x", "x", "--group", "g",
                      "--predict", "-", "-q"], input=jsonl([{"g": "a", "x": 1000.0},
                                                            {"g": "c", "x": 5.0}]))
    assert result.exit_code == 1
    assert result.stderr == ("rlscale fit: <stdin>:2: group 'c' is not in the fit and the "
                             "'loglinear' law cannot predict a new group (it has its own k, E "
                             "per group)\n")


def test_real_process_exit_codes_and_streams():
    result = run_subprocess(["fit"], input=BAD_INPUTS[1][0])
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == f"rlscale fit: {BAD_INPUTS[1][1]}\n"
    usage = run_subprocess(["fit", "--log-base", "2"])
    assert usage.exit_code == 2


def test_help_does_not_import_heavy_libraries():
    code = ("import sys; from typer.testing import CliRunner; from rlscale.cli.app import app; "
            "r = CliRunner().invoke(app, ['fit', '--help']); assert r.exit_code == 0, r.output; "
            "heavy = [m for m in ('torch', 'matplotlib', 'scipy', 'numpy') if m in sys.modules]; "
            "print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def offset_power_law():
    """A user's own law, loaded with --law tests.test_fit_cli:offset_power_law."""
    from rlscale.core.laws.forms import Law, Param

    return Law(name="offset-power", title="L = L_inf + A_g x^-alpha", citation="test",
               params=(Param("L_inf", 0.0, 1.0, grid=(0.0, 0.3)),
                       Param("alpha", 0.01, 3.0, grid=(0.2, 1.0)),
                       Param("A", 0.0, 100.0, per_group=True, default=1.0)),
               predict=lambda p, x, n: p["L_inf"] + p["A"] * x ** -p["alpha"],
               numeric_groups=False, default_x="x", default_group="g")


def test_a_users_own_law_fits_saves_and_reloads(tmp_path):
    curves = [{"g": g, "x": float(x), "loss": 0.2 + a * x ** -0.5}
              for g, a in (("small", 2.0), ("large", 1.0)) for x in range(1, 60)]
    saved = tmp_path / "fit.json"
    result = run_cli(["fit", "--law", "tests.test_fit_cli:offset_power_law", "-q",
                      "--save", str(saved)], input=jsonl(curves))
    assert result.exit_code == 0, result.stderr
    [fit] = result.records
    assert fit["law"] == "offset-power"
    assert fit["params"]["L_inf"] == pytest.approx(0.2, abs=1e-6)
    assert fit["params"]["alpha"] == pytest.approx(0.5, abs=1e-6)
    assert fit["params"]["A"] == pytest.approx({"small": 2.0, "large": 1.0}, abs=1e-5)
    again = run_cli(["fit", "--load", str(saved), "--predict", "-"],
                    input=jsonl([{"g": "large", "x": 100.0}]))
    assert again.records[0]["loss_pred"] == pytest.approx(0.2 + 1.0 / 10, abs=1e-6)


def _half_written_then_full_disk(monkeypatch):
    """Make every savefig write part of its image to its target, then fail as a full disk."""
    from io import BytesIO

    from matplotlib.figure import Figure

    real = Figure.savefig

    def savefig(self, target, **kwargs):
        image = BytesIO()
        real(self, image, **kwargs)
        part = image.getvalue()[:64]
        if isinstance(target, str | os.PathLike):
            with open(target, "wb") as handle:
                handle.write(part)
        else:
            target.write(part)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Figure, "savefig", savefig)


def test_plot_is_written_atomically_in_the_suffix_format(saved_fit, tmp_path, monkeypatch):
    import matplotlib.image

    path, _ = saved_fit
    png = tmp_path / "fit.png"
    result = run_cli(["fit", "--load", path, "--plot", str(png), "-q"])
    assert result.exit_code == 0, result.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert matplotlib.image.imread(str(png)).ndim == 3  # a whole, decodable image
    svg = tmp_path / "fit.svg"
    result = run_cli(["fit", "--load", path, "--plot", str(svg), "-q"])
    assert result.exit_code == 0, result.stderr
    assert b"<svg" in svg.read_bytes()[:1000]
    result = run_cli(["fit", "--load", path, "--plot", str(tmp_path / "fit.nosuch"), "-q"])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"rlscale fit: --plot {tmp_path / 'fit.nosuch'}: Format "
                                    "'nosuch' is not supported")
    before = png.read_bytes()
    _half_written_then_full_disk(monkeypatch)
    result = run_cli(["fit", "--load", path, "--plot", str(png), "-q"])
    assert result.exit_code == 1
    assert result.stderr == f"rlscale fit: --plot {png}: [Errno 28] No space left on device\n"
    assert png.read_bytes() == before  # the old figure is intact
    assert sorted(os.listdir(tmp_path)) == ["fit.png", "fit.svg"]  # no partial or temp file
