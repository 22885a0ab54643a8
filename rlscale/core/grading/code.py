"""The ``code`` grader: run the response's program against the ground truth's tests.

The solution is the last fenced Python block of the response (text after the last ``</think>``;
a block left unclosed at the end of a truncated response counts), else the whole response. The
ground truth is the test program: a JSON object with a ``functional`` string (the paper's
HumanEval file: ``{"functional": "def check(candidate): ...\\ncheck(f)"}``), the same object
already parsed, or a bare Python test program. Solution then tests run in the sandbox of
:mod:`rlscale.runtime.sandbox` (separate process, resource limits, unprivileged uid when root,
no network, wall-clock limit).

Verdicts: ``correct`` (the test program ran to the end), ``wrong`` (an ``AssertionError``),
``error`` (any other exception, a syntax error, a signal, a ground truth with no usable test
program; ``details.reason`` says which), ``timeout`` (wall or CPU limit), ``no_answer`` (an
empty response). ``pred`` is the extracted solution, cut to 2000 characters.
"""

from __future__ import annotations

import json
import re

from rlscale.core.grading.extraction import after_thinking
from rlscale.core.grading.task import GraderConfig, GradeResult, GradeTask

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)```", re.S)
_OPEN_FENCE = re.compile(r"```[ \t]*(python3?|py)[ \t]*\n", re.I)
_PYTHON_TAGS = {"python", "python3", "py", ""}
PRED_CHARS = 2000


class GroundTruthError(ValueError):
    """A ground truth the grader cannot use (the reason is the message)."""


def extract_code(response: str) -> str | None:
    """The solution in ``response``: last fenced Python (or untagged) block, else the text.

    >>> extract_code("Here:\\n```python\\ndef f():\\n    return 1\\n```\\nDone.")
    'def f():\\n    return 1\\n'
    >>> extract_code("   ") is None
    True
    """
    text = after_thinking(response)
    blocks = [body for tag, body in _FENCE.findall(text) if tag.lower() in _PYTHON_TAGS]
    closed_end = 0
    for match in _FENCE.finditer(text):
        closed_end = match.end()
    opened = None
    for match in _OPEN_FENCE.finditer(text, closed_end):
        opened = match  # an unclosed block after the last closed one: a truncated response
    if opened is not None:
        return text[opened.end():]
    if blocks:
        return blocks[-1]
    return text if text.strip() else None


def program_from(gold: object) -> str:
    """The test program of a ground truth (see the module docstring); GroundTruthError if none."""
    value = gold
    if isinstance(gold, str):
        stripped = gold.lstrip()
        if not stripped:
            raise GroundTruthError("ground truth is empty")
        if stripped.startswith("{"):
            try:
                value = json.loads(gold)
            except ValueError as exc:
                raise GroundTruthError(f"ground truth is not valid JSON: {exc}") from None
        else:
            return gold
    if isinstance(value, dict):
        program = value.get("functional")
        if isinstance(program, str) and program.strip():
            return program
        raise GroundTruthError("ground truth has no 'functional' test program (keys: "
                               f"{', '.join(sorted(map(str, value))) or 'none'})")
    raise GroundTruthError(f"ground truth is a {type(value).__name__}, not a test program")


def grade(response: str, gold: object, limits=None) -> GradeResult:
    """Grade one response (runs a process: call it from a worker, not the main loop)."""
    from rlscale.runtime import sandbox

    try:
        tests = program_from(gold)
    except GroundTruthError as exc:
        return GradeResult(0.0, None, "error", {"reason": str(exc)})
    solution = extract_code(response)
    if solution is None:
        return GradeResult(0.0, None, "no_answer")
    pred = solution[:PRED_CHARS]
    result = sandbox.run_tests(solution, tests, limits or sandbox.Limits())
    verdict = {sandbox.PASSED: "correct", sandbox.FAILED: "wrong",
               sandbox.TIMEOUT: "timeout"}.get(result.outcome, "error")
    details = None if result.reason is None else {"reason": result.reason}
    return GradeResult(1.0 if verdict == "correct" else 0.0, pred, verdict, details)


def sandbox_limits(item_timeout: float | None):
    """Sandbox limits inside a worker's per-item timeout (so the sandbox, not the pool, ends
    a runaway solution and cleans up after it)."""
    from rlscale.runtime.sandbox import Limits

    if item_timeout is None:
        return Limits()
    wall = max(0.05, item_timeout * 0.8 - 0.05)
    return Limits(wall=wall, cpu=wall)


def full(task: GradeTask, config: GraderConfig) -> GradeResult:
    """The registry's entry point: :func:`grade` within the item's time limit."""
    return grade(task.response, task.answer, sandbox_limits(config.item_timeout))
