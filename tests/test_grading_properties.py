"""Property tests for the grader's parsers: math spans, mixed numbers, times, scientific
notation, inequalities as intervals, the size check. Values are checked against independent
computations (Fraction arithmetic, datetime), never against the code's own output."""

from __future__ import annotations

import datetime
from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from rlscale.core.grading.expressions import evaluate_latex
from rlscale.core.grading.extraction import extract_answer, math_spans
from rlscale.core.grading.math_grader import quick_grade, too_complex
from rlscale.core.grading.normalize import (
    clock_time,
    mixed_number,
    normalize_answer,
    relation_as_interval,
    scientific_to_latex,
)

SPAN_ALPHABET = st.sampled_from(list("$\\()[]{}x1 +=abc\n"))


@given(st.text(alphabet=SPAN_ALPHABET, max_size=200))
def test_math_spans_are_pieces_of_the_text(text):
    for span in math_spans(text):
        assert span and span in text and span == span.strip()


@given(st.lists(st.from_regex(r"[0-9x+\-=<>^{}]{1,12}", fullmatch=True), min_size=1, max_size=5),
       st.sampled_from([("$", "$"), ("$$", "$$"), ("\\(", "\\)"), ("\\[", "\\]")]))
def test_the_last_span_is_taken_whole(contents, delimiters):
    left, right = delimiters
    text = " then ".join(f"{left}{content}{right}" for content in contents)
    spans = math_spans(text)
    assert spans == [content.strip() for content in contents if content.strip()]
    if spans:
        assert extract_answer(text, fallbacks=("math-span",)).text == spans[-1]


@given(st.integers(0, 10**6), st.integers(1, 999), st.integers(2, 1000), st.booleans(),
       st.booleans())
def test_mixed_numbers(whole, numerator, denominator, negative, latex):
    sign = "-" if negative else ""
    fraction = f"\\frac{{{numerator}}}{{{denominator}}}" if latex else f"{numerator}/{denominator}"
    text = f"{sign}{whole} {fraction}"
    result = mixed_number(text)
    if numerator >= denominator:
        assert result is None
        return
    expected = (whole + Fraction(numerator, denominator)) * (-1 if negative else 1)
    assert evaluate_latex(result).values[0] == expected


@given(st.integers(0, 23), st.integers(0, 59), st.booleans())
def test_clock_times(hour, minute, twelve_hour):
    moment = datetime.time(hour, minute)
    text = moment.strftime("%I:%M %p") if twelve_hour else moment.strftime("%H:%M")
    assert clock_time(text) == moment.strftime("%H:%M")
    assert normalize_answer(text) == moment.strftime("%H:%M")


@given(st.integers(1, 999), st.integers(0, 99), st.integers(-30, 30), st.sampled_from("eE"))
def test_scientific_notation_keeps_the_value(mantissa, decimals, exponent, letter):
    text = f"{mantissa}.{decimals:02d}{letter}{exponent:+d}"
    latex = scientific_to_latex(text)
    assert "e" not in latex.lower().replace("\\times", "")
    value = evaluate_latex(latex).values[0]
    assert value == Fraction(f"{mantissa}.{decimals:02d}") * Fraction(10) ** exponent


@given(st.integers(-50, 50), st.sampled_from(["<", "\\le", ">", "\\ge"]),
       st.one_of(st.integers(-60, 60).map(float), st.floats(-100, 100, allow_nan=False)))
def test_relation_and_interval_hold_the_same_points(low, operator, point):
    interval = relation_as_interval(f"x {operator} {low}")
    assert interval is not None
    opener, closer = interval[0], interval[-1]
    inside_relation = {"<": point < low, "\\le": point <= low,
                       ">": point > low, "\\ge": point >= low}[operator]
    left, right = interval[1:-1].split(",")
    lo = float("-inf") if "infty" in left else float(left)
    hi = float("inf") if "infty" in right else float(right)
    inside_interval = ((lo < point or (opener == "[" and lo == point))
                       and (point < hi or (closer == "]" and hi == point)))
    assert inside_relation == inside_interval


@given(st.text(max_size=300))
def test_size_check_and_quick_grade_never_crash(text):
    too_complex(text)
    result = quick_grade(f"\\boxed{{{text}}}", "1")
    assert result is None or result.verdict in ("correct", "wrong", "no_answer")


@given(st.integers(1, 60))
def test_power_towers_are_refused(height):
    tower = "2" + "^{2" * height + "}" * height
    assert too_complex(tower) == (height > 2)
