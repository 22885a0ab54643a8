"""The logic (Zebra puzzle) grader: tolerant grid parsing, binary reward, cell accuracy."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from rlscale.core.grading.logic import grade, parse_grid

ROWS = [json.loads(line) for line in
        (Path(__file__).parent / "data" / "transfer_sample.jsonl").read_text().splitlines()]
ZEBRA = [row for row in ROWS if row["data_source"].startswith("logic__zebra_puzzle")]


def answer(grid, quote: str = '"', trailing: str = "") -> str:
    text = json.dumps(grid)
    if quote == "'":
        text = text.replace('"', "'")
    return f"Reasoning...\n<answer> {text} </answer>{trailing}"


def test_exact_grid_of_the_paper_rows_is_correct():
    for row in ZEBRA:
        result = grade(answer(row["answer"]), row["answer"])
        assert (result.reward, result.verdict, result.details) == (
            1.0, "correct", {"cell_accuracy": 1.0})
        assert grade(answer(row["answer"]), json.dumps(row["answer"])).reward == 1.0


def test_single_quotes_trailing_text_case_and_column_order():
    gold = ZEBRA[0]["answer"]
    assert grade(answer(gold, "'"), gold).reward == 1.0
    inside = answer(gold).replace("</answer>", "} and that is all. </answer>")
    assert grade(inside, gold).reward == 1.0
    upper = {"header": gold["header"], "rows": [[cell.upper() for cell in row]
                                                for row in gold["rows"]]}
    assert grade(answer(upper), gold).reward == 1.0
    reordered = {"header": gold["header"][::-1], "rows": [row[::-1] for row in gold["rows"]]}
    assert grade(answer(reordered), gold).reward == 1.0
    numbers = {"header": gold["header"],
               "rows": [[int(row[0])] + row[1:] for row in gold["rows"]]}
    assert grade(answer(numbers), gold).reward == 1.0


def test_one_wrong_cell_scores_zero_with_cell_accuracy():
    gold = ZEBRA[0]["answer"]
    wrong = json.loads(json.dumps(gold))
    wrong["rows"][0][1], wrong["rows"][1][1] = wrong["rows"][1][1], wrong["rows"][0][1]
    result = grade(answer(wrong), gold)
    total = sum(len(row) for row in gold["rows"])
    assert result.reward == 0.0 and result.verdict == "wrong"
    assert result.details["cell_accuracy"] == (total - 2) / total
    missing_row = {"header": gold["header"], "rows": gold["rows"][:-1]}
    result = grade(answer(missing_row), gold)
    assert result.reward == 0.0
    assert result.details["cell_accuracy"] == (total - len(gold["rows"][-1])) / total


@given(st.integers(2, 6), st.integers(1, 4), st.data())
def test_cell_accuracy_property(n_rows, n_cols, data):
    gold = {"header": ["Position"] + [f"a{c}" for c in range(n_cols)],
            "rows": [[str(r + 1)] + [f"v{r}_{c}" for c in range(n_cols)] for r in range(n_rows)]}
    flips = data.draw(st.sets(st.tuples(st.integers(0, n_rows - 1), st.integers(1, n_cols))))
    pred = json.loads(json.dumps(gold))
    for r, c in flips:
        pred["rows"][r][c] = "other"
    quote = data.draw(st.sampled_from(['"', "'"]))
    result = grade(answer(pred, quote, data.draw(st.sampled_from(["", " Done.", "\n}"]))), gold)
    total = n_rows * (n_cols + 1)
    assert result.details["cell_accuracy"] == (total - len(flips)) / total
    assert result.reward == (1.0 if not flips else 0.0)


def test_bad_answers_and_bad_ground_truths():
    gold = ZEBRA[0]["answer"]
    assert grade("no tags here", gold).verdict == "no_answer"
    result = grade("<answer> the first house is red </answer>", gold)
    assert result.verdict == "wrong" and result.details["reason"].startswith("answer is not a grid")
    result = grade("<answer> {'rows': [1, 2]} </answer>", gold)
    assert result.verdict == "wrong"
    for bad in ('{"header": ["a"], "rows": 3}', "not json at all", {"rows": [["1", "x"]],
                                                                  "header": ["Position"]}):
        result = grade(answer(gold), bad)
        assert result.verdict == "error" and result.details["reason"], bad
    assert parse_grid("{'header': ['P'], 'rows': [['1']]} trailing }")[1] == [["1"]]


def test_reward_cli_writes_cell_accuracy():
    from tests.conftest import jsonl, run_cli

    gold = ZEBRA[1]["answer"]
    records = [{"completion": answer(gold, "'"), "answer": gold,
                "data_source": "logic__zebra_puzzle_dataset"},
               {"completion": "<answer>{'header': [}</answer>", "answer": {"rows": "x"},
                "data_source": "logic__zebra_puzzle_dataset"}]
    result = run_cli(["reward", "--grader", "paper"], input=jsonl(records))
    assert result.exit_code == 0, result.stderr
    out = [json.loads(line) for line in result.stdout.split("\n")[:2]]
    assert (out[0]["verdict"], out[0]["cell_accuracy"]) == ("correct", 1.0)
    assert out[1]["verdict"] == "error" and "ground truth is not a grid" in out[1]["reason"]


def test_structured_ground_truth_for_a_math_grader_is_refused():
    from tests.conftest import jsonl, run_cli

    result = run_cli(["reward", "--grader", "paper"],
                     input=jsonl([{"completion": "\\boxed{1}", "answer": [1, 2],
                                   "data_source": "math__math"}]))
    assert result.exit_code == 1
    assert result.stderr.strip() == ("rlscale reward: <stdin>:1: answer: an object or array is a "
                                     "ground truth of the code or logic grader only, not paper")
