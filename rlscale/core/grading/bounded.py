"""One bounded grade from any code: :func:`grade_bounded` (time- and memory-limited).

Library code that grades one response at a time (the VeRL reward plug-in, a custom trainer, a
notebook) should call :func:`grade_bounded` rather than the graders' functions directly:
those run SymPy/Math-Verify in the calling process with no limit, and one pathological pair
can take minutes or tens of GB. Here the cheap cases are decided in the calling process
(linear-time extraction, size-checked arithmetic) and the rest by a worker process that is
killed at ``timeout`` seconds and capped at ``memory_mb`` of address space; a bounded item is
``verdict: timeout`` or ``error`` with reward 0, and the next call gets a fresh worker.

Workers are shared per (grader, timeout, memory_mb) setting, started on first need and kept
for later calls; :func:`close_all` stops them (also run at interpreter exit). Thread-safe:
concurrent calls on one setting are graded one at a time. The shared graders are process
state, so they are kept by :func:`rlscale.runtime.pool.shared`, not here.
"""

from __future__ import annotations

from typing import Any

from rlscale.core.grading.dispatch import (
    DEFAULT_MEMORY_MB,
    DEFAULT_TIMEOUT,
    Grader,
    GraderConfig,
    GradeTask,
)
from rlscale.core.grading.task import GradeResult, GradingOptionError, answer_text
from rlscale.runtime.pool import close_shared, shared

OWNER = "grade_bounded"  # whose pools these are, among the process's shared ones


def grade_bounded(response: Any, answer: Any, grader: str = "math",
                  data_source: str | None = None, *, timeout: float = DEFAULT_TIMEOUT,
                  memory_mb: int | None = DEFAULT_MEMORY_MB,
                  config: GraderConfig | None = None) -> GradeResult:
    """Grade ``response`` against ``answer`` within ``timeout`` s and ``memory_mb`` MiB.

    ``grader``: a name of the grader registry (``"math"``, ``"paper"``, whose routing reads
    ``data_source``, ...), or pass a full :class:`GraderConfig` as ``config`` (e.g. with
    :class:`~rlscale.core.grading.task.MathOptions`). Returns a :class:`GradeResult`
    (``reward``, ``pred``, ``verdict``) and never raises for bad input: a non-text response or
    answer is ``verdict: error``; an item past either limit is ``timeout`` or ``error``. Bad
    parameters (an unknown grader, a timeout that is not positive) raise an OptionError.

    >>> grade_bounded("so \\\\boxed{\\\\frac12}", "0.5").verdict
    'correct'
    """
    if not timeout > 0:
        raise GradingOptionError("timeout", f"must be > 0, got {timeout}")
    if config is None:
        config = GraderConfig(grader)
    if isinstance(response, bytes | bytearray):
        response = bytes(response).decode("utf-8", errors="replace")
    gold = answer_text(answer)
    if not isinstance(response, str) or gold is None:
        return GradeResult(0.0, None, "error")
    if data_source is not None and not isinstance(data_source, str):
        data_source = str(data_source)
    key = (config, float(timeout), memory_mb)

    def start() -> Grader:
        return Grader(config, workers=1, timeout=timeout, memory_mb=memory_mb,
                      prestart_after=None)

    with shared(OWNER, key, start) as grader:
        return grader.grade(GradeTask(response, gold, data_source))


def close_all() -> None:
    """Stop every worker started by :func:`grade_bounded` (later calls start new ones)."""
    close_shared(OWNER)
