"""String normalisation of LaTeX answers, for the ``math`` grader's fast path.

``normalize_answer`` maps the many ways of writing the same final answer onto one string, so
that the common cases (``\\dfrac{1}{2}`` vs ``\\frac{1}{2}``, ``5\\text{ cm}`` vs ``5``,
``1{,}000`` vs ``1000``, ``x = 5`` vs ``5``, ``90^\\circ`` vs ``90``) are decided by string
equality without any symbolic algebra. It only ever *removes presentation*; anything it cannot
normalise safely is left for the symbolic comparison.

``hendrycks_normalize`` is the classic MATH-dataset normaliser (Hendrycks et al. 2021, as used by
PRM800K and VeRL's ``prime_math``); the ``paper`` grader needs it bit-for-bit.
"""

from __future__ import annotations

import re

# Spacing and sizing commands that carry no meaning in a final answer.
_SPACING = ("\\!", "\\,", "\\;", "\\:", "\\quad", "\\qquad", "\\displaystyle", "\\textstyle",
            "\\left", "\\right", "\\bigl", "\\bigr", "\\Bigl", "\\Bigr", "\\big", "\\Big")
# "\left(" -> "(", but "\leftarrow" / "\rightarrow" stay intact
_SPACING_RE = re.compile("(?:" + "|".join(re.escape(c) for c in _SPACING) + ")(?![A-Za-z])")
_DEGREES = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|°|\\degree")
_TEXT_UNIT = re.compile(
    r"\\(?:text|mbox|mathrm|textrm|textnormal|operatorname)\s*\{\s*([A-Za-z][A-Za-z .]*)\}"
    r"(?:\s*\^\s*\{?[23]\}?)?\s*$")
_TEXT_WRAP = re.compile(r"\\(?:text|mbox|mathrm|textrm|textnormal|textbf|mathbf)\s*\{([^{}]*)\}")
_WHITESPACE = re.compile(r"\s+")
_THOUSANDS = re.compile(r"^-?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")
_SIMPLE_LHS = re.compile(r"^[A-Za-z](?:_\{?\w+\}?)?(?:\([A-Za-z]\))?\s*=(?!=)")
_UNIT_WORDS = re.compile(
    r"\s*(?:dollars?|cents?|units?|degrees?|cm|km|m|mm|meters?|inches|inch|feet|foot|ft|"
    r"miles?|mph|hours?|minutes?|seconds?|days?|weeks?|years?|pounds?|kg|g|sq\.?\s*units?)\.?$")


# "3.54e-07" / "2E5": scientific notation written the programmer's way (never "2e^x", "e3")
_E_NOTATION = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)[eE]([+-]?)0*(\d+)(?![\w.])")
# "1 1/2", "-2 \frac{3}{4}": a whole number, a space, a proper fraction (the whole answer)
_MIXED = re.compile(r"^(-?)(\d+)\s+(?:(\d+)/(\d+)|\\frac\s*\{(\d+)\}\s*\{(\d+)\})$")
# "8:34 PM", "20:34", "8:34:10 a.m." (the whole answer)
_TIME = re.compile(r"^(\d{1,2}):([0-5]\d)(?::([0-5]\d))?\s*(?:\\text\{\s*)?"
                   r"([AaPp])?\.?\s*(?:[Mm]\.?)?\s*\}?$")
_DIGIT_SPACE = re.compile(r"(?<=\d) (?=\d)")
_SPACED_THOUSANDS = re.compile(r"^-?\d{1,3}(?: \d{3})+(?:\.\d+)?$")
_MATRIX = re.compile(r"^\\begin\{([pbvB]?matrix)\}(.*)\\end\{\1\}$", re.DOTALL)


def scientific_to_latex(text: str) -> str:
    """``3.54e-07`` -> ``3.54\\times10^{-7}`` (so both spellings compare as one number)."""
    return _E_NOTATION.sub(lambda m: f"{m.group(1)}\\times10^{{{m.group(2).replace('+', '')}"
                           f"{m.group(3)}}}", text)


def mixed_number(text: str) -> str | None:
    """``1 1/2`` -> ``\\frac{3}{2}``; None unless ``text`` is a mixed number (proper fraction)."""
    match = _MIXED.match(text.strip())
    if match is None:
        return None
    sign, whole, numerator, denominator = (match.group(1), int(match.group(2)),
                                           int(match.group(3) or match.group(5)),
                                           int(match.group(4) or match.group(6)))
    if not 0 < numerator < denominator:
        return None  # "2 4/3" is not how anyone writes a mixed number: leave it alone
    return f"{sign}\\frac{{{whole * denominator + numerator}}}{{{denominator}}}"


def clock_time(text: str) -> str | None:
    """``8:34 PM`` -> ``20:34``, ``12:05 a.m.`` -> ``00:05``; None unless a time of day.

    A time without AM/PM is read as 24-hour (``8:34`` is morning, not ``20:34``).
    """
    match = _TIME.match(text.strip())
    if match is None:
        return None
    hours, minutes, seconds, half = match.groups()
    hour = int(hours)
    if half is not None:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if half in "Pp" else 0)
    elif hour > 24:
        return None
    return f"{hour:02d}:{minutes}" + (f":{seconds}" if seconds else "")


def matrix_rows(text: str) -> list[list[str]] | None:
    """Rows of ``\\begin{pmatrix}a&b\\\\c&d\\end{pmatrix}`` (also bmatrix, matrix, vmatrix,
    Bmatrix) or of a nested list ``[[a,b],[c,d]]`` with rows of equal length; else None."""
    text = text.strip()
    match = _MATRIX.match(text)
    if match is not None:
        if match.group(1) in ("vmatrix", "Bmatrix"):
            return None  # a determinant / a braced system: not a matrix value
        rows = [row.strip() for row in match.group(2).split("\\\\")]
        rows = [row for row in rows if row]
        cells = [[cell.strip() for cell in row.split("&")] for row in rows]
    elif text.startswith("[[") and text.endswith("]]") and "[" not in text[2:-2].replace(
            "],[", "").replace("], [", ""):
        cells = [[cell.strip() for cell in row.split(",")]
                 for row in re.split(r"\]\s*,\s*\[", text[2:-2])]
    else:
        return None
    if not cells or any(not all(row) for row in cells) or len({len(r) for r in cells}) != 1:
        return None
    return cells


def matrix_as_list(text: str) -> str:
    """A matrix written either way as ``[[a,b],[c,d]]`` (the fast path's canonical form)."""
    rows = matrix_rows(text)
    if rows is None:
        return text
    return "[" + ",".join("[" + ",".join(row) + "]" for row in rows) + "]"


def matrix_as_latex(text: str) -> str:
    """A matrix written either way as a ``pmatrix`` (the form Math-Verify reads as a matrix)."""
    rows = matrix_rows(text)
    if rows is None:
        return text
    return "\\begin{pmatrix}" + "\\\\".join("&".join(row) for row in rows) + "\\end{pmatrix}"


_TRIG = re.compile(r"\\(?:sin|cos|tan|cot|sec|csc)(?![A-Za-z])")
_DEGREE_NUMBER = re.compile(r"(\d+(?:\.\d+)?)\s*(?:\^\s*\{?\s*\\circ\s*\}?|°|\\degree)")


_LESS = {"<": "<", "\\lt": "<", "\\le": "<=", "\\leq": "<=", "\\leqslant": "<=", "≤": "<="}
_GREATER = {">": ">", "\\gt": ">", "\\ge": ">=", "\\geq": ">=", "\\geqslant": ">=", "≥": ">="}
_RELATION = "|".join(re.escape(op) for op in sorted({**_LESS, **_GREATER}, key=len, reverse=True))
_ONE_SIDED = re.compile(rf"^([A-Za-z])\s*({_RELATION})(?![A-Za-z])\s*([^<>=≤≥\\]*|[^<>=≤≥]*)$")
_TWO_SIDED = re.compile(rf"^([^<>=≤≥]+?)\s*({_RELATION})(?![A-Za-z])\s*([A-Za-z])\s*"
                        rf"({_RELATION})(?![A-Za-z])\s*([^<>=≤≥]+)$")


def relation_as_interval(text: str) -> str | None:
    """``x \\ge 1`` -> ``[1,\\infty)``, ``-1 < x \\le 2`` -> ``(-1,2]``; None otherwise.

    Only a single variable against constants (no letters on the other side); used when the
    other answer is an interval, so that the two spellings of one solution set compare.
    """
    text = strip_math_delimiters(text).strip()
    match = _TWO_SIDED.match(text)
    if match is not None:
        low, first, _, second, high = match.groups()
        if first in _LESS and second in _LESS and not re.search(r"[A-Za-z]", low + high):
            return (("[" if _LESS[first] == "<=" else "(") + low.strip() + "," + high.strip()
                    + ("]" if _LESS[second] == "<=" else ")"))
        return None
    match = _ONE_SIDED.match(text)
    if match is None:
        return None
    _, operator, bound = match.groups()
    bound = bound.strip()
    if not bound or re.search(r"[A-Za-z]", re.sub(r"\\(?:frac|sqrt|pi|dfrac)", "", bound)):
        return None
    if operator in _LESS:
        return "(-\\infty," + bound + ("]" if _LESS[operator] == "<=" else ")")
    return ("[" if _GREATER[operator] == ">=" else "(") + bound + ",\\infty)"


def symbolic_form(text: str) -> str:
    """The spelling of an answer handed to Math-Verify: the same value, in forms it reads right.

    Scientific notation as ``\\times10^{n}`` (it reads ``e`` as Euler's number), a mixed
    number as one fraction, a nested list as a ``pmatrix``, and degrees inside a trigonometric
    function as radians (``\\sin(90^\\circ-x)`` is ``\\cos x``; a bare ``90^\\circ`` stays 90).
    """
    text = strip_math_delimiters(text)
    text = scientific_to_latex(text)
    mixed = mixed_number(text)
    if mixed is not None:
        return mixed
    text = matrix_as_latex(text)
    if _TRIG.search(text):
        text = _DEGREE_NUMBER.sub(lambda m: f"\\frac{{{m.group(1)}\\pi}}{{180}}", text)
    return text


def strip_math_delimiters(text: str) -> str:
    """Remove surrounding ``$...$``, ``\\(...\\)``, ``\\[...\\]``."""
    text = text.strip()
    for left, right in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if text.startswith(left) and text.endswith(right) and len(text) >= len(left) + len(right):
            return text[len(left):len(text) - len(right)].strip()
    return text


def normalize_answer(answer: str) -> str:
    """Canonical string for a LaTeX/plain answer (presentation removed, meaning kept).

    >>> normalize_answer("\\\\dfrac{1}{2}")
    '\\\\frac{1}{2}'
    >>> normalize_answer("x = 1{,}000 \\\\text{ cm}.")
    '1000'
    >>> normalize_answer("\\\\left( 3, \\\\frac{\\\\pi}{2} \\\\right)")
    '(3,\\\\frac{\\\\pi}{2})'
    """
    # one space per whitespace run first: keeps every later regex linear in the length
    text = strip_math_delimiters(_WHITESPACE.sub(" ", answer))
    # (``\\`` stays: it separates matrix rows)
    text = text.replace("\n", " ").replace("\\$", "").replace("$", "")
    text = text.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    text = text.replace("\\%", "%")
    text = scientific_to_latex(text)
    mixed = mixed_number(text)
    if mixed is not None:
        return mixed
    time_of_day = clock_time(_TEXT_WRAP.sub(r"\1", text))
    if time_of_day is not None:
        return time_of_day
    if "\\" in text:
        text = re.sub(r",\\!\s*", "{,}", text)  # "11,\! 111" is a thousands separator
        text = _SPACING_RE.sub("", text)
    text = re.sub(r"(?<!\\)\\ ", " ", text).replace("~", " ")  # "\ " is a space, "\\ " is not
    text = _DEGREES.sub("", text)
    text = text.rstrip(" .")
    # drop a simple left-hand side: "x = 5" -> "5", "f(x) = 2x" -> "2x"
    if _SIMPLE_LHS.match(text) and text.count("=") == 1:
        text = text.split("=", 1)[1]
    # a unit at the end: "5 \text{ cm}", "5 \mbox{cm}^2"
    text = _TEXT_UNIT.sub("", text) if re.search(r"\d", _TEXT_UNIT.sub("", text)) else text
    text = _TEXT_WRAP.sub(r"\1", text)
    text = text.strip()
    if re.search(r"\d", text):
        head, tail = text[:-40], text[-40:]  # a unit is a short word at the very end
        text = head + _UNIT_WORDS.sub("", tail)
    # "1,000" and "1{,}000" are thousands; "5, 600" is a list of two numbers
    list_like = re.search(r",\s", text) is not None
    if _DIGIT_SPACE.search(text):
        # "1 000" is a thousand; any other space between digits ("2 4/3", "1 2") must not
        # glue them into one number: mark it, so only an identical answer matches
        text = (_DIGIT_SPACE.sub("", text) if _SPACED_THOUSANDS.match(text)
                else _DIGIT_SPACE.sub("\u2423", text))
    text = text.replace("{,}", ",").replace(" ", "")
    if not list_like and _THOUSANDS.match(text):
        text = text.replace(",", "")
    text = text.rstrip(".")
    return text


# --- the MATH (Hendrycks) normaliser, reproduced for the paper grader ------------------------


def _hendrycks_fix_fracs(text: str) -> str:
    # "\frac12" -> "\frac{1}{2}", "\frac1{72}" -> "\frac{1}{72}"; leave braced ones alone
    pieces = text.split("\\frac")
    out = pieces[0]
    for piece in pieces[1:]:
        out += "\\frac"
        if not piece:
            raise IndexError("dangling \\frac")  # the original fails here too
        if piece[0] == "{":
            out += piece
            continue
        if len(piece) < 2:
            return text
        first, second, rest = piece[0], piece[1], piece[2:]
        if second != "{":
            out += "{" + first + "}{" + second + "}" + rest
        else:
            out += "{" + first + "}" + second + rest
    return out


def _hendrycks_fix_slash(text: str) -> str:
    parts = text.split("/")
    if len(parts) != 2:
        return text
    try:
        numerator, denominator = int(parts[0]), int(parts[1])
    except ValueError:
        return text
    if text != f"{numerator}/{denominator}":
        return text
    return "\\frac{" + str(numerator) + "}{" + str(denominator) + "}"


def _hendrycks_right_units(text: str) -> str:
    # "\text{ " marks a unit on the right; more than one is an error in the original, which
    # makes normalize fall back to the unstripped answer
    if "\\text{ " not in text:
        return text
    parts = text.split("\\text{ ")
    if len(parts) != 2:
        raise ValueError("more than one unit")
    return parts[0]


def _hendrycks_fix_sqrt(text: str) -> str:
    if "\\sqrt" not in text:
        return text
    pieces = text.split("\\sqrt")
    out = pieces[0]
    for piece in pieces[1:]:
        if piece[:1] != "{":
            if not piece:
                raise ValueError("dangling \\sqrt")
            out += "\\sqrt{" + piece[0] + "}" + piece[1:]
        else:
            out += "\\sqrt" + piece
    return out


def _hendrycks_strip(text: str) -> str:
    text = text.replace("\n", "").replace("\\!", "").replace("\\\\", "\\")
    text = text.replace("tfrac", "frac").replace("dfrac", "frac")
    text = text.replace("\\left", "").replace("\\right", "")
    text = text.replace("^{\\circ}", "").replace("^\\circ", "")
    text = text.replace("\\$", "")
    text = _hendrycks_right_units(text)
    text = text.replace("\\%", "")
    text = text.replace(" .", " 0.").replace("{.", "{0.")
    if not text:
        return text
    if text[0] == ".":
        text = "0" + text
    sides = text.split("=")
    if len(sides) == 2 and len(sides[0]) <= 2:
        text = sides[1]
    text = _hendrycks_fix_sqrt(text)
    text = text.replace(" ", "")
    text = _hendrycks_fix_fracs(text)
    if text == "0.5":
        text = "\\frac{1}{2}"
    return _hendrycks_fix_slash(text)


def hendrycks_normalize(answer: str | None) -> str | None:
    """The MATH-dataset answer normaliser (``math_normalize.normalize_answer`` behaviour).

    Strips ``\\text{}`` wrappers, ``\\left``/``\\right``, degrees, ``\\$``, ``\\%``, right
    units ``\\text{ ...}``, spaces; ``tfrac``/``dfrac`` -> ``frac``; fixes ``\\frac12``,
    ``\\sqrt3``, ``a/b`` -> ``\\frac{a}{b}`` and ``0.5`` -> ``\\frac{1}{2}``; drops a leading
    ``k =`` when the left side has at most 2 characters. On an internal failure it returns the
    stripped input unchanged, as the original does.

    >>> hendrycks_normalize("x = 0.5")
    '\\\\frac{1}{2}'
    """
    if answer is None:
        return None
    answer = answer.strip()
    try:
        wrapped = re.search(r"^\\text\{(?P<text>.+?)\}$", answer)
        if wrapped is not None:
            answer = wrapped.group("text").strip()
        return _hendrycks_strip(answer)
    except (ValueError, IndexError):
        return answer
