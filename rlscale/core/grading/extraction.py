"""Find the final answer in a model response.

Everything here is linear in the length of the response (one or two passes, no backtracking
regexes over the whole text), so it is safe to run in the main process on arbitrary,
possibly adversarial, model output.

Order used by the ``math`` grader (each fallback can be switched off):

1. keep only the text after the last ``</think>`` (reasoning models put drafts before it);
2. the content of the **last** ``\\boxed{...}`` / ``\\fbox{...}`` found by brace matching
   (also the ``\\boxed 5`` form without braces);
3. ``"the answer is ..."`` / ``"final answer: ..."``;
4. a GSM8K-style ``#### 42`` line;
5. the last number in the text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

THINK_END = "</think>"
BOX_COMMANDS = ("\\boxed", "\\fbox")

FALLBACKS = ("answer-is", "hashes", "last-number")
"""Names of the switchable fallbacks, in the order they are tried."""

# Bounded quantifiers only: these run on short tails of the text, never on the whole response.
_ANSWER_IS = re.compile(
    r"(?:final\s+answer|the\s+answer|answer)\s*(?:is|:|=)\s*:?\s*", re.IGNORECASE)
_HASHES = re.compile(r"####\s*(-?[\d,]*\.?\d+)")
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")
_TAIL_FOR_FALLBACKS = 4000  # characters searched by fallbacks 3-5 (answers come at the end)


@dataclass(frozen=True)
class Extraction:
    """An extracted answer: ``text`` (None when nothing was found) and ``method``."""

    text: str | None
    method: str | None  # "boxed", "answer-is", "hashes", "last-number" or None


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


def last_boxed(text: str, commands: tuple[str, ...] = BOX_COMMANDS) -> str | None:
    """Content of the last ``\\boxed{...}`` (or ``\\fbox``) in ``text``, stripped.

    Returns None when there is no box or the last box never closes (a truncated response).
    ``\\boxed 5`` (no braces) yields the following token up to whitespace or ``$``.
    """
    found = last_box_start(text, commands)
    if found is None:
        return None
    start, command = found
    index = start + len(command)
    while index < len(text) and text[index] in " \t":
        index += 1
    if index < len(text) and text[index] == "{":
        close = match_braces(text, index)
        if close is None:
            return None
        return text[index + 1:close].strip()
    if index > start + len(command):  # "\boxed 5": the token after the space
        end = index
        while end < len(text) and not text[end].isspace() and text[end] != "$":
            end += 1
        token = text[index:end].strip()
        return token or None
    return None


def _answer_is(tail: str) -> str | None:
    matches = list(_ANSWER_IS.finditer(tail))
    for match in reversed(matches):
        rest = tail[match.end():]
        if rest.startswith("$"):
            # "$...$" or "$$...$$": the math between the dollars
            stripped = rest.lstrip("$")
            close = stripped.find("$")
            candidate = stripped[:close] if close >= 0 else stripped.split("\n", 1)[0]
        elif rest.startswith("\\(") or rest.startswith("\\["):
            closer = "\\)" if rest.startswith("\\(") else "\\]"
            close = rest.find(closer, 2)
            candidate = rest[2:close] if close >= 0 else rest[2:].split("\n", 1)[0]
        else:
            candidate = rest.split("\n", 1)[0]
            # end of the sentence: a period followed by a space or the end of the line
            for stop in (". ", ".\t"):
                cut = candidate.find(stop)
                if cut >= 0:
                    candidate = candidate[:cut]
        candidate = candidate.strip().rstrip(".").strip()
        if candidate:
            return candidate
    return None


def _hashes(tail: str) -> str | None:
    matches = _HASHES.findall(tail)
    return matches[-1].replace(",", "") if matches else None


def _last_number(tail: str) -> str | None:
    last = None
    for match in _NUMBER.finditer(tail):
        last = match.group(0)
    if last is None:
        return None
    return last.replace(",", "") if re.fullmatch(r"-?\d{1,3}(,\d{3})+(\.\d+)?", last) else last


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
        raise ValueError(f"unknown fallback(s) {sorted(unknown)}; expected some of {FALLBACKS}")
    text = after_thinking(response) if split_thinking else response
    boxed = last_boxed(text)
    if boxed:
        return Extraction(boxed, "boxed")
    tail = text[-_TAIL_FOR_FALLBACKS:]
    for name, finder in (("answer-is", _answer_is), ("hashes", _hashes),
                         ("last-number", _last_number)):
        if name in fallbacks:
            found = finder(tail)
            if found:
                return Extraction(found, name)
    return Extraction(None, None)
