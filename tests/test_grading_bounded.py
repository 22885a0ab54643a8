"""``grade_bounded``: the time- and memory-bounded in-process API, on bad and hostile input."""

from __future__ import annotations

import threading

import pytest

from rlscale.core.grading import GradeResult, close_all, grade_bounded
from rlscale.core.grading.math_grader import too_complex

# real SymPy grades in this file: a limit that no loaded machine reaches (the limits themselves
# are tested with injected functions in test_grading_pool.py)
LIMITS = {"timeout": 60.0, "memory_mb": 1024}


@pytest.fixture(autouse=True, scope="module")
def _stop_workers():
    yield
    close_all()


@pytest.mark.parametrize("response, answer, expected", [
    ("", "3", GradeResult(0.0, None, "no_answer")),          # empty response
    ("\\boxed{}", "3", GradeResult(0.0, None, "no_answer")),  # empty box: nothing answered
    ("\\boxed{3}", "", GradeResult(0.0, "3", "wrong")),       # empty ground truth
    (None, "3", GradeResult(0.0, None, "error")),             # not a string
    (42, "42", GradeResult(0.0, None, "error")),              # a number is not a response
    ("\\boxed{3}", None, GradeResult(0.0, None, "error")),    # no ground truth
    ("\\boxed{1}", True, GradeResult(0.0, None, "error")),    # bool would read as 1
    ("\\boxed{3}", 3, GradeResult(1.0, "3", "correct")),      # numeric ground truths
    ("\\boxed{3}", 3.0, GradeResult(1.0, "3", "correct")),
    ("\\boxed{0.25}", 0.25, GradeResult(1.0, "0.25", "correct")),
    (b"so \\boxed{3} \xff\xfe", "3", GradeResult(1.0, "3", "correct")),  # invalid UTF-8
    ("\\boxed{3}\ud800", "3", GradeResult(1.0, "3", "correct")),         # lone surrogate
])
def test_bad_input_gets_a_verdict(response, answer, expected):
    assert grade_bounded(response, answer, **LIMITS) == expected


def test_one_megabyte_responses():
    filler = "We consider the cases one by one and check each. " * 21000  # ~1 MB
    assert len(filler) > 1_000_000
    assert grade_bounded(filler + "\\boxed{17}", "17", **LIMITS).verdict == "correct"
    assert grade_bounded(filler, "17", **LIMITS).verdict == "no_answer"
    # a megabyte inside the box: compared as a string only, never parsed
    huge = grade_bounded("\\boxed{" + "1+" * 500_000 + "1}", "1000001", **LIMITS)
    assert huge.verdict == "wrong" and len(huge.pred) == 1_000_001


@pytest.mark.parametrize("depth", [50, 10_000, 300_000])
def test_deeply_nested_braces(depth):
    opened = "\\boxed{" + "{" * depth + "1" + "}" * depth + "}"
    assert grade_bounded(opened, "1", **LIMITS).verdict in ("correct", "wrong")
    assert grade_bounded(opened, "2", **LIMITS).verdict == "wrong"
    never_closed = "\\boxed{" + "{" * depth + "1"  # a truncated box: the fallbacks look on
    assert grade_bounded(never_closed, "2", **LIMITS) == GradeResult(0.0, "1", "wrong")


def test_pathological_pair_is_refused_before_sympy():
    # this pair grew past 23 GB inside SymPy; the size check decides it in microseconds
    pred = "[2^{\\frac{1}{2^{1000}}},\\infty)"
    assert too_complex(pred)
    assert grade_bounded(f"\\boxed{{{pred}}}", "[1,+\\infty)", **LIMITS) == GradeResult(
        0.0, pred, "wrong")
    # 2^{2^{-1000}} is 1.0 in floating point, yet it is not 1
    assert grade_bounded("\\boxed{2^{\\frac{1}{2^{1000}}}}", "1", **LIMITS).verdict == "wrong"


@pytest.mark.parametrize("text, expected", [
    ("x^{y^{z}}", False), ("2^{1000}", False), ("3.54\\times10^{-7}", False),
    ("9^{9^{9^{9}}}", True), ("2^{2^{100}}", True), ("x" * 1001, True),
    ("{" * 41 + "}" * 41, True), ("+".join(["x^2"] * 41), True),
])
def test_too_complex(text, expected):
    assert too_complex(text) is expected


def test_symbolic_slow_path_and_threads():
    # sets need Math-Verify in the worker; four threads share one bounded grader
    results = [None] * 8

    def work(index):
        results[index] = grade_bounded("\\boxed{\\{1,2\\}}", "\\{2,1\\}" if index % 2 else "\\{3\\}",
                                       **LIMITS).verdict

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == ["wrong", "correct"] * 4


def test_paper_grader_and_bad_timeout():
    assert grade_bounded("\\boxed{0.5}", "50", "paper", "math__math", **LIMITS).reward == 1.0
    with pytest.raises(ValueError, match="timeout must be > 0"):
        grade_bounded("\\boxed{1}", "1", timeout=0)
