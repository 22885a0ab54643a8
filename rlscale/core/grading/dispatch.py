"""Grading many responses: cheap cases in-process, the rest in a time-bounded worker pool.

:func:`grade_stream` is what ``rlscale reward`` runs. For each item it first tries the grader's
quick path in the calling process (string and exact numeric comparison: microseconds, no
SymPy); only the items that need symbolic comparison are sent to a
:class:`~rlscale.runtime.pool.TimeoutPool`, where each one is limited to ``timeout``
seconds and a runaway worker is killed and replaced. Output order is input order, and at most
``window`` items are held at once, so memory stays bounded on endless streams.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from rlscale.core.grading import math_grader, paper_grader
from rlscale.core.grading.math_grader import GradeResult, MathOptions
from rlscale.runtime.pool import TIMED_OUT, TaskFailed, TimeoutPool, available_cores
from rlscale.core.grading.registry import GRADERS, NEEDS_WORKER, grade_domain, resolve

DEFAULT_TIMEOUT = 2.0  # seconds per item
DEFAULT_MEMORY_MB = 1024  # address space per worker process (RLIMIT_AS)


@dataclass(frozen=True)
class GradeTask:
    """One item to grade. ``data_source`` routes the ``paper`` grader."""

    response: str
    answer: str
    data_source: str | None = None


@dataclass(frozen=True)
class GraderConfig:
    grader: str = "math"
    math_options: MathOptions = field(default_factory=MathOptions)
    item_timeout: float | None = None  # set by Grader: the sandbox of ``code`` stays inside it

    def __post_init__(self) -> None:
        if self.grader not in GRADERS:
            raise ValueError(f"unknown grader {self.grader!r}; expected one of {GRADERS}")


def quick(task: GradeTask, config: GraderConfig) -> GradeResult | None:
    """The in-process fast path; None when the item needs the worker pool."""
    domain = resolve(config.grader, task.data_source)
    if domain not in ("math", "paper"):
        if domain in NEEDS_WORKER:
            return None
        return grade_domain(domain, task.response, task.answer, config.item_timeout)
    if config.grader == "math":
        return math_grader.quick_grade(task.response, task.answer, config.math_options)
    return paper_grader.quick_grade(task.response, task.answer, task.data_source)


def full(task: GradeTask, config: GraderConfig) -> GradeResult:
    """The complete grade (may run SymPy / Math-Verify: call it in a worker)."""
    domain = resolve(config.grader, task.data_source)
    if domain not in ("math", "paper"):
        return grade_domain(domain, task.response, task.answer, config.item_timeout)
    if config.grader == "math":
        return math_grader.full_grade(task.response, task.answer, config.math_options)
    return paper_grader.full_grade(task.response, task.answer, task.data_source)


def run_task(payload: tuple[GradeTask, GraderConfig]) -> GradeResult:
    """Worker entry point (module-level, so the pool can pickle it by name)."""
    task, config = payload
    return full(task, config)


class _CustomTask:
    """Worker entry point for an injected grading function (picklable when it is)."""

    __slots__ = ("function",)

    def __init__(self, function: Callable[[GradeTask, GraderConfig], GradeResult]):
        self.function = function

    def __call__(self, payload: tuple[GradeTask, GraderConfig]) -> GradeResult:
        task, config = payload
        return self.function(task, config)


def warm_up() -> None:
    """Import and exercise SymPy and Math-Verify once, before a worker takes tasks."""
    math_grader.math_verify_equal("\\frac{1}{2}", "0.5")
    paper_grader.dapo_normalize("\\frac{1}{2}")


def _from_pool(result: Any, task: GradeTask, config: GraderConfig) -> GradeResult:
    if isinstance(result, GradeResult):
        return result
    pred = None
    try:  # the extraction alone is cheap and linear: report what the model answered
        if config.grader == "math":
            from rlscale.core.grading.extraction import extract_answer

            opts = config.math_options
            pred = extract_answer(task.response, opts.fallbacks, opts.split_thinking).text
    except Exception:
        pred = None
    if result == TIMED_OUT:
        return GradeResult(0.0, pred, "timeout")
    if isinstance(result, TaskFailed):
        return GradeResult(0.0, pred, "error")
    return GradeResult(0.0, pred, "error")


class Grader:
    """Grade items one at a time or as a stream, owning a lazily started worker pool.

    ``workers``: processes for the slow path (0: all cores). ``timeout``: seconds per item.
    ``memory_mb``: address space per worker (``RLIMIT_AS``; None: uncapped); an item that
    needs more is ``verdict: error`` and its worker is replaced.
    ``grade_function``: a module-level ``(GradeTask, GraderConfig) -> GradeResult`` that the
    workers run instead of the configured grader; the in-process quick path is then skipped,
    so every item is graded by it under the same limits (tests inject functions that sleep or
    allocate on purpose; a custom scorer can reuse the bounded pool this way).
    ``prestart``: begin loading SymPy/Math-Verify in the fork server right away, in the
    background, instead of at the first item that needs them; ``prestart_after``: do so once a
    stream reaches that many items (short streams often never need the pool). Use as a
    context manager, or call :meth:`close`.
    """

    def __init__(self, config: GraderConfig = GraderConfig(), workers: int = 0,
                 timeout: float = DEFAULT_TIMEOUT, window: int | None = None,
                 prestart: bool = False, memory_mb: int | None = DEFAULT_MEMORY_MB,
                 prestart_after: int | None = 256,
                 grade_function: Callable[[GradeTask, GraderConfig], GradeResult] | None = None):
        if config.item_timeout is None:
            config = replace(config, item_timeout=timeout)
        self.config = config
        self.workers = workers if workers > 0 else available_cores()
        self.timeout = timeout
        self.window = window or max(256, 64 * self.workers)
        self.grade_function = grade_function
        task_function = run_task if grade_function is None else _CustomTask(grade_function)
        self.memory_mb = memory_mb
        self.pool = TimeoutPool(task_function, self.workers, timeout, initializer=warm_up,
                                memory_limit=None if memory_mb is None else memory_mb << 20)
        if prestart:
            self.pool.prepare()
        self.counts = {"quick": 0, "pool": 0}
        self.prestart_after = prestart_after

    def grade(self, task: GradeTask) -> GradeResult:
        """Grade one item (blocking, bounded by ``timeout``)."""
        return next(iter(self.stream([(None, task)])))[1]

    def stream(self, items: Iterable[tuple[Any, GradeTask]]) -> Iterator[tuple[Any, GradeResult]]:
        """Yield ``(key, result)`` for each ``(key, task)``, in input order."""
        held: dict[int, tuple[Any, GradeTask, GradeResult | None]] = {}
        next_out = 0

        def absorb(finished: list[tuple[int, Any]]) -> None:
            for index, result in finished:
                key, task, _ = held[index]
                held[index] = (key, task, _from_pool(result, task, self.config))

        def ready() -> Iterator[tuple[Any, GradeResult]]:
            nonlocal next_out
            while next_out in held and held[next_out][2] is not None:
                key, _, result = held.pop(next_out)
                next_out += 1
                yield key, result  # type: ignore[misc]

        for index, (key, task) in enumerate(items):
            if index == self.prestart_after:
                self.pool.prepare()  # a long stream will need the pool: warm it in the background
            try:
                result = quick(task, self.config) if self.grade_function is None else None
            except Exception:
                result = None  # the worker will redo it and report a real error if any
            if result is not None:
                self.counts["quick"] += 1
                held[index] = (key, task, result)
            else:
                self.counts["pool"] += 1
                held[index] = (key, task, None)
                self.pool.submit(index, (task, self.config))
            if self.pool.pending:
                absorb(self.pool.collect(wait=0.0))
            while len(held) >= self.window and self.pool.pending:
                absorb(self.pool.collect())
                yield from ready()
            yield from ready()
        while self.pool.pending:
            absorb(self.pool.collect())
            yield from ready()
        yield from ready()

    def close(self) -> None:
        self.pool.close()

    def __enter__(self) -> Grader:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
