"""The ``choice`` grader: the option letter of a multiple-choice answer (SuperGPQA).

The letter is looked for, after the last ``</think>``, in this order (the last match of each):

1. the last box, as the math grader finds it (:func:`~.extraction.last_boxed`):
   ``\\boxed{C}``, ``\\boxed{(C)}``, ``\\boxed{\\text{C}}``, ``\\boxed{C: 0.42g}``, ``\\fbox{C}``;
2. a phrase: "answer is (C)", "answer: C", "option C", "Answer: **C**";
3. a lone letter: the response (or its last line) is just ``C``, ``(C)``, ``C.`` or ``**C**``.

A letter counts only standing alone: the ``A`` of "A cat", "Apple" or "answer is Apparently"
is not an option. Letters are ``A``-``Z``; ``pred`` is the letter (None: none found, verdict
``no_answer``). A ground truth that is not one letter is ``verdict: error``.
"""

from __future__ import annotations

import re

from rlscale.core.grading.extraction import after_thinking, last_boxed
from rlscale.core.grading.task import GraderConfig, GradeResult, GradeTask

_BOX_LETTER = re.compile(r"^\s*(?:\\text\w*\{)?\s*[\(\[]?\s*([A-Z])\s*[\)\]]?\s*\}?\s*"
                         r"(?:$|[:.,)\s]\s*)")
_PHRASE = re.compile(r"(?:answer|option|choice)(?:\s+is|\s*:|\s+would\s+be|\s+should\s+be)?"
                     r"\s*(?:option\s+)?[\(\[\*\s]*([A-Z])(?![A-Za-z0-9])[\)\]\*]*", re.I)
_LONE = re.compile(r"^[\(\[\*\s]*([A-Z])[\)\]\*]*\.?\s*$")


def extract_letter(response: str) -> str | None:
    """The chosen option letter, or None.

    >>> extract_letter("so \\\\boxed{(C)}"), extract_letter("The answer is (b)."), extract_letter("A cat")
    ('C', 'B', None)
    """
    text = after_thinking(response)
    box = last_boxed(text)
    if box is not None:
        match = _BOX_LETTER.match(box)
        if match:
            return match.group(1)
    phrases = [m for m in _PHRASE.finditer(text) if _phrase_letter_ok(m)]
    if phrases:
        return phrases[-1].group(1).upper()
    stripped = text.strip()
    for candidate in (stripped, stripped.splitlines()[-1] if stripped else ""):
        match = _LONE.match(candidate)
        if match:
            return match.group(1)
    return None


def _phrase_letter_ok(match: re.Match) -> bool:
    # lower-case letters only count in brackets or emphasis ("answer is (b)"), never "answer is a"
    letter = match.group(1)
    if letter.isupper():
        return True
    before = match.string[match.start(1) - 1] if match.start(1) else ""
    return before in "([*"


def grade(response: str, gold: object) -> GradeResult:
    target = str(gold).strip().strip("()").strip().upper() if isinstance(gold, str) else None
    if target is None or not re.fullmatch(r"[A-Z]", target):
        return GradeResult(0.0, None, "error",
                           {"reason": f"ground truth {str(gold)[:40]!r} is not an option letter"})
    letter = extract_letter(response)
    if letter is None:
        return GradeResult(0.0, None, "no_answer")
    return GradeResult.of(letter == target, letter)


def full(task: GradeTask, config: GraderConfig) -> GradeResult:
    """The registry's entry point (cheap: also the in-process path)."""
    return grade(task.response, task.answer)
