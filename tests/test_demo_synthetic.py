"""The synthetic arithmetic task of the demo, and the demo's result table (pure code, fast)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rlscale.core.synthetic import (
    ANSWER_STYLES,
    BOXED_SUFFIX,
    DATA_SOURCE,
    LEVELS,
    generate_problems,
    level_space_size,
    make_problem,
    number_problems,
    solution_text,
    with_answer_styles,
)
from rlscale.demo.prepare import _parse_levels
from rlscale.demo.report import boxed_share, monotone_verdict, summary


def _recompute(expression: str) -> tuple[int, str, int, int]:
    left, op, right = expression.split(" ")
    a, b = int(left), int(right)
    value = {"+": a + b, "-": a - b, "*": a * b}[op]
    return value, op, a, b


@given(seed=st.integers(0, 2**32 - 1), level=st.integers(1, len(LEVELS)))
def test_problem_answer_matches_its_expression(seed, level):
    problem = make_problem(random.Random(seed), level)
    value, op, a, b = _recompute(problem["expression"])
    spec = LEVELS[level - 1]
    assert problem["answer"] == str(value)
    assert op == spec.op
    assert problem["prompt"] == f"What is {problem['expression']}? {BOXED_SUFFIX}"
    assert problem["data_source"] == DATA_SOURCE and problem["level"] == level
    if op == "-":
        assert value >= 0  # operands are swapped rather than going negative
        assert {len(str(a)), len(str(b))} == {spec.digits_a, spec.digits_b}
    else:
        assert (len(str(a)), len(str(b))) == (spec.digits_a, spec.digits_b)


def test_level_out_of_range_is_rejected():
    with pytest.raises(ValueError, match="level must be in 1..10, got 0"):
        make_problem(random.Random(0), 0)
    with pytest.raises(ValueError, match="level must be in 1..10, got 11"):
        make_problem(random.Random(0), 11)


def test_level_space_sizes():
    assert level_space_size(1) == 100  # 0..9 + 0..9
    assert level_space_size(3) == 90 * 10  # 10..99 + 0..9
    assert level_space_size(9) == 900 * 900


def test_generation_is_seeded_unique_and_respects_levels():
    first = generate_problems(random.Random(7), 300, levels=[1, 3])
    again = generate_problems(random.Random(7), 300, levels=[1, 3])
    other = generate_problems(random.Random(8), 300, levels=[1, 3])
    assert first == again and first != other
    assert len({p["prompt"] for p in first}) == 300
    assert {p["level"] for p in first} == {1, 3}


def test_generation_can_exclude_and_repeat():
    pool = generate_problems(random.Random(0), 60, levels=[1])
    exclude = {p["prompt"] for p in pool}
    rest = generate_problems(random.Random(1), 40, levels=[1], exclude=exclude)
    assert not exclude & {p["prompt"] for p in rest}
    # unique=False: draws may repeat (500 draws from a 100-problem level must).
    repeated = generate_problems(random.Random(0), 500, levels=[1], unique=False)
    assert len({p["prompt"] for p in repeated}) <= 100


def test_generation_fails_clearly_when_levels_run_out():
    with pytest.raises(ValueError, match=r"cannot draw 101 distinct problems from levels \[1\]"):
        generate_problems(random.Random(0), 101, levels=[1])
    with pytest.raises(ValueError, match="one entry per level"):
        generate_problems(random.Random(0), 5, levels=[1, 2], weights=[1.0])


def test_solution_styles():
    problem = {"answer": "42"}
    assert solution_text(problem) == "\\boxed{42}"
    assert solution_text(problem, "answer-is") == "The answer is 42."
    assert solution_text(problem, "bare") == "42"
    with pytest.raises(ValueError, match="unknown answer style 'latex'"):
        solution_text(problem, "latex")


def test_answer_styles_follow_weights():
    problems = generate_problems(random.Random(0), 400, levels=[5])
    only_boxed = with_answer_styles(random.Random(1), problems, (1.0, 0.0, 0.0))
    assert all(p["solution"] == f"\\boxed{{{p['answer']}}}" for p in only_boxed)
    mixed = with_answer_styles(random.Random(1), problems, (0.5, 0.25, 0.25))
    counts = {style: sum(p["style"] == style for p in mixed) for style in ANSWER_STYLES}
    assert 150 < counts["boxed"] < 250 and counts["answer-is"] > 50 and counts["bare"] > 50
    assert problems[0].get("solution") is None  # the input is not modified
    with pytest.raises(ValueError, match="need 3 style weights, got 2"):
        with_answer_styles(random.Random(0), problems, (1.0, 0.0))


def test_number_problems_gives_stable_ids():
    records = list(number_problems([{"prompt": "a"}, {"prompt": "b"}], prefix="x"))
    assert records == [{"id": "x-00000", "prompt": "a"}, {"id": "x-00001", "prompt": "b"}]


def test_parse_levels():
    assert _parse_levels("1-4") == (1, 2, 3, 4)
    assert _parse_levels("1,3,5-6") == (1, 3, 5, 6)
    with pytest.raises(Exception, match="levels must lie in 1..10"):
        _parse_levels("0-2")


# --- the result table ---------------------------------------------------------------------


def test_monotone_verdict():
    sizes = ["a", "b", "c"]
    assert monotone_verdict(sizes, {"a": 0.1, "b": 0.2, "c": 0.3}).startswith("yes")
    assert monotone_verdict(sizes, {"a": 0.3, "b": 0.2, "c": 0.1}).startswith("no")
    assert monotone_verdict(sizes, {"a": 0.1, "b": 0.3, "c": 0.2}) == (
        "mixed: k rises at 1 of 2 steps up in N")
    assert monotone_verdict(sizes, {"a": 0.1, "b": None, "c": 0.2}).startswith("undetermined")


def test_boxed_share():
    scored = [{"verdict": "correct"}, {"verdict": "wrong"}, {"verdict": "no_answer"},
              {"verdict": "no_answer"}]
    assert boxed_share(scored) == 0.5
    assert boxed_share([]) is None


def test_summary_table_reports_fit_and_curves():
    fit_c = {
        "groups": {"1000": 1000.0, "4000": 4000.0},
        "params": {"K_max": 0.2, "N_0": 3000.0, "E": {"1000": 0.1, "4000": 0.2}},
        "derived": {"k": {"1000": 0.05, "4000": 0.08}},
        "metrics": {"r2": 0.9, "n_points": 10, "n_groups": 2},
        "warnings": [{"message": "N_0 is poorly determined"}],
    }
    fit_free = {"params": {"k": {"1000": 0.04, "4000": 0.09}},
                "metrics": {"r2": 0.95, "r2_group": {"1000": 0.8, "4000": 0.7}}}
    runs = [{"N": 1000.0, "step": 0, "loss": 0.9}, {"N": 1000.0, "step": 5, "loss": 0.8},
            {"N": 4000.0, "step": 0, "loss": 0.7}, {"N": 4000.0, "step": 5, "loss": 0.5}]
    pretrain = [{"size": "small", "n_params": 1000, "probe_pass_rate": 0.05},
                {"size": "big", "n_params": 4000, "probe_pass_rate": 0.2}]
    text = summary(fit_c, fit_free, None, runs, pretrain, {"small": (0.5, 0.75)})
    lines = text.splitlines()
    assert lines[2] == ("| small | 1,000 | 5.0% | 0.9 → 0.8 (step 5) | 50% → 75% | 0.05 | 0.04 "
                        "| 0.8 | – |")
    assert lines[3] == "| big | 4,000 | 20.0% | 0.7 → 0.5 (step 5) | – | 0.08 | 0.09 | 0.7 | – |"
    assert "K_max = 0.2, N_0 = 3000, R² = 0.9 on 10 points (2 sizes)." in text
    assert "yes: k rises with every step up in N" in text
    assert "- N_0 is poorly determined" in text


def test_pretraining_rate_falls_with_width():
    from rlscale.demo.pretrain import DEMO_SIZES, scaled_lr
    from rlscale.engines.tiny import TinyConfig

    assert scaled_lr(TinyConfig(hidden_size=32)) == 3e-3  # capped at the base rate
    assert scaled_lr(TinyConfig(hidden_size=64)) == 3e-3
    assert scaled_lr(TinyConfig(hidden_size=128)) == 1.5e-3
    assert scaled_lr(TinyConfig(hidden_size=96), base_lr=1e-3, base_width=48) == 0.5e-3
    rates = [scaled_lr(config) for config in DEMO_SIZES.values()]
    assert rates == sorted(rates, reverse=True)


def test_number_format_of_the_table():
    from rlscale.demo.report import _num

    assert _num(-0.0) == "0"  # a flat curve's slope can come back as -0.0
    assert _num(None) == "–"
    assert _num(0.01234) == "0.0123"
    assert _num(2.5e-5) == "2.50e-05"
