"""The ``logic`` grader: a Zebra-puzzle solution grid against the ground-truth grid.

The answer is the content of the last ``<answer>...</answer>`` (after the last ``</think>``;
an unclosed last tag counts to the end). In it, the first ``{...}`` object (brackets matched
outside strings; text after it is ignored) is read as JSON, else as a Python literal, so single
quotes are accepted; no code is evaluated. The grid is ``{"header": [...], "rows": [[...], ...]}``.

Scoring: each ground-truth cell is compared with the prediction's cell in the same row and the
column of the same header name (the prediction's own column order is allowed; without a
header, the ground truth's order is assumed); cells compare as stripped, case-folded text
(``1`` equals ``"1"``). ``reward`` is 1 only when every cell matches and the prediction has the
same number of rows (the paper's binary reward); ``details.cell_accuracy`` is the fraction of
ground-truth cells matched. A ground truth that is not such a grid is ``verdict: error`` with
``details.reason``; a missing tag is ``no_answer``; an answer that is not a grid is ``wrong``.
"""

from __future__ import annotations

import ast
import json
import re

from rlscale.core.grading.extraction import after_thinking
from rlscale.core.grading.task import GraderConfig, GradeResult, GradeTask

MAX_ANSWER_CHARS = 100_000
_ANSWER = re.compile(r"<answer>(.*?)(?:</answer>|$)", re.S | re.I)


class GridError(ValueError):
    pass


def answer_text(response: str) -> str | None:
    """The content of the last ``<answer>`` tag (None: no tag)."""
    text = after_thinking(response)
    start = text.lower().rfind("<answer>")
    if start < 0:
        return None
    match = _ANSWER.match(text, start)
    return match.group(1) if match else None


def _object_span(text: str) -> str | None:
    """The first balanced ``{...}`` in ``text``, skipping brackets inside quoted strings."""
    start = text.find("{")
    if start < 0:
        return None
    depth, quote, escaped = 0, None, False
    for index in range(start, len(text)):
        char = text[index]
        if quote:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == quote:
                quote = None
        elif char in "\"'":
            quote = char
        elif char in "{[":
            depth += 1
        elif char in "}]":
            depth -= 1
            if depth == 0:
                return text[start:index + 1]
    return None


def parse_grid(value: object) -> tuple[list[str] | None, list[list[str]]]:
    """``(header or None, rows)`` as text from a dict or its JSON/literal text; GridError."""
    if isinstance(value, str):
        if len(value) > MAX_ANSWER_CHARS:
            raise GridError("answer too long")
        span = _object_span(value)
        if span is None:
            raise GridError("no {...} object")
        try:
            value = json.loads(span)
        except ValueError:
            try:
                value = ast.literal_eval(span)
            except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
                raise GridError("not JSON or a Python literal") from None
    if not isinstance(value, dict):
        raise GridError(f"a {type(value).__name__}, not an object")
    rows = value.get("rows")
    if not isinstance(rows, list) or not all(isinstance(row, list | tuple) for row in rows):
        raise GridError("'rows' is not a list of lists")
    header = value.get("header")
    if header is not None and not isinstance(header, list | tuple):
        raise GridError("'header' is not a list")
    text_rows = [[_cell(cell) for cell in row] for row in rows]
    return (None if header is None else [_cell(name) for name in header]), text_rows


def _cell(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip().casefold()


def grade(response: str, gold: object) -> GradeResult:
    if isinstance(gold, str):
        try:
            gold = json.loads(gold)
        except ValueError:
            pass
    try:
        gold_header, gold_rows = parse_grid(gold)
    except GridError as exc:
        return GradeResult(0.0, None, "error", {"reason": f"ground truth is not a grid: {exc}"})
    total = sum(len(row) for row in gold_rows)
    if total == 0:
        return GradeResult(0.0, None, "error", {"reason": "ground truth grid is empty"})
    if gold_header is not None and any(len(row) != len(gold_header) for row in gold_rows):
        return GradeResult(0.0, None, "error",
                           {"reason": "ground truth rows and header differ in length"})
    text = answer_text(response)
    if text is None:
        return GradeResult(0.0, None, "no_answer", {"cell_accuracy": 0.0})
    pred = text.strip()[:2000]
    try:
        header, rows = parse_grid(text)
    except GridError as exc:
        return GradeResult(0.0, pred, "wrong", {"cell_accuracy": 0.0,
                                                "reason": f"answer is not a grid: {exc}"})
    columns = list(range(max(len(row) for row in gold_rows)))
    if header is not None and gold_header is not None:
        where = {name: index for index, name in reversed(list(enumerate(header)))}
        columns = [where.get(name) for name in gold_header]
    matched = 0
    for row_index, gold_row in enumerate(gold_rows):
        row = rows[row_index] if row_index < len(rows) else []
        for col_index, cell in enumerate(gold_row):
            column = columns[col_index]
            matched += column is not None and column < len(row) and row[column] == cell
    accuracy = matched / total
    correct = matched == total and len(rows) == len(gold_rows)
    return GradeResult(1.0 if correct else 0.0, pred, "correct" if correct else "wrong",
                       {"cell_accuracy": accuracy})


def full(task: GradeTask, config: GraderConfig) -> GradeResult:
    """The registry's entry point (cheap: also the in-process path)."""
    return grade(task.response, task.answer)
