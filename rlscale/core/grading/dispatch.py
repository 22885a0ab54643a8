"""Grading many responses: cheap cases in-process, the rest in a time-bounded worker pool.

:class:`Grader` is what ``rlscale reward`` runs. For each item it first tries the quick path of
the item's grader (:mod:`.registry`) in the calling process (for ``math``: string and exact
numeric comparison, microseconds, no SymPy); only the items it leaves undecided are sent to a
:class:`~rlscale.runtime.pool.TimeoutPool`, where each one is limited to ``timeout``
seconds and a runaway worker is killed and replaced. Output order is input order, and at most
``window`` items are held at once, so memory stays bounded on endless streams.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from typing import Any

from rlscale.core.grading import registry
from rlscale.core.grading.task import GraderConfig, GradeResult, GradeTask
from rlscale.runtime.pool import TIMED_OUT, TimeoutPool, available_cores

DEFAULT_TIMEOUT = 2.0  # seconds per item
DEFAULT_MEMORY_MB = 1024  # address space per worker process (RLIMIT_AS)
# imported once by the fork server the workers are forked from (see warm_worker)
PRELOAD = ("rlscale.core.grading.warm_worker",)


def quick(task: GradeTask, config: GraderConfig) -> GradeResult | None:
    """The in-process fast path of the item's grader; None when it needs a worker."""
    spec = registry.resolve(config.grader, task.data_source)
    if spec.needs_worker:
        return None
    return spec.function(spec.quick)(task, config)


def full(task: GradeTask, config: GraderConfig) -> GradeResult:
    """The complete grade (may run SymPy, Math-Verify or a sandbox: call it in a worker)."""
    spec = registry.resolve(config.grader, task.data_source)
    return spec.function(spec.full)(task, config)


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
    """Run every registered grader's warm-up once, before a worker takes tasks."""
    for spec in registry.REGISTRY:
        warm = spec.function(spec.warm)
        if warm is not None:
            warm()


def _from_pool(result: Any, task: GradeTask, config: GraderConfig) -> GradeResult:
    if isinstance(result, GradeResult):
        return result
    pred = None
    try:  # the grader's cheap extraction alone: report what the model answered
        spec = registry.resolve(config.grader, task.data_source)
        extract = spec.function(spec.pred)
        if extract is not None:
            pred = extract(task, config)
    except Exception:
        pred = None
    # past the time limit: timeout; a TaskFailed (the grade raised, its worker crashed or ran
    # out of memory): error
    return GradeResult(0.0, pred, "timeout" if result == TIMED_OUT else "error")


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
                                memory_limit=None if memory_mb is None else memory_mb << 20,
                                preload=PRELOAD, name="grading worker")
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
