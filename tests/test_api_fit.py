"""rlscale.fit and rlscale.Fit: the same fit, prediction and options as `rlscale fit`."""

from __future__ import annotations

import doctest
import inspect
import re
import sys
import types
from pathlib import Path

import numpy as np
import orjson
import pytest

import rlscale
from rlscale.core.errors import OptionError, RecordError
from rlscale.core.laws.synthetic import paper_base_c_records
from tests.conftest import jsonl, run_inprocess

DOC = Path(__file__).resolve().parent.parent / "docs" / "extending-laws.md"


@pytest.fixture(scope="module")
def records():
    return paper_base_c_records(0, steps=20, runs=2)


@pytest.fixture(scope="module")
def runs_file(tmp_path_factory, records):
    path = tmp_path_factory.mktemp("api") / "runs.jsonl"
    path.write_text(jsonl(records))
    return str(path)


def as_json(obj):
    return orjson.loads(orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY))


@pytest.mark.parametrize("args,options", [
    ([], {}),
    (["--bootstrap", "10", "--holdout-group", "72e9"],
     {"bootstrap": 10, "holdout_group": ["72e9"]}),
    (["--law", "loglinear", "--fit-fraction", "0.3", "--log-base", "e"],
     {"law": "loglinear", "fit_fraction": 0.3, "log_base": "e"}),
])
def test_to_dict_is_what_the_command_writes(records, runs_file, args, options):
    result = run_inprocess(["fit", runs_file, "-q", *args])
    assert result.exit_code == 0, result.stderr
    [written] = result.records
    fitted = rlscale.fit(records, **options)
    assert isinstance(fitted, rlscale.Fit)
    assert as_json(fitted.to_dict()) == written
    assert fitted.params == written["params"] and fitted.r2 == written["metrics"]["r2"]
    assert fitted.warnings == written["warnings"]


def test_predict_matches_the_command(records, runs_file, tmp_path):
    queries = [{"N": 7e9, "C": 1e21}, {"N": 1e11, "C": 1e22}, {"N": "7B", "C": 3e20}]
    query_file = tmp_path / "q.jsonl"
    query_file.write_text(jsonl(queries))
    result = run_inprocess(["fit", runs_file, "-q", "--bootstrap", "5", "--predict",
                            str(query_file)])
    assert result.exit_code == 0, result.stderr
    fitted = rlscale.fit(records, bootstrap=5)
    told = []
    assert as_json(fitted.predict_records(queries, notes=told.append)) == result.records
    assert told == ["N=100000000000 is not a fitted group; its E is interpolated in log N"]
    pred = fitted.predict([1e21, 1e22], group=[7e9, 1e11])
    assert pred.tolist() == [r["loss_pred"] for r in result.records[:2]]
    lo, hi = fitted.interval(1e21, group=7e9)
    assert (lo[0], hi[0]) == (result.records[0]["loss_pred_lo"], result.records[0]["loss_pred_hi"])


def test_load_rebases_like_the_command(records, tmp_path):
    fitted = rlscale.fit(records)
    saved = tmp_path / "fit.json"
    fitted.save(str(saved))
    result = run_inprocess(["fit", "--load", str(saved), "--log-base", "e", "-q"])
    assert result.exit_code == 0, result.stderr
    loaded = rlscale.Fit.load(str(saved), log_base="e")
    assert as_json(loaded.to_dict()) == result.records[0]
    e_10 = fitted.params["E"]["7000000000"]
    assert loaded.params["E"]["7000000000"] == pytest.approx(e_10 * np.log(10))
    assert loaded.predict(1e21, 7e9) == pytest.approx(fitted.predict(1e21, 7e9))
    budget = run_inprocess(["fit", "--load", str(saved), "--budget", "1e21", "-q"])
    assert as_json(loaded.optimal_size(1e21)) == budget.records[0]


@pytest.mark.parametrize("options,name", [
    ({"log_base": "2"}, "log_base"), ({"space": "sqrt"}, "space"), ({"huber": 0}, "huber"),
    ({"ci_level": 1.5}, "ci_level"), ({"weights": "x"}, "weights"),
    ({"replicates": "no"}, "replicates"), ({"bootstrap_by": "x"}, "bootstrap_by"),
    ({"law": "chinchilla"}, "law"), ({"law": "loglinear", "intercept": "saturating"},
                                     "intercept"),
    ({"fit_fraction": 1.5}, "fit_fraction"), ({"holdout_group": "9e9"}, "holdout_group"),
    ({"where": "N>>5"}, "where"), ({"x_min": "abc"}, "x_min"), ({"fix": ["K_max=5"]}, "fix"),
    ({"fix": {"L_inf": 0.3}}, "fix"), ({"group": ""}, "law"), ({"example": "nope"}, "example"),
    ({"holdout_group": "72e9", "fit_fraction": 0.3}, "holdout_group"),
])
def test_bad_options_raise_option_error_naming_the_parameter(records, options, name):
    with pytest.raises(OptionError) as caught:
        rlscale.fit(records, **options)
    assert caught.value.option == name
    assert name in str(caught.value)
    assert "--" not in str(caught.value).split(":")[0]  # the parameter, not a flag


def test_a_bad_record_names_its_index():
    with pytest.raises(RecordError, match=r"^<records>:2: field 'loss' must be a number"):
        rlscale.fit([{"N": 7e9, "C": 1e20, "loss": 0.5}, {"N": 7e9, "C": 2e20, "loss": "x"}])


def test_cli_defaults_are_the_api_defaults():
    from rlscale.cli.fit import command

    cli = {p.name: p.default for p in inspect.signature(command).parameters.values()}
    api = {p.name: p.default for p in inspect.signature(rlscale.fit).parameters.values()}
    shared = set(cli) & set(api)
    assert shared >= {"law", "x", "y", "group", "run", "step_field", "where", "x_min", "fix",
                      "intercept", "log_base", "space", "huber", "weights", "bootstrap",
                      "bootstrap_by", "ci_level", "holdout_group", "fit_fraction", "seed",
                      "example", "strict", "starts", "refine", "replicates"}
    assert {name for name in shared if cli[name] != api[name]} == set()


def test_help_lists_the_registered_laws():
    from rlscale.core.laws.registry import LAWS, help_text

    result = run_inprocess(["fit", "--help"])
    flat = " ".join(result.stdout.split())
    assert help_text() in flat
    for name in LAWS:
        assert name in help_text()


def test_transfer_and_compare(records):
    ranking = rlscale.api.fit.compare(records, law="saturating,loglinear")
    assert [row["law"] for row in ranking["compare"]] and ranking["protocol"] == "fit-fraction"
    with pytest.raises(OptionError, match="^ci_level"):
        rlscale.api.fit.transfer([], "data_source", ci_level=2)


def test_module_doctests():
    import rlscale.api.fit as module

    failures, tried = doctest.testmod(module)
    assert tried > 0 and failures == 0


def _blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_extending_laws_doc_example_runs(monkeypatch, capsys):
    """The worked example of docs/extending-laws.md, as written: the module, the registration
    line, then the fit from Python and from the command line."""
    from rlscale.core.laws import registry

    module_code, registration, usage = _blocks(DOC.read_text())
    module = types.ModuleType("rlscale.core.laws.floor")
    exec(compile(module_code, str(DOC), "exec"), module.__dict__)
    monkeypatch.setitem(sys.modules, "rlscale.core.laws.floor", module)
    monkeypatch.setattr(registry, "LAWS", dict(registry.LAWS))
    exec(registration, registry.__dict__)
    assert "floor" in registry.names() and "floor" in registry.help_text()
    exec(compile(usage, str(DOC), "exec"), {})
    assert capsys.readouterr().out.startswith("floor on 80 points, 2 group(s): L_inf=0.3")
    curves = [{"N": n, "step": s, "D": 512.0 * s, "loss": 0.3 + amp * (512.0 * s) ** -0.4}
              for n, amp in ((1e9, 8.0), (7e9, 5.0)) for s in range(1, 41)]
    result = run_inprocess(["fit", "--law", "floor", "--x", "D", "-q"], input=jsonl(curves))
    assert result.exit_code == 0, result.stderr
    assert result.records[0]["law"] == "floor"
