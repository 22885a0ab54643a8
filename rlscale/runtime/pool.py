"""A small process pool with a hard per-item time limit, and no signals in the workers.

``concurrent.futures.ProcessPoolExecutor`` cannot stop one runaway task (a SymPy
simplification of ``9^{9^{9^{9}}}`` never returns), and ``signal.alarm`` timeouts only work in
the main thread. Here every worker is a process with its own pipe; the parent waits on the
pipes with a deadline, and a worker that misses its deadline is killed and replaced. Its item
comes back as :data:`TIMED_OUT`; the other items are unaffected. With ``memory_limit`` each
worker's address space is capped (``RLIMIT_AS``): an allocation past it raises
``MemoryError`` in the worker, whose item comes back as a :class:`TaskFailed` of kind
:data:`OUT_OF_MEMORY`, and the worker is replaced (its heap may be fragmented or half-built).

Workers start lazily (nothing is spawned until the first task) with the ``forkserver`` method
where available: the server imports the caller's ``preload`` modules once, and each new or
replacement worker is forked from it in milliseconds, without inheriting the parent's threads or
open files.

:func:`shared` keeps long-lived pools (or anything closeable) per key for callers that grade
one item at a time from anywhere in a process; they are closed at interpreter exit.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import multiprocessing
import multiprocessing.connection
import os
import sys
import threading
import time
import types
from collections.abc import Callable, Hashable, Iterator, Sequence
from typing import Any

TIMED_OUT = "timeout"
CRASHED = "crashed"
OUT_OF_MEMORY = "memory"
READY = "ready"
STARTUP_LIMIT = 120.0  # seconds a new worker may take to import and warm up


class TaskFailed:
    """A task that raised (or whose worker died): ``kind`` and a one-line ``message``."""

    __slots__ = ("kind", "message")

    def __init__(self, kind: str, message: str):
        self.kind = kind
        self.message = message

    def __repr__(self) -> str:
        return f"TaskFailed({self.kind!r}, {self.message!r})"


def limit_address_space(limit_bytes: int) -> None:
    """Cap this process's address space (soft ``RLIMIT_AS``; no-op where unsupported)."""
    try:
        import resource

        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            limit_bytes = min(limit_bytes, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, hard))
    except (ImportError, ValueError, OSError):
        pass


PARENT_CHECK_INTERVAL = 1.0  # seconds between a worker's checks that its pool still exists


def _exit_with_parent(parent_pid: int) -> None:
    # A worker stuck in a runaway task never reads its pipe again: without this, a pool whose
    # process was killed (a crashed trainer, ^C) would leave it computing (or asleep) forever.
    while True:
        time.sleep(PARENT_CHECK_INTERVAL)
        try:
            os.kill(parent_pid, 0)
        except ProcessLookupError:
            os._exit(0)
        except PermissionError:
            pass  # exists (as another user): keep going


def _worker_main(connection, function: Callable[[Any], Any],
                 initializer: Callable[[], None] | None, memory_limit: int | None = None,
                 parent_pid: int | None = None, name: str = "worker") -> None:
    if parent_pid is not None:  # started before the memory cap: a thread reserves a stack
        threading.Thread(target=_exit_with_parent, args=(parent_pid,), daemon=True).start()
    if initializer is not None:
        try:
            initializer()
        except Exception:  # a broken warm-up shows up as a task error later
            pass
    if memory_limit is not None:  # after the warm-up: the limit is for the tasks
        limit_address_space(memory_limit)
    try:
        connection.send(READY)
    except (BrokenPipeError, OSError):
        return
    while True:
        try:
            message = connection.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        key, payload = message
        out_of_memory = False
        try:
            result: Any = function(payload)
        except MemoryError:
            out_of_memory = True
            result = TaskFailed(OUT_OF_MEMORY, f"{name} ran out of memory")
        except Exception as exc:  # report, keep serving
            result = TaskFailed("error", f"{type(exc).__name__}: {exc}"[:300])
        try:
            connection.send((key, result))
        except (BrokenPipeError, OSError, MemoryError):
            return
        if out_of_memory:
            return  # the parent replaces this worker


def default_context(preload: Sequence[str] = ()):
    """``forkserver`` where available (else ``spawn``), its server preloading ``preload``.

    There is one fork server per process (multiprocessing's): it preloads the modules last
    named before it starts, so a pool that finds it running gets the preload of an earlier one
    (its workers then warm up through their ``initializer`` alone).
    """
    methods = multiprocessing.get_all_start_methods()
    if "forkserver" in methods:
        context = multiprocessing.get_context("forkserver")
        if preload:
            context.set_forkserver_preload(list(preload))
        return context
    return multiprocessing.get_context("spawn")


_main_swap_lock = threading.Lock()


@contextlib.contextmanager
def _main_module_hidden():
    """Start children without re-running the parent's ``__main__``.

    A spawn or forkserver child first re-runs the parent's main module (as ``__mp_main__``),
    from ``sys.modules["__main__"].__spec__`` or its ``__file__`` (multiprocessing.spawn's
    preparation data; this is why scripts need ``if __name__ == "__main__"``). Our workers run
    module-level functions only and never need it, and re-running it would be wrong or costly:
    a trainer's script without that guard would run again in every worker, and ``python -m
    rlscale`` would import the whole CLI into each one. multiprocessing offers no switch for
    it, so while a child starts, ``__main__`` is an empty module (no spec, no file), and the
    child has no main to re-run. The swap is held under a lock, so pools starting children
    from several threads cannot interleave their swaps (the second would save the empty module
    and put it back last); it lasts only while a child is started, though any other thread that
    imports ``__main__`` in that moment sees the empty module.
    """
    with _main_swap_lock:
        saved = sys.modules.get("__main__")
        sys.modules["__main__"] = types.ModuleType("__main__")
        try:
            yield
        finally:
            if saved is not None:
                sys.modules["__main__"] = saved


class _Worker:
    __slots__ = ("process", "connection", "key", "deadline")

    def __init__(self, context, function, initializer, memory_limit=None, name="worker"):
        parent_end, child_end = context.Pipe(duplex=True)
        self.process = context.Process(
            target=_worker_main,
            args=(child_end, function, initializer, memory_limit, os.getpid(), name),
            daemon=True)
        with _main_module_hidden():
            self.process.start()
        child_end.close()
        self.connection = parent_end
        self.key: Any = None
        self.deadline = time.monotonic() + STARTUP_LIMIT

    def kill(self) -> None:
        try:
            self.process.kill()
        except (OSError, ValueError, AttributeError):
            pass
        self.process.join(timeout=5)
        self.connection.close()


class TimeoutPool:
    """Run ``function(payload)`` in worker processes, each call limited to ``timeout`` s.

    Use :meth:`submit` then :meth:`collect`; results arrive as ``(key, result)`` in completion
    order, where ``result`` is the function's return value, :data:`TIMED_OUT`, or a
    :class:`TaskFailed`. ``memory_limit``: bytes of address space per worker (None: no cap).
    ``initializer``: run by each worker before its first task. ``preload``: modules the fork
    server imports once, before it forks any worker (see :func:`default_context`). ``name``:
    what a worker is called in messages. :meth:`close` (or the context manager) stops every
    worker.
    """

    def __init__(self, function: Callable[[Any], Any], workers: int, timeout: float,
                 context=None, initializer: Callable[[], None] | None = None,
                 memory_limit: int | None = None, preload: Sequence[str] = (),
                 name: str = "worker"):
        if workers < 1:
            raise ValueError("workers must be >= 1")
        if not timeout > 0:
            raise ValueError("timeout must be > 0")
        if memory_limit is not None and memory_limit < 1:
            raise ValueError("memory_limit must be >= 1 byte")
        self.memory_limit = memory_limit
        self.function = function
        self.n_workers = workers
        self.timeout = float(timeout)
        self.context = context
        self.initializer = initializer
        self.preload = tuple(preload)
        self.name = name
        self.starting: list[_Worker] = []
        self.idle: list[_Worker] = []
        self.busy: list[_Worker] = []
        self.queue: collections.deque[tuple[Any, Any]] = collections.deque()
        self.n_started = 0
        self.n_killed = 0

    # pool state
    @property
    def pending(self) -> int:
        """Tasks submitted and not yet collected."""
        return len(self.queue) + len(self.busy)

    def prepare(self) -> None:
        """Start the fork server now (in the background), so the first worker starts fast."""
        if self.context is None:
            self.context = default_context(self.preload)
        if self.context.get_start_method() == "forkserver":
            from multiprocessing import forkserver

            with _main_module_hidden():
                forkserver.ensure_running()

    def submit(self, key: Any, payload: Any) -> None:
        self.queue.append((key, payload))
        self._dispatch()

    def _new_worker(self) -> _Worker:
        if self.context is None:
            self.context = default_context(self.preload)
        self.n_started += 1
        return _Worker(self.context, self.function, self.initializer, self.memory_limit,
                       self.name)

    def _dispatch(self) -> None:
        # start workers lazily: only as many as there is queued work for
        n_alive = len(self.starting) + len(self.idle) + len(self.busy)
        while n_alive < self.n_workers and len(self.queue) > len(self.idle) + len(self.starting):
            self.starting.append(self._new_worker())
            n_alive += 1
        while self.queue and self.idle:
            worker = self.idle.pop()
            key, payload = self.queue.popleft()
            try:
                worker.connection.send((key, payload))
            except (BrokenPipeError, OSError):
                worker.kill()
                self.queue.appendleft((key, payload))
                continue
            worker.key = key
            worker.deadline = time.monotonic() + self.timeout
            self.busy.append(worker)

    def collect(self, wait: float | None = None) -> list[tuple[Any, Any]]:
        """Results finished so far; blocks up to ``wait`` s (None: until at least one)."""
        results: list[tuple[Any, Any]] = []
        give_up = None if wait is None else time.monotonic() + wait
        while not results and (self.busy or self.starting):
            now = time.monotonic()
            next_deadline = min(worker.deadline for worker in self.busy + self.starting)
            limit = next_deadline - now
            if give_up is not None:
                limit = min(limit, give_up - now)
            ready = multiprocessing.connection.wait(
                [worker.connection for worker in self.busy + self.starting],
                timeout=max(0.0, limit))
            ready_set = set(ready)
            self._check_starting(ready_set)
            still_busy = []
            for worker in self.busy:
                if worker.connection in ready_set:
                    try:
                        key, result = worker.connection.recv()
                    except (EOFError, OSError):
                        code = worker.process.exitcode
                        results.append((worker.key, TaskFailed(
                            CRASHED, f"{self.name} died (exit code {code})")))
                        worker.kill()
                        continue
                    results.append((key, result))
                    worker.key = None
                    if isinstance(result, TaskFailed) and result.kind == OUT_OF_MEMORY:
                        worker.kill()  # it exits by itself; reap it and start a fresh one
                    else:
                        self.idle.append(worker)
                elif time.monotonic() >= worker.deadline:
                    results.append((worker.key, TIMED_OUT))
                    self.n_killed += 1
                    worker.kill()
                else:
                    still_busy.append(worker)
            self.busy = still_busy
            self._dispatch()
            if give_up is not None and time.monotonic() >= give_up:
                break
        return results

    def _check_starting(self, ready_set: set) -> None:
        still_starting = []
        for worker in self.starting:
            if worker.connection in ready_set:
                try:
                    message = worker.connection.recv()
                except (EOFError, OSError):
                    message = None
                if message != READY:
                    worker.kill()
                    self.close()
                    raise RuntimeError(f"a {self.name} failed to start")
                worker.deadline = 0.0
                self.idle.append(worker)
            elif time.monotonic() >= worker.deadline:
                worker.kill()
                self.close()
                raise RuntimeError(f"a {self.name} did not start within {STARTUP_LIMIT:.0f} s")
            else:
                still_starting.append(worker)
        self.starting = still_starting

    def close(self) -> None:
        for worker in self.starting:
            worker.kill()
        self.starting = []
        for worker in self.idle:
            try:
                worker.connection.send(None)
            except (BrokenPipeError, OSError):
                pass
        for worker in self.idle + self.busy:
            worker.kill()
        self.idle, self.busy = [], []
        self.queue.clear()

    def __enter__(self) -> TimeoutPool:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


# --- long-lived pools shared by a whole process ---------------------------------------------

_shared_lock = threading.Lock()
_shared: dict[tuple[str, Hashable], tuple[Any, threading.Lock]] = {}


@contextlib.contextmanager
def shared(owner: str, key: Hashable, factory: Callable[[], Any]) -> Iterator[Any]:
    """Use ``owner``'s long-lived object for ``key`` alone, building it with ``factory()`` on
    first use and keeping it for later calls (it must have a ``close()``).

    For callers that need a pool from anywhere in a process, one item at a time (a reward
    function called per response by a trainer, from any of its threads): starting workers per
    call would cost more than the work. Calls for one key run one at a time; calls for other
    keys run beside them. :func:`close_shared` ends them (also run at interpreter exit).
    """
    with _shared_lock:
        entry = _shared.get((owner, key))
        if entry is None:
            entry = _shared[(owner, key)] = (factory(), threading.Lock())
    value, lock = entry
    with lock:
        yield value


@atexit.register
def close_shared(owner: str | None = None) -> None:
    """Close the shared objects of ``owner`` (None: everyone's); later calls build new ones."""
    with _shared_lock:
        chosen = [k for k in _shared if owner is None or k[0] == owner]
        entries = [_shared.pop(k) for k in chosen]
    for value, lock in entries:
        with lock:
            value.close()
