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
