"""The ``math`` grader: extraction, a fast exact/numeric path, then Math-Verify.

The answer is extracted in the priority order documented in
:mod:`~rlscale.core.grading.extraction` (box, final-answer phrase, math span, ``####``, last
number). Equivalence is then decided in this order:

1. the normalised strings are equal (:func:`~rlscale.core.grading.normalize.normalize_answer`);
2. both sides evaluate (safely, see :mod:`~rlscale.core.grading.expressions`) to numbers or to
   functions of at most four one-letter variables: exact rational equality, or floating-point
   agreement at two fixed variable assignments; clearly different values are *wrong*;
   tuples/intervals/sets/matrix rows are compared element-wise when their brackets agree;
3. otherwise HF Math-Verify (``parse`` + ``verify``) decides -- intervals, sets, matrices,
   equations and inequalities, symbolic simplification (trigonometric identities within
   SymPy's reach) -- on the spellings of :func:`~rlscale.core.grading.normalize.symbolic_form`.

The rules, each with regression cases in ``tests/data/grading_regression.jsonl``. First rule:
no false positives -- a grader that passes wrong answers poisons RL, so an undecidable or
absurd answer is *wrong*, never a guess.

* presentation is removed: ``\\dfrac``, ``\\left``/``\\right``, spacing commands, ``$``,
  a trailing period, a simple left-hand side (``x = 2`` is ``2``; ``y = 2`` is ``2`` too);
* **text-wrapped** letters and words (``\\text{E}``, ``\\textbf{(C)}``) are the letter/word;
  two different words are never equal (Math-Verify would read them as products of letters);
* **thousands**: ``1,000``, ``1{,}000``, ``10\\,000``, ``1 000``, a thin space; ``5, 600`` (comma
  and space) is a list; any other space between digits never glues them (``1 2`` is not 12);
* **mixed numbers**: ``1 1/2`` and ``1\\frac12`` are 3/2 (a proper fraction after a whole
  number; never 11/2);
* **scientific notation**: ``3.54e-07`` is ``3.54\\times10^{-7}`` (Math-Verify reads ``e`` as
  Euler's number);
* **times of day**: ``8:34 PM`` is ``20:34``; a time without AM/PM is 24-hour; two times are
  compared as times, never as ratios;
* **units**: a trailing ``\\text{ unit}`` or unit word, and degrees on a bare angle, are
  dropped; inside a trigonometric function degrees are converted (``\\sin(90^\\circ-x)`` is
  ``\\cos x``);
* **percent**: ``50\\%`` is 50; 0.5 is not 50 (the fraction is not the percentage asked for),
  but is ``50\\%`` when the ground truth itself carries the sign (Math-Verify's convention);
* **relations**: inequalities compare as relations (``x<1`` is ``-x>-1``, not ``x\\le 1``); a
  one-variable inequality against an interval compares as its solution set (``x\\ge 1`` is
  ``[1,\\infty)``); a number times an equation (``2(x=5)``) is wrong;
* **intervals vs tuples vs sets**: brackets must agree for an interval (``(0,1)`` is not
  ``[0,1)``); a point is ordered (``(3,5)`` is not ``(5,3)``); ``\\{..\\}`` sets and *bare*
  comma lists are unordered (convention: a bare list is "all the solutions");
  a tuple, interval, set or matrix is never a single number;
* **matrices vs nested lists**: ``\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}`` (or ``bmatrix``)
  is ``[[1,2],[3,4]]``, entry by entry;
* **complex numbers**: when both sides are expressions in the letter ``i`` alone, ``i`` is the
  imaginary unit (``i(2-i)`` is ``1+2i``);
* **rounding** (convention, Math-Verify's): a decimal within rounding at 6 places of the exact
  value is accepted (``0.333333`` for 1/3); fewer places are not (``0.333`` is wrong);
* **size**: an answer :func:`too_complex` for SymPy (too long, too deep, towers of powers,
  big numbers in nested exponents) is wrong unless identical to the ground truth.

Steps 1-2 (:func:`quick_grade`) never call SymPy and are cheap enough to run in the main
process; only undecided items go to :func:`full_grade`, which the worker pool runs with a hard
time and memory limit (:func:`rlscale.core.grading.grade_bounded` for one item from any code).
The fast path only decides when Math-Verify would decide the same way: near-misses involving
decimals (``0.333333`` vs ``1/3``) are left to Math-Verify.
"""

from __future__ import annotations

import functools
import logging
import math
import re
from fractions import Fraction

from rlscale.core.grading.expressions import LatexValue, TooLarge, evaluate_latex
from rlscale.core.grading.extraction import extract_answer
from rlscale.core.grading.normalize import (
    matrix_as_list,
    normalize_answer,
    relation_as_interval,
    symbolic_form,
)
from rlscale.core.grading.task import GraderConfig, GradeResult, GradeTask, MathOptions

MAX_SYMBOLIC_CHARS = 1000  # a final answer longer than this is compared as a string only
MAX_BRACE_DEPTH = 40


# --- fast path ---------------------------------------------------------------------------

_OPENERS = {"(": ")", "[": "]", "\\{": "\\}", "{": "}"}


def _split_top_level(text: str) -> list[str]:
    """Split on commas outside brackets/braces ("(1,2),3" -> ["(1,2)", "3"])."""
    parts, depth, start = [], 0, 0
    for index, char in enumerate(text):
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(text[start:index])
            start = index + 1
    parts.append(text[start:])
    return parts


def _structure(text: str) -> tuple[str, str, list[str]] | None:
    """``(open, close, items)`` for a bracketed or comma-separated answer, else None."""
    for opener in ("\\{", "(", "["):
        if text.startswith(opener):
            for closer in ("\\}", ")", "]"):
                if text.endswith(closer) and len(text) >= len(opener) + len(closer):
                    inner = text[len(opener):len(text) - len(closer)]
                    items = _split_top_level(inner)
                    if len(items) > 1 and _balanced(inner):
                        return opener, closer, items
    items = _split_top_level(text)
    if len(items) > 1:
        return "", "", items
    return None


def _balanced(text: str) -> bool:
    depth = 0
    for char in text:
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
            if depth < 0:
                return False
    return depth == 0


_HUGE = object()


def _value(text: str) -> LatexValue | object | None:
    try:
        return evaluate_latex(text)
    except TooLarge:
        return _HUGE


def _values_equal(gold: LatexValue, pred: LatexValue) -> bool | None:
    decimals = gold.float_literal or pred.float_literal
    if gold.exact and pred.exact:
        a, b = gold.values[0], pred.values[0]
        if a == b:
            return True
        if decimals and abs(a - b) < Fraction(1, 10**5):
            return None  # Math-Verify rounds decimals to 6 places: let it decide
        return False
    verdicts = []
    for a, b in zip(gold.values, pred.values, strict=False):
        a, b = float(a), float(b)
        scale = max(1.0, abs(a), abs(b))
        if math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12):
            verdicts.append(True)
        elif abs(a - b) > 1e-5 * scale:
            verdicts.append(False)
        else:
            verdicts.append(None)
    if len(gold.values) != len(pred.values):
        # one side has variables, the other not: equal only by accident at one point
        return False if False in verdicts or all(verdicts) else None
    if False in verdicts:
        return False
    if all(v is True for v in verdicts):
        return True
    return None


def _scalar_equal(gold: str, pred: str) -> bool | None:
    if gold == pred:
        return True
    gold_value, pred_value = _value(gold), _value(pred)
    if pred_value is _HUGE:
        # an astronomically large prediction; equal only to an identical (huge) ground truth
        return None if gold_value is _HUGE else False
    if gold_value is _HUGE or gold_value is None or pred_value is None:
        return None
    return _values_equal(gold_value, pred_value)  # type: ignore[arg-type]


_INTERVAL = re.compile(r"^\s*(?:\\left)?[(\[].*,.*(?:\\right)?[)\]]\s*$")
_SCALED_EQUATION = re.compile(r"^-?[\d.]+\*?\(.*=.*\)$")  # "2(x=5)": no equation at all
_CLOCK = re.compile(r"\d\d:[0-5]\d(?::[0-5]\d)?")  # normalize_answer's form of a time of day
_COMPOUND = ("\\cup", "\\pm", "\\begin{pmatrix}", "\\begin{bmatrix}", "\\begin{matrix}")
_WORD = re.compile(r"[A-Za-z]{2,}")


def _is_plain_number(text: str) -> bool:
    value = _value(text)
    return isinstance(value, LatexValue) and value.n_variables == 0


def fast_equal(gold: str, pred: str) -> bool | None:
    """Decide equivalence of two *normalised* answers without SymPy; None: undecided."""
    if gold == pred:
        return True
    if not gold or not pred:
        return None
    if _CLOCK.fullmatch(gold) and _CLOCK.fullmatch(pred):
        return False  # two different times of day (Math-Verify would read them as ratios)
    gold_structure, pred_structure = _structure(gold), _structure(pred)
    gold_compound = bool(gold_structure) or any(marker in gold for marker in _COMPOUND)
    if gold_compound and not pred_structure and _is_plain_number(pred):
        return False  # a tuple, interval, set, union or matrix is never a single number
    gold_word, pred_word = gold.strip("()"), pred.strip("()")
    if (_WORD.fullmatch(gold_word) and _WORD.fullmatch(pred_word)
            and sorted(gold_word.lower()) != sorted(pred_word.lower())):
        return False  # different words (Math-Verify reads words as products of letters)
    if gold_structure or pred_structure:
        if not (gold_structure and pred_structure):
            return None
        (g_open, g_close, g_items), (p_open, p_close, p_items) = gold_structure, pred_structure
        if (g_open, g_close) != (p_open, p_close) or len(g_items) != len(p_items):
            return None
        # items may be structures themselves (the rows of a matrix)
        verdicts = [fast_equal(g, p) for g, p in zip(g_items, p_items, strict=True)]
        return True if all(v is True for v in verdicts) else None
    return _scalar_equal(gold, pred)


@functools.lru_cache(maxsize=8192)
def _normalized(text: str) -> str:
    return matrix_as_list(normalize_answer(text))


MAX_POWERS = 40  # "^" signs in one answer
MAX_POWER_NESTING = 2  # braced exponents inside braced exponents: x^{y^{z}} is 2


def too_complex(text: str) -> bool:
    """Whether ``text`` is too large to hand to SymPy (checked before it ever sees it).

    Too long, braces nested too deep, too many powers, braced exponents nested more than
    :data:`MAX_POWER_NESTING` deep (``x^{y^{z}}`` is fine, ``9^{9^{9^{9}}}`` is not), or a number of 3+ digits inside a nested exponent
    (``2^{\\frac{1}{2^{1000}}}``: SymPy tries to build it exactly and grows past any memory).
    Linear in the length.
    """
    if len(text) > MAX_SYMBOLIC_CHARS or text.count("^") > MAX_POWERS:
        return True
    braces: list[bool] = []  # one entry per open brace: does it open an exponent?
    exponent_depth = digits = 0
    after_caret = False
    for char in text:
        if char == "{":
            braces.append(after_caret)
            exponent_depth += after_caret
            if len(braces) > MAX_BRACE_DEPTH or exponent_depth > MAX_POWER_NESTING:
                return True
        elif char == "}":
            if braces and braces.pop():
                exponent_depth -= 1
        if char.isdigit():
            digits += 1
            if digits >= 3 and exponent_depth + after_caret >= 2:
                return True
        else:
            digits = 0
        if char != " ":
            after_caret = char == "^"
    return False


def quick_grade(response: str, answer: str, options: MathOptions = MathOptions()) -> GradeResult | None:
    """Grade without SymPy when possible; None when Math-Verify must decide."""
    pred = extract_answer(response, options.fallbacks, options.split_thinking).text
    if pred is None:
        return GradeResult(0.0, None, "no_answer")
    gold_norm = _normalized(answer)
    pred_norm = (matrix_as_list(normalize_answer(pred)) if len(pred) <= 4 * MAX_SYMBOLIC_CHARS
                 else pred)
    if pred_norm != gold_norm and too_complex(pred_norm):
        # never hand absurd inputs to SymPy (they are not sensible answers), and never let
        # floating point call them equal (2^{2^{-1000}} is 1.0 in a float, yet not 1)
        return GradeResult.of(False, pred)
    if pred_norm != gold_norm and _SCALED_EQUATION.match(pred_norm):
        return GradeResult.of(False, pred)  # Math-Verify reads "2(x=5)" as the equation x=5
    verdict = fast_equal(gold_norm, pred_norm)
    return None if verdict is None else GradeResult.of(verdict, pred)


# --- Math-Verify (runs in a worker process) ----------------------------------------------


def _quiet_math_verify() -> None:
    # math-verify logs a warning per call when its signal-based timeout is disabled
    for name in ("math_verify", "math_verify.parser", "math_verify.grader", "latex2sympy2_extended"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


@functools.lru_cache(maxsize=4096)
def _parsed_gold(answer: str):
    from math_verify import parse

    text = answer.strip()
    if not (text.startswith("$") or text.startswith("\\(") or text.startswith("\\[")):
        text = f"${text}$"
    return parse(text, parsing_timeout=None)


def math_verify_equal(answer: str, pred: str) -> bool:
    """Math-Verify's verdict on ``pred`` (an extracted answer) against ``answer``.

    Both of Math-Verify's own signal-based timeouts are disabled (they do not work outside the
    main thread); the caller bounds the time, by running this in a worker it can kill.
    """
    from math_verify import parse, verify

    _quiet_math_verify()
    answer, pred = symbolic_form(answer), symbolic_form(pred)
    if _INTERVAL.match(answer):  # "x \ge 1" against "[1,\infty)": the same solution set
        pred = relation_as_interval(pred) or pred
    elif _INTERVAL.match(pred):
        answer = relation_as_interval(answer) or answer
    gold = _parsed_gold(answer)
    target = parse("\\boxed{" + pred + "}", parsing_timeout=None)
    if verify(gold, target, timeout_seconds=None):
        return True
    return _equal_as_complex(gold, target)


def _equal_as_complex(gold: list, target: list) -> bool:
    """Both sides are expressions in the letter ``i`` alone: read it as the imaginary unit.

    Math-Verify keeps ``i`` a symbol, so ``i(2-i)`` is not ``1+2i`` to it; with ``i^2 = -1``
    they are equal. Only exact symbolic equality counts (no numeric tolerance).
    """
    import sympy

    gold_exprs = [g for g in gold if isinstance(g, sympy.Expr)]
    target_exprs = [t for t in target if isinstance(t, sympy.Expr)]
    if not gold_exprs or not target_exprs:
        return False
    a, b = gold_exprs[0], target_exprs[0]
    symbols = a.free_symbols | b.free_symbols  # two parses may give two symbols named i
    if not symbols or any(getattr(symbol, "name", None) != "i" for symbol in symbols):
        return False
    unit = {symbol: sympy.I for symbol in symbols}
    return sympy.expand(a.subs(unit) - b.subs(unit)) == 0


def full_grade(response: str, answer: str, options: MathOptions = MathOptions()) -> GradeResult:
    """The complete ``math`` grade: :func:`quick_grade`, then Math-Verify if undecided."""
    quick = quick_grade(response, answer, options)
    if quick is not None:
        return quick
    pred = extract_answer(response, options.fallbacks, options.split_thinking).text
    assert pred is not None  # quick_grade decides no_answer itself
    return GradeResult.of(math_verify_equal(answer, pred), pred)


# --- the registry's entry points (see rlscale.core.grading.registry) ----------------------


def quick(task: GradeTask, config: GraderConfig) -> GradeResult | None:
    return quick_grade(task.response, task.answer, config.math_options)


def full(task: GradeTask, config: GraderConfig) -> GradeResult:
    return full_grade(task.response, task.answer, config.math_options)


def extract(task: GradeTask, config: GraderConfig) -> str | None:
    """The extracted answer alone (linear time): the ``pred`` of an item whose grade timed out."""
    options = config.math_options
    return extract_answer(task.response, options.fallbacks, options.split_thinking).text


def warm_up() -> None:
    """Import and exercise SymPy and Math-Verify once (a new worker, before its first item)."""
    math_verify_equal("\\frac{1}{2}", "0.5")
