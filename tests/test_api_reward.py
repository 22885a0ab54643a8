"""``rlscale.reward``: the same records as ``rlscale reward``, errors that name the parameter or
the record, and the command's defaults."""

from __future__ import annotations

import inspect

import pytest

import rlscale
from rlscale.core.errors import OptionError, RecordError
from tests.conftest import jsonl, run_inprocess

MATH = [
    {"prompt_id": "p1", "completion": "so \\boxed{\\frac12}", "answer": "0.5", "step": 3},
    {"prompt_id": "p2", "completion": "#### 12", "answer": 12},
    {"prompt_id": "p3", "completion": "no idea", "answer": "3"},
    {"prompt_id": "p4", "completion": "<think>\\boxed{1}</think> so \\boxed{2}", "answer": "2"},
]
PAPER = [
    {"completion": "\\boxed{0.5}", "answer": "50", "data_source": "math__math"},
    {"completion": "\\boxed{\\frac{1}{2}}", "answer": "0.5"},
    {"completion": "so \\boxed{C}", "answer": "C", "data_source": "stem__supergpqa"},
    {"completion": "\\boxed{204}", "answer": "204", "data_source": "aime2024"},
]


@pytest.mark.parametrize("records, options, args", [
    (MATH, {}, []),
    (MATH, {"fallbacks": "none", "keep_thinking": True}, ["--fallbacks", "none",
                                                          "--keep-thinking"]),
    (PAPER, {"grader": "paper"}, ["--grader", "paper"]),
])
def test_the_api_gives_what_the_command_writes(records, options, args):
    # the percent leniency of the paper grader needs a worker: a limit no loaded machine reaches
    api = list(rlscale.reward(records, workers=1, timeout=60, **options))
    cli = run_inprocess(["reward", "-j", "1", "--timeout", "60", "-q", *args],
                        input=jsonl(records))
    assert cli.exit_code == 0, cli.stderr
    assert api == cli.records
    assert len(api) == len(records)
    if options.get("grader") == "paper":
        assert [record["reward"] for record in api] == [1.0, 1.0, 1.0, 1.0]


def test_a_bad_record_names_its_position():
    records = [{"completion": "\\boxed{1}", "answer": "1"}, {"completion": None, "answer": "1"}]
    scored = rlscale.reward(records, workers=1)
    assert next(scored)["verdict"] == "correct"
    with pytest.raises(RecordError) as caught:
        next(scored)
    assert str(caught.value) == "<records>:2: field 'completion' must be a string, got null null"
    with pytest.raises(RecordError, match=r"^<records>:1: data_source 'ifeval' has no paper "):
        list(rlscale.reward([{"completion": "x", "answer": "1", "data_source": "ifeval"}],
                            grader="paper"))
    with pytest.raises(RecordError, match=r"^<records>:1: answer: an object or array is a "
                                          r"ground truth of the code or logic grader only"):
        list(rlscale.reward([{"completion": "x", "answer": {"a": 1}}]))


@pytest.mark.parametrize("options, parameter, message", [
    ({"grader": "strict"}, "grader",
     "grader must be one of math, paper, code, logic, choice, got 'strict'"),
    ({"timeout": 0}, "timeout", "timeout must be > 0, got 0"),
    ({"workers": -1}, "workers", "workers must be >= 0, got -1"),
    ({"memory_mb": 10}, "memory_mb", "memory_mb must be >= 64, got 10"),
    ({"fallbacks": ["hashes", "bogus"]}, "fallbacks",
     "fallbacks: unknown bogus; expected some of answer-is, math-span, hashes, last-number or "
     "none"),
])
def test_a_bad_option_names_the_parameter_at_the_call(options, parameter, message):
    with pytest.raises(OptionError) as caught:
        rlscale.reward([], **options)  # raised before any record is read
    assert (caught.value.option, str(caught.value)) == (parameter, message)


def test_the_command_s_defaults_are_the_api_s():
    import typer.main

    from rlscale.cli.app import app

    api = inspect.signature(rlscale.reward).parameters
    command = typer.main.get_command(app).commands["reward"]
    own = {param.name: param.default for param in command.params if param.name in api}
    assert set(own) == set(api) - {"records", "counts", "progress"}
    for name, default in own.items():
        assert default == api[name].default, name
