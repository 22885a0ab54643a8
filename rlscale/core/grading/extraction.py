"""Find the final answer in a model response.

Everything here is linear in the length of the response (one or two passes, no backtracking
regexes over the whole text), so it is safe to run in the main process on arbitrary,
possibly adversarial, model output.

Priority order used by the ``math`` grader (the first step that finds something wins; steps
3-6 are the switchable *fallbacks*, :data:`FALLBACKS`, the ``fallbacks`` option):

1. keep only the text after the last ``</think>`` (reasoning models put drafts before it);
2. ``boxed``: the content of the **last** ``\\boxed{...}`` / ``\\fbox{...}``, found by brace
   matching (also the ``\\boxed 5`` form without braces; :func:`last_boxed`); a last box that
   never closes (a truncated response) counts as no box, and the fallbacks look on;
3. ``answer-is``: the last explicit final-answer phrase -- "the answer is", "final answer
   is", "Final Answer:", "**Answer:**", "Answer =" -- followed by a math span (taken whole)
   or else the rest of its sentence;
4. ``math-span``: the last LaTeX math span ``$...$``, ``$$...$$``, ``\\(...\\)``,
   ``\\[...\\]``, taken whole (``$[0,1)$`` is ``[0,1)``, not ``0,1``). A ``$...$`` pair
   holding prose (a word of three letters or more outside ``\\text{}`` and commands) is
   read as two dollar amounts, not math; escaped ``\\$`` never delimits;
5. ``hashes``: a GSM8K-style ``#### 42`` line;
6. ``last-number``: the last number standing on its own -- never one glued into a word
   (``AZYUK2A``, ``x2``, ``5th`` hold none); digit groups of three after ``,``, a space, a
   thin space or ``\\,`` are thousands (``1 000`` is 1000).

``pred`` in the output is exactly what was taken; :class:`Extraction` also names the step.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

THINK_END = "</think>"
BOX_COMMANDS = ("\\boxed", "\\fbox")

FALLBACKS = ("answer-is", "math-span", "hashes", "last-number")
"""Names of the switchable fallbacks, in the order they are tried."""

# Bounded quantifiers only: these run on short tails of the text, never on the whole response.
_ANSWER_IS = re.compile(
    r"\b(?:final\s+answer|the\s+answer|answer)(?:\s*\*\*)?\s*(?:is\b|:|=)(?:\s*\*\*)?\s*:?\s*",
    re.IGNORECASE)
_HASHES = re.compile(r"####\s*(-?[\d,]*\.?\d+)")
# thousands groups first, then plain numbers; never inside a word (no letter, digit, _ or .
# on either side: "AZYUK2A", "x2", "5th", "v1.2.3" hold no number)
_SEPARATOR = r"(?:,|\\,|\{,\}|[ \u2009\u202f\u00a0])"
_NUMBER = re.compile(
    r"(?<![\w.])(-?\d{1,3}(?:" + _SEPARATOR + r"\d{3})+(?:\.\d+)?|-?\d+(?:\.\d+)?|-?\.\d+)"
    r"(?![\w]|\.\d)")
_THOUSANDS_SEPARATOR = re.compile(_SEPARATOR)
_MATH_DELIMITER = re.compile(r"\\\$|\$\$|\$|\\\(|\\\)|\\\[|\\\]")
_CLOSERS = {"$$": "$$", "$": "$", "\\(": "\\)", "\\[": "\\]"}
_COMMAND_OR_TEXT = re.compile(r"\\(?:text|mbox|mathrm|textbf|operatorname)\s*\{[^{}]*\}|\\[A-Za-z]+")
_PROSE_WORD = re.compile(r"[A-Za-z]{3,}")
_TAIL_FOR_FALLBACKS = 4000  # characters searched by fallbacks 3-5 (answers come at the end)


@dataclass(frozen=True)
class Extraction:
    """An extracted answer: ``text`` (None when nothing was found) and ``method``."""

    text: str | None
    method: str | None  # "boxed", one of FALLBACKS, or None


def after_thinking(response: str) -> str:
    """The text after the last ``</think>``; the whole response when there is none."""
    cut = response.rfind(THINK_END)
    return response if cut < 0 else response[cut + len(THINK_END):]


def match_braces(text: str, open_index: int) -> int | None:
    """Index of the ``}`` closing the ``{`` at ``open_index``, or None if it never closes.

    Counts every brace, escaped or not (``\\{1,2\\}`` is balanced either way), like the
    MATH reference scorer does.
    """
    depth = 0
    for index in range(open_index, len(text)):
        char = text[index]
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return index
    return None


def last_box_start(text: str, commands: tuple[str, ...] = BOX_COMMANDS) -> tuple[int, str] | None:
    """Position and name of the last box command in ``text`` (the later of all ``commands``)."""
    best: tuple[int, str] | None = None
    for command in commands:
        start = text.rfind(command)
        while start >= 0:
            end = start + len(command)
            # "\boxed" must not be the prefix of a longer command name such as "\boxedsymbol"
            if end >= len(text) or not text[end].isalpha():
                break
            start = text.rfind(command, 0, start)
        if start >= 0 and (best is None or start > best[0]):
            best = (start, command)
    return best


def last_boxed(text: str, commands: tuple[str, ...] = BOX_COMMANDS, *, paper: bool = False,
               strip: bool = True) -> str | None:
    """Content of the last ``\\boxed{...}`` (or ``\\fbox``) in ``text``, stripped.

    The one box extractor (the graders and curation use it). The box is the later of the last
    occurrences of ``commands``, as a whole command name (``\\boxedsymbol`` is not one); its
    argument is brace-matched after optional whitespace, or, in the ``\\boxed 5`` form without
    braces, the token after the spaces up to whitespace or ``$``.

    A last box that never closes (a truncated response) gives None, not an earlier, closed
    box: the final answer was never written, and the earlier box is a draft it superseded (the
    paper's scorers read it the same way).

    ``paper=True``: find the box the way the paper's VeRL scorers do (:mod:`.paper_grader`
    must reproduce them): the last occurrence of the first of ``commands`` present at all
    (``\\boxed``, else ``\\fbox``), even as the prefix of a longer name, whose argument is the
    next ``{`` anywhere after it; a command may end in its brace (``"\\boxed{"``: only a box
    written without a space). ``strip=False``: the content as written.

    >>> last_boxed("\\\\boxed{1} and \\\\boxed{2}"), last_boxed("\\\\boxed{1} and \\\\boxed{2")
    ('2', None)
    >>> last_boxed("\\\\boxed{1} \\\\fbox{2}"), last_boxed("\\\\boxed{1} \\\\fbox{2}", paper=True)
    ('2', '1')
    """
    if paper:
        for command in commands:
            start = text.rfind(command)
            if start >= 0:
                break
        else:
            return None
        open_index = text.find("{", start)
        close = match_braces(text, open_index) if open_index >= 0 else None
        if close is None:
            return None
        content = text[open_index + 1:close]
        return content.strip() if strip else content
    found = last_box_start(text, commands)
    if found is None:
        return None
    start, command = found
    index = start + len(command)
    while index < len(text) and text[index].isspace():
        index += 1
    if index < len(text) and text[index] == "{":
        close = match_braces(text, index)
        if close is None:
            return None
        content = text[index + 1:close]
        return content.strip() if strip else content
    gap = text[start + len(command):index]
    if gap and gap.strip(" \t") == "":  # "\boxed 5": the token after the spaces
        end = index
        while end < len(text) and not text[end].isspace() and text[end] != "$":
            end += 1
        token = text[index:end].strip()
        return token or None
    return None


def math_spans(text: str) -> list[str]:
    """Contents of the complete LaTeX math spans in ``text``, in order (one linear pass).

    ``$$..$$``, ``$..$``, ``\\(..\\)``, ``\\[..\\]``; ``\\$`` is an escaped dollar. A
    ``$..$`` pair whose content reads as prose is taken to be two dollar amounts and skipped.
    """
    spans = []
    opener: str | None = None
    start = 0
    for match in _MATH_DELIMITER.finditer(text):
        token = match.group(0)
        if token == "\\$":
            continue
        if opener is None:
            if token in _CLOSERS:
                opener, start = token, match.end()
        elif token == _CLOSERS[opener]:
            content = text[start:match.start()].strip()
            if opener == "$" and _PROSE_WORD.search(_COMMAND_OR_TEXT.sub(" ", content)):
                # "costs $5 and $10": currency. The second dollar may open a real span.
                opener, start = "$", match.end()
                continue
            if content:
                spans.append(content)
            opener = None
    return spans


def _clean_candidate(candidate: str) -> str:
    candidate = candidate.strip()
    if candidate.startswith("**") and candidate.endswith("**"):
        candidate = candidate[2:-2]
    return candidate.strip().rstrip(".").strip()


def _answer_is(tail: str) -> str | None:
    matches = list(_ANSWER_IS.finditer(tail))
    for match in reversed(matches):
        rest = tail[match.end():]
        line = rest.split("\n", 1)[0]
        if rest[:1] == "$" or rest[:2] in ("\\(", "\\["):
            spans = math_spans(rest[:_TAIL_FOR_FALLBACKS])
            if spans:  # "the answer is $\frac13$": the span, whole
                return spans[0]
        candidate = line
        # end of the sentence: a period followed by a space or the end of the line
        for stop in (". ", ".\t"):
            cut = candidate.find(stop)
            if cut >= 0:
                candidate = candidate[:cut]
        if "$" in candidate or "\\(" in candidate:
            spans = math_spans(candidate)
            if spans:  # "the answer is therefore $5$"
                return spans[0]
        candidate = _clean_candidate(candidate.replace("$", ""))
        if candidate:
            return candidate
    return None


def _math_span(tail: str) -> str | None:
    spans = math_spans(tail)
    return spans[-1] if spans else None


def _hashes(tail: str) -> str | None:
    matches = _HASHES.findall(tail)
    return matches[-1].replace(",", "") if matches else None


def _last_number(tail: str) -> str | None:
    last = None
    for match in _NUMBER.finditer(tail):
        last = match.group(1)
    if last is None:
        return None
    return _THOUSANDS_SEPARATOR.sub("", last)


def extract_answer(response: str, fallbacks: tuple[str, ...] = FALLBACKS,
                   split_thinking: bool = True) -> Extraction:
    """Find the final answer of ``response`` (see the module docstring for the order).

    >>> extract_answer("so x = 3, hence \\\\boxed{\\\\frac{1}{2}}.")
    Extraction(text='\\\\frac{1}{2}', method='boxed')
    >>> extract_answer("The answer is 42.")
    Extraction(text='42', method='answer-is')
    >>> extract_answer("no digits here", fallbacks=())
    Extraction(text=None, method=None)
    """
    unknown = set(fallbacks) - set(FALLBACKS)
    if unknown:
        from rlscale.core.grading.task import GradingOptionError  # task imports this module

        raise GradingOptionError("fallbacks", f": unknown fallback(s) {', '.join(sorted(unknown))}; "
                                 f"expected some of {', '.join(FALLBACKS)}")
    text = after_thinking(response) if split_thinking else response
    boxed = last_boxed(text)
    if boxed:
        return Extraction(boxed, "boxed")
    tail = text[-_TAIL_FOR_FALLBACKS:]
    for name, finder in (("answer-is", _answer_is), ("math-span", _math_span),
                         ("hashes", _hashes), ("last-number", _last_number)):
        if name in fallbacks:
            found = finder(tail)
            if found:
                return Extraction(found, name)
    return Extraction(None, None)
