"""The code grader: extraction, ground-truth formats, verdicts, and reward end to end on
HumanEval rows of the paper's file (tests/data/transfer_sample.jsonl)."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
from hypothesis import given
from hypothesis import strategies as st

from rlscale.core.grading.code import GroundTruthError, extract_code, grade, program_from
from tests.conftest import jsonl, run_cli

ROWS = [json.loads(line) for line in
        (Path(__file__).parent / "data" / "transfer_sample.jsonl").read_text().splitlines()]
HUMANEVAL = [row for row in ROWS if row["data_source"] == "codegen__humaneval"]
# solutions written for rows 0, 2 and 7 of the paper's file
SOLUTIONS = {
    0: "def has_close_elements(numbers, threshold):\n    return any(abs(a - b) < threshold "
       "for i, a in enumerate(numbers) for b in numbers[i + 1:])\n",
    2: "def truncate_number(number):\n    return number % 1.0\n",
    7: "def filter_by_substring(strings, substring):\n    return [s for s in strings "
       "if substring in s]\n",
}


def fenced(code: str, tag: str = "python") -> str:
    return f"Here is my solution.\n```{tag}\n{code}```\nIt runs in O(n^2)."


def test_extraction_takes_the_last_python_block():
    text = "```python\nfirst = 1\n```\nthen\n```bash\nls\n```\n```py\nsecond = 2\n```\nend"
    assert extract_code(text) == "second = 2\n"
    assert extract_code("<think>```python\nhidden = 1\n```</think>plain = 3") == "plain = 3"
    assert extract_code("x = 1\ny = 2") == "x = 1\ny = 2"
    assert extract_code("done\n```python\ndef f():\n    return 1") == "def f():\n    return 1"
    assert extract_code("\n  \n") is None


@given(st.lists(st.from_regex(r"[a-z_]{1,8} = [0-9]{1,3}", fullmatch=True), min_size=1,
                max_size=4))
def test_extraction_property_last_block_wins(bodies):
    text = "\n".join(f"step {i}\n```python\n{body}\n```" for i, body in enumerate(bodies))
    assert extract_code(text + "\nfinal words") == bodies[-1] + "\n"


def test_ground_truth_formats():
    program = "check(f)\n"
    assert program_from(json.dumps({"functional": program})) == program
    assert program_from({"functional": program}) == program
    assert program_from(program) == program
    for bad, reason in [("{not json", "not valid JSON"), ('{"inputs": [1]}', "no 'functional'"),
                        ("", "empty"), (3, "not a test program")]:
        try:
            program_from(bad)
        except GroundTruthError as exc:
            assert reason in str(exc)
        else:
            raise AssertionError(bad)


def test_verdicts_on_the_paper_rows():
    for row in HUMANEVAL:
        solution = SOLUTIONS[row["index"]]
        assert grade(fenced(solution), row["answer"]).verdict == "correct"
        broken = solution.replace("return ", "return None and ", 1)
        result = grade(fenced(broken), row["answer"])
        assert result.verdict == "wrong" and result.reward == 0.0
    gold = HUMANEVAL[0]["answer"]
    assert grade(fenced("def has_close_elements(:\n"), gold).verdict == "error"
    assert grade(fenced("raise KeyError('x')\n"), gold).details == {"reason": "KeyError: 'x'"}
    assert grade("   ", gold).verdict == "no_answer"


def test_bad_test_program_is_an_error_with_a_reason():
    result = grade(fenced("x = 1\n"), json.dumps({"functional": "def check(:\n"}))
    assert result.verdict == "error"
    assert result.details["reason"].startswith("test program does not compile: SyntaxError")
    result = grade(fenced("x = 1\n"), '{"functional": ')
    assert result.verdict == "error" and "not valid JSON" in result.details["reason"]


def test_reward_cli_grades_code_with_structured_and_string_ground_truths():
    row = HUMANEVAL[1]
    records = [
        {"completion": fenced(SOLUTIONS[row["index"]]), "answer": row["answer"],
         "data_source": row["data_source"]},
        {"completion": fenced(SOLUTIONS[row["index"]]), "answer": json.loads(row["answer"]),
         "data_source": row["data_source"]},
        {"completion": fenced("def truncate_number(n):\n    return 0\n"), "answer": row["answer"],
         "data_source": row["data_source"]},
        {"completion": fenced("x = 1\n"), "answer": {"functional": "def (:"},
         "data_source": row["data_source"]},
        {"completion": "\\boxed{2}", "answer": "2", "data_source": "math"},
    ]
    result = run_cli(["reward", "--grader", "paper", "-j", "2"], input=jsonl(records))
    assert result.exit_code == 0, result.stderr
    out = [orjson.loads(line) for line in result.stdout.split("\n")[:-2]]
    assert [r["verdict"] for r in out] == ["correct", "correct", "wrong", "error", "correct"]
    assert out[3]["reason"].startswith("test program does not compile")
    assert out[1]["answer"] == json.loads(row["answer"])  # the record is passed through as is
    result = run_cli(["reward", "--grader", "code"], input=jsonl(records[:1]))
    assert orjson.loads(result.stdout.split("\n")[0])["verdict"] == "correct"
