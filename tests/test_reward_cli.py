"""`rlscale reward` end to end (subprocess): fields, graders, errors, streaming order."""

from __future__ import annotations

import functools
import gzip

from hypothesis import example, given, settings
from hypothesis import strategies as st

from rlscale.core.grading import dispatch
from tests.conftest import jsonl, run_cli, run_inprocess
from tests.test_grading_pool import grade_or_allocate, grade_or_hang


def test_reward_adds_fields_and_keeps_the_rest():
    records = [
        {"prompt_id": "p1", "completion": "so \\boxed{\\frac12}", "answer": "0.5", "step": 3},
        {"prompt_id": "p2", "completion": "\\boxed{9^{9^{9^{9}}}}", "answer": 5},
        {"prompt_id": "p3", "completion": "\\boxed{\\{1,2\\}}", "answer": "\\{2,1\\}"},
        {"prompt_id": "p4", "completion": "no idea", "answer": "3"},
    ]
    # real SymPy/Math-Verify grades: a limit no loaded machine reaches (timeouts are tested
    # with an injected hanging function below)
    result = run_cli(["reward", "-j", "1", "--timeout", "60"], input=jsonl(records))
    assert result.exit_code == 0, result.stderr
    out = result.records
    assert [r["prompt_id"] for r in out] == ["p1", "p2", "p3", "p4"]
    assert out[0] == {**records[0], "reward": 1.0, "pred": "\\frac12", "verdict": "correct"}
    assert [r["verdict"] for r in out] == ["correct", "wrong", "correct", "no_answer"]
    assert [r["reward"] for r in out] == [1.0, 0.0, 1.0, 0.0]
    assert out[3]["pred"] is None
    assert "graded 4: mean reward 0.5000 (correct 2, wrong 1, no_answer 1)" in result.stderr


def test_field_names_and_fallbacks_are_options(tmp_path):
    path = tmp_path / "in.jsonl.gz"
    with gzip.open(path, "wt") as handle:
        handle.write(jsonl([{"text": "#### 12", "gt": "12"}]))
    result = run_cli(["reward", "--response-field", "text", "--answer-field", "gt", "-q",
                      str(path)])
    assert result.exit_code == 0 and result.records[0]["verdict"] == "correct"
    assert result.stderr == ""
    result = run_cli(["reward", "--response-field", "text", "--answer-field", "gt",
                      "--fallbacks", "none", "-q", str(path)])
    assert result.records[0]["verdict"] == "no_answer"


def test_timeout_verdict_and_the_stream_goes_on(monkeypatch):
    # the command's Grader gets a grading function that hangs on purpose on the first record
    # (in-process run, real worker pool): --timeout must reach the pool and the stream go on
    monkeypatch.setattr(dispatch, "Grader", functools.partial(
        dispatch.Grader, grade_function=grade_or_hang))
    records = [{"completion": "<hang> \\boxed{3}", "answer": "3"},
               {"completion": "\\boxed{7}", "answer": "7"}]
    result = run_inprocess(["reward", "-j", "1", "--timeout", "2", "-q"],
                           input=jsonl(records))
    assert result.exit_code == 0, result.stderr
    assert [r["verdict"] for r in result.records] == ["timeout", "correct"]
    assert [r["pred"] for r in result.records] == ["3", "7"]
    assert result.records[0]["reward"] == 0.0


def test_memory_limit_gives_error_and_the_stream_goes_on(monkeypatch):
    # an injected grading function asks for 8 GiB on purpose: --memory-mb must reach the pool
    monkeypatch.setattr(dispatch, "Grader", functools.partial(
        dispatch.Grader, grade_function=grade_or_allocate))
    records = [{"completion": "<allocate> \\boxed{3}", "answer": "3"},
               {"completion": "\\boxed{7}", "answer": "7"}]
    result = run_inprocess(["reward", "-j", "1", "--memory-mb", "512", "--timeout", "60"],
                           input=jsonl(records))
    assert result.exit_code == 0, result.stderr
    assert [(r["verdict"], r["pred"]) for r in result.records] == [("error", "3"), ("correct", "7")]
    assert "graded 2: mean reward 0.5000 (correct 1, error 1)" in result.stderr


def test_paper_grader_routes_by_data_source():
    records = [
        {"completion": "\\boxed{0.5}", "answer": "50", "data_source": "math__math"},
        {"completion": "\\boxed{1.5707963}", "answer": "\\frac{\\pi}{2}"},
        {"completion": "so \\boxed{18 dollars}", "answer": "18", "data_source": "openai/gsm8k"},
        {"completion": "\\boxed{204.0}", "answer": "204", "data_source": "aime2024"},
    ]
    result = run_cli(["reward", "--grader", "paper", "-j", "1", "--timeout", "60", "-q"],
                     input=jsonl(records))
    assert result.exit_code == 0, result.stderr
    assert [r["reward"] for r in result.records] == [1.0, 0.0, 1.0, 1.0]
    # the math grader is stricter: no percent leniency
    result = run_cli(["reward", "-j", "1", "-q"], input=jsonl(records[:1]))
    assert result.records[0]["reward"] == 0.0


def test_bad_records_name_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(jsonl([{"completion": "\\boxed{1}", "answer": "1"},
                           {"completion": None, "answer": "1"}]))
    result = run_cli(["reward", str(path)])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"rlscale reward: {path}:2: field 'completion' must be a string, got null null")
    result = run_cli(["reward", "--grader", "paper"],
                     input=jsonl([{"completion": "x", "answer": "1",
                                   "data_source": "ifeval__instructions"}]))
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "rlscale reward: <stdin>:1: data_source 'ifeval__instructions' has no paper scorer "
        "(expected math*, aime*, math_dapo, openai/gsm8k, codegen__*, logic__zebra_puzzle* or "
        "stem__supergpqa*)")


def test_skip_invalid_with_rejects(tmp_path):
    rejects = tmp_path / "rejects.jsonl"
    text = jsonl([{"completion": "\\boxed{1}", "answer": "1"}]) + "not json\n" + \
        jsonl([{"answer": "2"}, {"completion": "\\boxed{2}", "answer": 2}])
    result = run_cli(["reward", "--skip-invalid", "--rejects", str(rejects)], input=text)
    assert result.exit_code == 0
    assert [r["reward"] for r in result.records] == [1.0, 1.0]
    assert "skipped 2 invalid line(s)" in result.stderr
    assert rejects.read_text().splitlines() == ["not json", '{"answer":"2"}']


def test_usage_errors_exit_2():
    for args, message in [
        (["--grader", "strict"], "--grader must be one of math, paper, code, logic, choice, got 'strict'"),
        (["--memory-mb", "10"], "--memory-mb must be >= 64, got 10"),
        (["--fallbacks", "hashes,bogus"],
         "--fallbacks: unknown bogus; expected some of answer-is, math-span, hashes, "
         "last-number or none"),
    ]:
        result = run_cli(["reward", *args], input="")
        assert result.exit_code == 2, args
        assert result.stderr.strip() == f"rlscale reward: {message}"


def test_help_has_examples():
    result = run_cli(["reward", "--help"])
    assert result.exit_code == 0
    assert "rlscale reward rollouts.jsonl > scored.jsonl" in result.stdout
    assert "--grader" in result.stdout and "--timeout" in result.stdout


@settings(max_examples=2, deadline=None)
@given(st.lists(st.tuples(st.text(max_size=40), st.integers(-20, 20)), min_size=1, max_size=25))
@example([("\x85 \u2028 line separators inside a JSON string", 3)])  # found by hypothesis in CI
def test_cli_every_input_yields_one_output(items):
    records = [{"i": i, "completion": text + f" \\boxed{{{value}}}" * (i % 2), "answer": "3"}
               for i, (text, value) in enumerate(items)]
    result = run_cli(["reward", "-j", "1", "-q"], input=jsonl(records))
    assert result.exit_code == 0, result.stderr
    assert [r["i"] for r in result.records] == list(range(len(records)))
    assert all(r["verdict"] in ("correct", "wrong", "no_answer") for r in result.records)


def test_bad_responses_each_get_a_verdict_and_no_record_is_lost():
    """Empty, non-string-looking, huge, invalid UTF-8 and deeply nested responses: one verdict
    each, in order, exit 0."""
    deep = "\\boxed{" + "{" * 5000 + "1" + "}" * 5000 + "}"
    lines = [
        b'{"completion": "", "answer": "1"}',
        b'{"completion": "' + b"x" * (1 << 20) + b' \\\\boxed{2}", "answer": "2"}',
        b'{"completion": "\\\\boxed{3} \xff\xfe broken bytes", "answer": "3"}',
        b'{"completion": "' + deep.replace("\\", "\\\\").encode() + b'", "answer": "1"}',
        b'{"completion": "\\\\boxed{4}", "answer": 4}',
    ]
    result = run_cli(["reward", "-j", "1", "--timeout", "60"], input=b"\n".join(lines) + b"\n")
    assert result.exit_code == 0, result.stderr
    out = result.records
    assert len(out) == 5
    assert [r["verdict"] for r in out[:3]] == ["no_answer", "correct", "correct"]
    assert "\ufffd" in out[2]["completion"]  # the broken bytes are replaced, the record kept
    assert out[3]["verdict"] in {"wrong", "error"}  # refused by the size check, never a hang
    assert out[4]["verdict"] == "correct"
