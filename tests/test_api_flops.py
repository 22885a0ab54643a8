"""rlscale.flops: the same records as `rlscale flops` (JSONL records and VeRL logs), errors naming
the record's index or the parameter, the command's defaults."""

from __future__ import annotations

import doctest
import inspect
import os

import pytest

import rlscale
import rlscale.api.flops as flops_module
from rlscale.cli.flops import command
from rlscale.core.errors import OptionError, RecordError, RlscaleError
from rlscale.io.verl_log import VerlLogs
from tests.conftest import DATA, jsonl, run_inprocess

LOG = os.path.join(DATA, "verl_output.log")
QWEN7B = os.path.join(DATA, "models", "Qwen2.5-7B")
STEPS = [{"run_id": run, "step": s, "n_tokens": 100 * s + 7, "n_groups": 4, "N": 1e9}
         for run in ("a", "b") for s in range(6)]


def test_docstring_examples():
    assert doctest.testmod(flops_module).failed == 0


@pytest.mark.parametrize("args, kwargs", [
    ([], {}),
    (["--n-params", "7e9", "--count", "rollout,reference"],
     {"n_params": 7e9, "count": ["rollout", "reference"]}),
    (["-", "--model", QWEN7B, "--n-def", "total", "--prompts-per-step", "64", "--phi"],
     {"model": QWEN7B, "n_def": "total", "prompts_per_step": 64, "phi": True}),
    (["--run", "step", "--count", "all"], {"run": "step", "count": "all"}),
])
def test_api_equals_cli_on_records(args, kwargs):
    result = run_inprocess(["flops", *args, "-q"], input=jsonl(STEPS))
    assert result.exit_code == 0, result.stderr
    assert list(rlscale.flops(STEPS, **kwargs)) == result.records


@pytest.mark.parametrize("args, kwargs", [
    (["--n-params", "7e9", "--run-id", "r1", "--keep", "response_length/*"],
     {"n_params": 7e9, "run_id": "r1", "keep": ["response_length/*"]}),
    (["--model", QWEN7B, "--holdout-source", "math__math=2", "--all-steps", "--phi"],
     {"model": QWEN7B, "holdout_source": {"math__math": 2}, "all_steps": True, "phi": True}),
])
def test_api_equals_cli_on_verl_logs(args, kwargs):
    result = run_inprocess(["flops", "--from-verl-log", LOG, *args, "-q"])
    assert result.exit_code == 0, result.stderr
    assert list(rlscale.flops(from_verl_log=[LOG], **kwargs)) == result.records


def test_model_report_and_notes_equal_the_command():
    result = run_inprocess(["flops", "--model", QWEN7B])
    assert list(rlscale.flops(model=QWEN7B)) == result.records
    records = [{"step": 1, "n_tokens": 5}, {"step": 3, "n_tokens": 5}]
    result = run_inprocess(["flops", "--n-params", "1e9", "--phi"], input=jsonl(records))
    notes: list[str] = []
    list(rlscale.flops(records, n_params=1e9, phi=True, notes=notes))
    assert [f"rlscale flops: {note}" for note in notes] == result.stderr.splitlines()
    assert len(notes) == 3  # phi, the gap, the summary


def test_runs_follow_core_identity():
    # run 1 and 1.0 are one run; True is not the number 1 (they were one run before)
    records = [{"run_id": run, "step": 1, "n_tokens": 1} for run in (1, 1.0, True)]
    out = list(rlscale.flops(records, n_params=1))
    assert [r["C"] for r in out] == [6.0, 6.0, 6.0]
    notes: list[str] = []
    list(rlscale.flops(records, n_params=1, notes=notes))
    assert notes == ["N = 1 (--n-params); 6NT; 2 run(s), 2 step(s), max C = 6"]


def test_a_log_given_twice_is_refused():
    with pytest.raises(RlscaleError, match="given twice"):
        list(rlscale.flops(from_verl_log=[LOG, LOG], n_params=1))
    result = run_inprocess(["flops", "--from-verl-log", LOG, "--from-verl-log", LOG,
                            "--n-params", "1"])
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == f"rlscale flops: {LOG}: given twice (each log is one run)\n"


def test_verl_logs_skip_bad_lines_like_a_reader(tmp_path):
    log = tmp_path / "output.log"
    log.write_text("step:1 - x\nstep:2 - perf/total_num_tokens:5 - val/test_score/a:0.5\n")
    with pytest.raises(RecordError, match=f"{log}:1: step 1: cannot read metric 'x'"):
        list(rlscale.flops(from_verl_log=[str(tmp_path)], n_params=1, holdout_source=["a"]))
    logs = VerlLogs([str(log)], skip_invalid=True)
    out = list(rlscale.flops(from_verl_log=logs, n_params=1, holdout_source=["a"]))
    assert [r["step"] for r in out] == [2] and logs.n_skipped == 1


@pytest.mark.parametrize("records, message", [
    ([{"n_tokens": 1, "N": 1}, {"step": 1}], "<records>:2: missing required field 'n_tokens'"),
    ([{"n_tokens": -1}], "<records>:1: field 'n_tokens' must be >= 0, got -1"),
    ([{"n_tokens": 1, "N": 0}], "<records>:1: field 'N' must be > 0, got 0"),
    ([{"run_id": "a", "step": 2, "n_tokens": 1, "N": 1}, {"run_id": "a", "step": 1, "n_tokens": 1, "N": 1}],
     "<records>:2: run a: step 1 comes after step 2 of the same run (sort records by step "
     "within each run_id)"),
])
def test_bad_records_raise_naming_their_index(records, message):
    with pytest.raises(RecordError) as exc:
        list(rlscale.flops(records))
    assert str(exc.value) == message


@pytest.mark.parametrize("kwargs, option, message", [
    ({"n_def": "huge"}, "n_def", "n_def must be one of nominal, total, non-embedding, got 'huge'"),
    ({"count": "critic"}, "count",
     "count: unknown pass 'critic'; expected rollout, reference, old-logprob or all"),
    ({"count": ["rollout", 2]}, "count", "count: cannot read 2"),
    ({"prompts_per_step": -1}, "prompts_per_step", "prompts_per_step must be a number >= 0, got -1"),
    ({"n_params": -5}, "n_params", "n_params must be a positive number, got -5"),
    ({"n_params": 1, "n_def": "total", "model": QWEN7B}, "n_params",
     "n_params sets the nominal N; with n_def total N is counted from model, so drop one of them"),
    ({"n_def": "total"}, "n_def", "n_def total needs model (a config.json to count parameters)"),
    ({"keep": ["x"]}, "holdout_source",
     "holdout_source, run_id, all_steps, keep and val_metric need from_verl_log"),
    ({"records": None, "from_verl_log": [LOG]}, "from_verl_log",
     "from_verl_log needs n_params or model (a log has no N)"),
    ({"records": None, "from_verl_log": [LOG, LOG], "n_params": 1, "run_id": "a"}, "run_id",
     "run_id needs a single from_verl_log (each log is one run)"),
    ({"records": None, "from_verl_log": [LOG], "n_params": 1, "holdout_source": ["a", "a"]},
     "holdout_source", "holdout_source 'a' given twice"),
    ({"from_verl_log": [LOG]}, "from_verl_log", "give either records or from_verl_log, not both"),
])
def test_bad_options_raise_naming_the_parameter(kwargs, option, message):
    kwargs.setdefault("records", [{"n_tokens": 1}])
    with pytest.raises(OptionError) as exc:
        rlscale.flops(**kwargs)  # options are checked when called, before any record is read
    assert (exc.value.option, str(exc.value)) == (option, message)


def test_cli_defaults_equal_api_defaults():
    api = inspect.signature(rlscale.flops).parameters
    cli = inspect.signature(command).parameters
    shared = [name for name in api if name in cli]
    assert set(shared) == {"model", "n_params", "n_def", "prompts_per_step", "count", "run",
                           "from_verl_log", "holdout_source", "val_metric", "run_id",
                           "all_steps", "keep", "phi"}
    for name in shared:
        assert api[name].default == cli[name].default, name
