"""The labelled regression set of the ``math`` grader (tests/data/grading_regression.jsonl).

Every case was written for rlscale: a response, a ground truth, the expected verdict and a
one-line reason. Cases run through the real :class:`Grader` (fast path in this process,
Math-Verify in a worker) with a limit no loaded machine reaches, so the verdicts are the
grader's, never a timeout.
"""

from __future__ import annotations

import collections
import os

import orjson
import pytest

from rlscale.core.grading import Grader, GradeTask
from tests.conftest import DATA

CASES = [orjson.loads(line) for line in open(os.path.join(DATA, "grading_regression.jsonl"), "rb")]
# every class named in the grader's documentation has cases, wrong ones included
CLASSES = {"extract-box", "extract-phrase", "extract-span", "extract-hashes", "extract-number",
           "relation", "interval", "matrix", "text", "thousands", "mixed", "scientific", "trig",
           "time", "unit", "percent", "number", "bad-input"}


@pytest.fixture(scope="module")
def grader():
    with Grader(workers=1, timeout=60) as shared:
        yield shared


def test_the_set_covers_every_class_both_ways():
    by_class = collections.defaultdict(set)
    for case in CASES:
        assert set(case) == {"class", "response", "answer", "expected", "reason"}
        assert case["reason"].strip() and "\n" not in case["reason"]
        by_class[case["class"]].add(case["expected"])
    assert set(by_class) == CLASSES
    for name, verdicts in by_class.items():
        if name != "bad-input":
            assert "wrong" in verdicts or "no_answer" in verdicts, name  # no false positives
            assert "correct" in verdicts, name


@pytest.mark.parametrize("case", CASES, ids=[f"{c['class']}-{i}" for i, c in enumerate(CASES)])
def test_regression_case(grader, case):
    result = grader.grade(GradeTask(case["response"], case["answer"]))
    assert result.verdict == case["expected"], case["reason"]
    assert result.reward == (1.0 if case["expected"] == "correct" else 0.0)
