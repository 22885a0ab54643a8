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
concurrent calls on one setting are graded one at a time.
"""

from __future__ import annotations

import atexit
import threading
from typing import Any

from rlscale.core.grading.dispatch import (
    DEFAULT_MEMORY_MB,
    DEFAULT_TIMEOUT,
    Grader,
    GraderConfig,
    GradeTask,
)
from rlscale.core.grading.math_grader import GradeResult

_lock = threading.Lock()
_graders: dict[tuple, tuple[Grader, threading.Lock]] = {}


def answer_text(value: Any) -> str | None:
    """A ground truth as text: strings as they are, numbers as written (``3.0`` -> ``3``),
    bytes decoded (invalid UTF-8 replaced); None for anything else (no answer to compare)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, bool):
        return None  # True/False is not a math answer (and would read as 1/0)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, int | float):
        return str(value)
    return None


def _shared(config: GraderConfig, timeout: float, memory_mb: int | None):
    key = (config, float(timeout), memory_mb)
    with _lock:
        if key not in _graders:
            _graders[key] = (Grader(config, workers=1, timeout=timeout, memory_mb=memory_mb,
                                    prestart_after=None), threading.Lock())
        return _graders[key]


def grade_bounded(response: Any, answer: Any, grader: str = "math",
                  data_source: str | None = None, *, timeout: float = DEFAULT_TIMEOUT,
                  memory_mb: int | None = DEFAULT_MEMORY_MB,
                  config: GraderConfig | None = None) -> GradeResult:
    """Grade ``response`` against ``answer`` within ``timeout`` s and ``memory_mb`` MiB.

    ``grader``: ``"math"`` or ``"paper"`` (``data_source`` routes the paper grader), or pass a
    full :class:`GraderConfig` as ``config`` (e.g. with :class:`MathOptions`). Returns a
    :class:`GradeResult` (``reward``, ``pred``, ``verdict``) and never raises for bad input:
    a non-text response or answer is ``verdict: error``; an item past either limit is
    ``timeout`` or ``error``.

    >>> grade_bounded("so \\\\boxed{\\\\frac12}", "0.5").verdict
    'correct'
    """
    if not timeout > 0:
        raise ValueError(f"timeout must be > 0, got {timeout}")
    if config is None:
        config = GraderConfig(grader)
    if isinstance(response, bytes | bytearray):
        response = bytes(response).decode("utf-8", errors="replace")
    gold = answer_text(answer)
    if not isinstance(response, str) or gold is None:
        return GradeResult(0.0, None, "error")
    if data_source is not None and not isinstance(data_source, str):
        data_source = str(data_source)
    shared, lock = _shared(config, timeout, memory_mb)
    with lock:
        return shared.grade(GradeTask(response, gold, data_source))


@atexit.register
def close_all() -> None:
    """Stop every worker started by :func:`grade_bounded` (later calls start new ones)."""
    with _lock:
        for shared, lock in _graders.values():
            with lock:
                shared.close()
        _graders.clear()
