"""The ``paper`` grader: the reward the paper's VeRL runs computed, quirks included.

Tan et al. 2025 trained and evaluated with the reward functions of their VeRL fork (the R1
repository, ``verl/utils/reward_score``), routed by ``data_source``
(paper-method.md §1.2.1):

* ``math*`` (training data, held-out set, MATH-500) -> :func:`naive_dapo`;
* ``aime*`` and ``math_dapo`` (AIME 2024, AMC 2023) -> :func:`math_dapo`;
* ``openai/gsm8k`` -> :func:`gsm8k`.

The behaviour is reproduced from the specification (§1.2.1 and the 23 reference cases of §6),
including what a careful grader would not do: the percent leniency (``0.5`` is accepted for
``50``), the relative tolerance 1e-4 (``1.0001`` for ``1``), the dead ``\\pi`` branch (a
typo'd keyword makes the fallback raise, so ``1.5707963`` is *not* accepted for
``\\frac{\\pi}{2}``), the last box winning, and Math-Verify run over the *whole* response.

Unlike the original, nothing here evaluates model text: SymPy expressions are built by
:func:`~rlscale.core.grading.expressions.to_sympy` (the expressions ``parse_expr`` would have
accepted, built without ``eval``), powers too large to compute count as "not equal", and no
``signal.alarm`` is used; the caller's worker pool bounds the time (the original's 10 s alarm
returned 0 as well). ``sympy.parsing.latex.parse_latex`` is not used: under math-verify 0.9's
ANTLR 4.13 runtime it raises ImportError in the reference environment, so that branch never
succeeded there either.
"""

from __future__ import annotations

import math
import re

from rlscale.core.grading.expressions import ParseError, TooLarge, to_sympy
from rlscale.core.grading.extraction import after_thinking, last_boxed
from rlscale.core.grading.math_grader import _quiet_math_verify
from rlscale.core.grading.normalize import hendrycks_normalize
from rlscale.core.grading.task import GraderConfig, GradeResult, GradeTask

SCORERS = ("naive_dapo", "math_dapo", "gsm8k")


def scorer_for(data_source: str | None) -> str | None:
    """The paper's scorer for a ``data_source`` (None: the paper has no math scorer for it).

    A record without a data source is graded like the paper's training and held-out data.

    >>> scorer_for("math__deepscaler_preview"), scorer_for("aime2024"), scorer_for("openai/gsm8k")
    ('naive_dapo', 'math_dapo', 'gsm8k')
    """
    if data_source is None or data_source.startswith("math"):
        return "math_dapo" if data_source == "math_dapo" else "naive_dapo"
    if data_source.startswith("aime"):
        return "math_dapo"
    if data_source == "openai/gsm8k":
        return "gsm8k"
    return None


# --- shared pieces ------------------------------------------------------------------------


def _box_content(text: str, command: str) -> str | None:
    """Content of the last ``command`` (e.g. ``\\boxed{``) in ``text``, as the paper's scorers
    find it (unstripped; a last box that never closes is none)."""
    return last_boxed(text, (command,), paper=True, strip=False)


def _math_verify_full(gold: str, text: str) -> bool:
    """``verify(parse(gold), parse(text))`` with Math-Verify's default extraction."""
    from math_verify import parse, verify

    _quiet_math_verify()
    return bool(verify(parse(gold, parsing_timeout=None), parse(text, parsing_timeout=None),
                       timeout_seconds=None))


# --- naive_dapo: grade_answer ------------------------------------------------------------

_UNIT_WORDS = ("degree", "cm", "centimeter", "meter", "mile", "second", "minute", "hour", "day",
               "week", "month", "year", "foot", "feet", "inch", "yard", "liter")
_UNIT_PATTERNS = [re.compile(unit + r"(es)?(s)? *(\^[0-9]+)?") for unit in _UNIT_WORDS]
_BAD_SUBSTRINGS = ("^{", "^(")
_BAD_PATTERNS = (re.compile(r"\^[0-9]+\^"), re.compile(r"\^[0-9][0-9]+"))
_TUPLE_CHARS = "()[]"
_FRACTION = re.compile(r"^-?[0-9]+.?/0*[1-9][0-9]*.?$")
_FORMATTED_COMMA = re.compile(r"(\d)(,)(\d\d\d)($|\D)")


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _is_int(value: float) -> bool:
    try:
        return abs(value - int(round(value))) <= 1e-7
    except (OverflowError, ValueError):
        return False


def _strip_formatted_commas(text: str) -> str:
    while True:
        updated = _FORMATTED_COMMA.sub(r"\1\3\4", text)
        if updated == text:
            return text
        text = updated


def _str_is_int(text: str) -> bool:
    try:
        value = float(_strip_formatted_commas(text))
    except ValueError:
        return False
    return _is_int(value)


def _latex_to_text(text: str) -> str:
    from pylatexenc import latex2text

    text = text.replace("\\tfrac", "\\frac").replace("\\dfrac", "\\frac")
    text = text.replace("\\frac", " \\frac")  # keeps mixed numbers apart
    text = latex2text.LatexNodes2Text().latex_to_text(text)
    for symbol, name in (("√", "sqrt"), ("π", "pi"), ("∞", "inf"), ("∪", "U"), ("·", "*"),
                         ("×", "*")):
        text = text.replace(symbol, name)
    return text.strip()


def dapo_normalize(text: str) -> str:
    """The second normaliser of ``grade_answer`` (lower-cased, units removed, LaTeX -> text)."""
    wrapped = re.search(r"^\\text\{(?P<text>.+?)\}$", text)
    if wrapped is not None:
        text = wrapped.group("text")
    text = text.replace("\\%", "%").replace("\\$", "$").replace("$", "").replace("%", "")
    text = text.replace(" or ", " , ").replace(" and ", " , ")
    text = text.replace("million", "*10^6").replace("billion", "*10^9")
    text = text.replace("trillion", "*10^12")
    for pattern in _UNIT_PATTERNS:
        text = pattern.sub("", text)
    text = re.sub(r"\^ *\\circ", "", text)
    if text and text[0] == "{" and text[-1] == "}":
        text = text[1:-1]
    text = re.sub(r",\\! *", "", text)
    if _is_float(text) and _is_int(float(text)):
        text = str(int(round(float(text))))
    if "\\" in text:
        try:
            text = _latex_to_text(text)
        except Exception:  # pylatexenc on malformed input: keep the text, as the original
            pass
    text = re.sub("- *", "-", text)
    text = re.sub("([0-9]) +([0-9])", r"\1+\2", text)  # "7 3/4" -> "7+3/4"
    text = text.lower()
    if _str_is_int(text):
        text = str(int(float(text.replace(",", ""))))
    return text


def _allow_sympy(expression: str) -> bool:
    letters = expression.replace("sqrt", "").replace("frac", "")
    if len({char for char in letters if char.isalpha()}) > 2:
        return False
    if any(bad in expression for bad in _BAD_SUBSTRINGS):
        return False
    return not any(pattern.search(expression) for pattern in _BAD_PATTERNS)


def _equal_under_sympy(gold: str, given: str) -> bool:
    import sympy

    expression = f"({gold})-({given})"
    if not _allow_sympy(expression):
        return False
    try:
        difference = to_sympy(expression.replace("^", "**"), implicit=True)
        return bool(sympy.simplify(difference) == 0)
    except (ParseError, TooLarge, TypeError, ValueError, ZeroDivisionError, AttributeError,
            RecursionError):
        return False


def _split_tuple(text: str) -> list[str]:
    text = _strip_formatted_commas(text)
    if not text:
        return []
    if (len(text) > 2 and text[0] in _TUPLE_CHARS and text[-1] in _TUPLE_CHARS
            and all(char not in text[1:-1] for char in _TUPLE_CHARS)):
        return [item.strip() for item in text[1:-1].split(",")]
    return [text]


def grade_answer(given: str, gold: str) -> bool:
    """``naive_dapo.grade_answer``: two string normalisations, then element-wise SymPy."""
    if hendrycks_normalize(gold) == hendrycks_normalize(given):
        return True
    gold_norm, given_norm = dapo_normalize(gold), dapo_normalize(given)
    if gold_norm == given_norm:
        return True
    if not given_norm:
        return False
    gold_items, given_items = _split_tuple(gold_norm), _split_tuple(given_norm)
    if len(gold_items) > 1 and (gold_norm[0] != given_norm[0] or gold_norm[-1] != given_norm[-1]):
        return False
    if len(gold_items) != len(given_items):
        return False
    for gold_item, given_item in zip(gold_items, given_items, strict=True):
        if _FRACTION.search(gold_item) and _FRACTION.search(given_item):
            equal = gold_item == given_item  # unreduced fractions must match exactly
        elif _str_is_int(gold_item) != _str_is_int(given_item):
            equal = False
        else:
            equal = _equal_under_sympy(gold_item, given_item)
        if not equal:
            return False
    return True


# --- naive_dapo: prime_math.math_equal ----------------------------------------------------


class _Raised(Exception):
    """The original raised inside math_equal; naive_dapo swallows it as "wrong"."""


def _prime_normalize(answer):
    if isinstance(answer, str) and re.match(r"\$\d+(\.\d+)?", answer):
        return answer[1:]
    if isinstance(answer, str) and (re.match(r"^\d+(\.\d+)?%$", answer)
                                    or re.match(r"^\d+(\.\d+)?\\%$", answer)):
        return answer.replace("\\%", "").replace("%", "")
    if isinstance(answer, str) and "_" in answer:  # "1010_2": a number in some base
        try:
            return int(float(answer.split("_")[0]))
        except (ValueError, OverflowError):
            raise _Raised from None
    return answer  # (\pi substitution: unreachable, see the module docstring)


def _as_number(value) -> float | None:
    text = str(value)
    try:
        if "{,}" in text:
            return float(text.replace("{,}", ""))
        return float(text.replace(",", ""))
    except ValueError:
        return None


def _format_intervals(prediction: str) -> str:
    for prefix, left, right in (("Interval(", "[", "]"), ("Interval.Ropen(", "[", ")"),
                                ("Interval.Lopen(", "(", "]"), ("Interval.open(", "(", ")")):
        if prediction.startswith(prefix) and prediction.endswith(")"):
            return left + prediction[len(prefix):-1] + right
    return prediction


def _symbolic_equal(a: str, b: str, tolerance: float) -> bool:
    import sympy

    def parsed(text: str):
        try:
            return to_sympy(text, implicit=False)
        except (ParseError, TooLarge, TypeError, ValueError, ZeroDivisionError, RecursionError):
            return None  # parse_expr failed (and parse_latex is unavailable)

    left, right = parsed(a), parsed(b)
    if left is None or right is None:
        return False
    try:
        if sympy.simplify(left - right) == 0:
            return True
    except (TypeError, ValueError, AttributeError, RecursionError, ZeroDivisionError):
        pass
    try:
        return math.isclose(float(sympy.N(left)), float(sympy.N(right)), rel_tol=tolerance)
    except (TypeError, ValueError, OverflowError):
        return False


def math_equal(prediction, reference, include_percentage: bool = True,
               tolerance: float = 1e-4) -> bool:
    """``prime_math.grader.math_equal``: strings, numbers (percent leniency), tuples, SymPy."""
    prediction = _prime_normalize(prediction)
    reference = _prime_normalize(reference)
    if isinstance(prediction, str) and len(prediction) > 1000:
        prediction = prediction[:1000]
    if isinstance(prediction, str) and isinstance(reference, str):
        if prediction.strip().lower() == reference.strip().lower():
            return True
        if prediction.replace(" ", "") == reference.replace(" ", ""):
            return True
    predicted_number, reference_number = _as_number(prediction), _as_number(reference)
    if predicted_number is not None and reference_number is not None:
        candidates = ([reference_number / 100, reference_number, reference_number * 100]
                      if include_percentage else [reference_number])
        return any(math.isclose(candidate, predicted_number, rel_tol=tolerance)
                   for candidate in candidates)
    if not prediction and prediction not in (0, False):
        return False
    reference, prediction = str(reference).strip(), str(prediction).strip()
    prediction = _format_intervals(prediction)
    pred_str, ref_str = prediction, reference
    if ((prediction.startswith("[") and prediction.endswith("]") and not reference.startswith("("))
            or (prediction.startswith("(") and prediction.endswith(")")
                and not reference.startswith("["))):
        pred_str, ref_str = pred_str.strip("[]()"), ref_str.strip("[]()")
    for char in "{}()":
        ref_str, pred_str = ref_str.replace(char, ""), pred_str.replace(char, "")
    if pred_str == ref_str:
        return True
    if (prediction and reference and prediction[0] in "([" and prediction[-1] in ")]"
            and prediction[0] == reference[0] and prediction[-1] == reference[-1]):
        pred_parts, ref_parts = prediction[1:-1].split(","), reference[1:-1].split(",")
        if len(pred_parts) == len(ref_parts) and all(
                math_equal(p, r, include_percentage, tolerance)
                for p, r in zip(pred_parts, ref_parts, strict=True)):
            return True
    if "," in prediction and "," in reference:
        pred_parts = [item.strip() for item in prediction.split(",")]
        ref_parts = [item.strip() for item in reference.split(",")]
        if len(pred_parts) == len(ref_parts):
            return all(math_equal(p, r, include_percentage, tolerance)
                       for p, r in zip(pred_parts, ref_parts, strict=True))
    if prediction.startswith("Point") and reference[:1] == "(" and reference[-1:] == ")":
        pred_parts = prediction[prediction.find("(") + 1:-1].split(",")
        ref_parts = reference[1:-1].split(",")
        if len(pred_parts) == len(ref_parts) and all(
                math_equal(p, r, include_percentage, tolerance)
                for p, r in zip(pred_parts, ref_parts, strict=True)):
            return True
    # (the matrix branches test for "\b" + "egin{pmatrix}" -- a backspace character -- and
    # never run on real text)
    return _symbolic_equal(prediction, reference, tolerance)


def naive_dapo(response: str, gold: str) -> GradeResult:
    """``naive_dapo.compute_score`` (paper-method.md §1.2.1 steps 1-6)."""
    text = after_thinking(response)
    boxed = naive_box(text)
    # an empty box counts as no box: the whole remaining text becomes the candidate
    candidate = boxed if boxed else text
    pred = boxed if boxed else None
    correct = grade_answer(candidate, gold)
    if not correct and "\\pi" not in candidate and "\\pi" not in gold:
        try:
            correct = math_equal(candidate, gold)
        except (_Raised, RecursionError):
            correct = False
    if not correct:
        correct = _math_verify_full(gold, response)
    return GradeResult.of(correct, pred)


def math_dapo(response: str, gold: str) -> GradeResult:
    """``math_dapo.compute_score``: strict box in the last 100 of the last 300 characters."""
    tail = response[-300:]
    boxed = _box_content(tail[-100:], "\\boxed{")
    if boxed is not None and boxed == gold:
        return GradeResult.of(True, boxed)
    return GradeResult.of(_math_verify_full(gold, tail), boxed)


_GSM8K_UNITS = re.compile(r"\s*[A-Za-z][A-Za-z ]*$")


def _gsm8k_number(text: str | None) -> str | None:
    if text is None:
        return None
    text = text.replace(",", "").replace("\\$", "").replace("$", "")
    text = text.replace("\\%", "").replace("%", "").strip()
    text = _GSM8K_UNITS.sub("", text).strip() if re.match(r"-?[\d.]", text) else text
    match = re.fullmatch(r"(-?\d+)\.0*", text)
    return match.group(1) if match else text


def gsm8k(response: str, gold: str) -> GradeResult:
    """``gsm8k.compute_score``: box, ``#### n`` or last number; normalised; then Math-Verify."""
    found = _box_content(response, "\\boxed{")
    if found is None:
        hashes = re.search(r"#### (\-?[0-9\.\,]+)", response)
        if hashes is not None:
            found = hashes.group(1)
    if found is None:
        for number in reversed(re.findall(r"(\-?[0-9\.\,]+)", response[-4000:])):
            if _gsm8k_number(number) not in ("", ".", "0."):
                found = number
                break
    pred = _gsm8k_number(found)
    if pred is not None and pred == _gsm8k_number(str(gold)):
        return GradeResult.of(True, pred)
    return GradeResult.of(_math_verify_full(str(gold), response), pred)


def quick_grade(response: str, gold: str, data_source: str | None) -> GradeResult | None:
    """The cheap first step of each scorer (string equality), run in the main process."""
    scorer = scorer_for(data_source)
    if scorer == "naive_dapo":
        text = after_thinking(response)
        if len(text) > 100_000:
            return None
        boxed = naive_box(text)
        if boxed and hendrycks_normalize(boxed) == hendrycks_normalize(gold):
            return GradeResult.of(True, boxed)
    elif scorer == "math_dapo":
        boxed = _box_content(response[-300:][-100:], "\\boxed{")
        if boxed is not None and boxed == gold:
            return GradeResult.of(True, boxed)
    return None


def naive_box(text: str) -> str | None:
    """naive_dapo's box: the last ``\\boxed`` (else the last ``\\fbox``), stripped."""
    return last_boxed(text, ("\\boxed", "\\fbox"), paper=True)


def full_grade(response: str, gold: str, data_source: str | None) -> GradeResult:
    """Grade one response the way the paper's runs did (see :func:`scorer_for`)."""
    scorer = scorer_for(data_source)
    if scorer == "naive_dapo":
        return naive_dapo(response, gold)
    if scorer == "math_dapo":
        return math_dapo(response, gold)
    if scorer == "gsm8k":
        return gsm8k(response, gold)
    raise ValueError(f"no paper scorer for data_source {data_source!r}")


# --- the registry's entry points (see rlscale.core.grading.registry) ----------------------


def quick(task: GradeTask, config: GraderConfig) -> GradeResult | None:
    return quick_grade(task.response, task.answer, task.data_source)


def full(task: GradeTask, config: GraderConfig) -> GradeResult:
    return full_grade(task.response, task.answer, task.data_source)


def warm_up() -> None:
    """Import and exercise pylatexenc once (a new worker, before its first item)."""
    dapo_normalize("\\frac{1}{2}")
