"""The time-bounded worker pool and the ordered, bounded-memory grading stream."""

from __future__ import annotations

import os
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlscale.core.grading import Grader, GraderConfig, GradeResult, GradeTask, dispatch
from rlscale.runtime.pool import TIMED_OUT, TaskFailed, TimeoutPool


def square_or_misbehave(payload):
    """Pool test task: a number is squared; 'hang', 'die' and 'raise' misbehave."""
    if payload == "hang":
        while True:
            time.sleep(0.05)
    if payload == "die":
        os._exit(3)
    if payload == "raise":
        raise ValueError("bad payload")
    return payload * payload


def collect_all(pool: TimeoutPool) -> dict:
    results = {}
    while pool.pending:
        results.update(pool.collect())
    return results


def test_pool_results_timeouts_and_crashes():
    with TimeoutPool(square_or_misbehave, workers=2, timeout=2.0) as pool:
        for key, payload in enumerate([3, "hang", 4, "die", 5, "raise", 6]):
            pool.submit(key, payload)
        results = collect_all(pool)
        assert results[0] == 9 and results[2] == 16 and results[4] == 25 and results[6] == 36
        assert results[1] == TIMED_OUT
        assert isinstance(results[3], TaskFailed) and results[3].kind == "crashed"
        assert isinstance(results[5], TaskFailed) and "ValueError: bad payload" in results[5].message
        assert pool.n_killed == 1
        # the pool keeps working after replacing the killed and crashed workers
        pool.submit("again", 7)
        assert collect_all(pool) == {"again": 49}


def test_pool_starts_workers_lazily():
    pool = TimeoutPool(square_or_misbehave, workers=4, timeout=5)
    assert pool.n_started == 0
    pool.submit(0, 2)
    assert collect_all(pool) == {0: 4}
    assert pool.n_started == 1  # one queued task needs one worker
    pool.close()


def test_pool_rejects_bad_settings():
    with pytest.raises(ValueError):
        TimeoutPool(square_or_misbehave, workers=0, timeout=1)
    with pytest.raises(ValueError):
        TimeoutPool(square_or_misbehave, workers=1, timeout=0)


def grade_or_hang(task: GradeTask, config: GraderConfig):
    """Injected grading function: a response holding "<hang>" sleeps far past any timeout on
    purpose; every other item gets the quick path's verdict (microseconds, no SymPy), so no
    outcome depends on how fast the machine is."""
    if "<hang>" in task.response:
        time.sleep(3600)
    result = dispatch.quick(task, config)
    if result is None:
        raise ValueError("test item needs the slow path")
    return result


def test_grader_stream_keeps_order_and_survives_a_hang():
    tasks = [GradeTask("\\boxed{1}", "1"), GradeTask("<hang> so \\boxed{x^{x^{x}}}", "7"),
             GradeTask("\\boxed{\\frac12}", "0.5"), GradeTask("nothing", "3"),
             GradeTask("\\boxed{2}", "1")]
    # the limit is generous for the quick items even on a loaded machine; only the hang hits it
    with Grader(workers=1, timeout=2.0, window=2, grade_function=grade_or_hang) as grader:
        out = list(grader.stream(enumerate(tasks)))
        assert grader.pool.n_killed == 1  # the hung worker was killed and replaced
        assert grader.counts == {"quick": 0, "pool": 5}  # an injected function grades all
    assert [key for key, _ in out] == [0, 1, 2, 3, 4]
    assert [result.verdict for _, result in out] == ["correct", "timeout", "correct",
                                                     "no_answer", "wrong"]
    assert out[1][1] == GradeResult(0.0, "x^{x^{x}}", "timeout")  # still reports its answer


@settings(max_examples=15, deadline=None)
@given(st.lists(st.tuples(st.integers(-50, 50), st.integers(-50, 50),
                          st.sampled_from(["box", "hash", "none"])), max_size=40),
       st.integers(1, 8))
def test_every_input_yields_one_output_in_order(items, window):
    def response(value, style):
        return {"box": f"so \\boxed{{{value}}}", "hash": f"#### {value}", "none": "hmm"}[style]

    tasks = [(i, GradeTask(response(a, style), str(b))) for i, (a, b, style) in enumerate(items)]
    with Grader(workers=1, timeout=5, window=window, prestart=False) as grader:
        out = list(grader.stream(tasks))
    assert [key for key, _ in out] == list(range(len(items)))
    for (a, b, style), (_, result) in zip(items, out, strict=True):
        expected = "no_answer" if style == "none" else ("correct" if a == b else "wrong")
        assert result.verdict == expected


def test_paper_grader_through_the_pool():
    config = GraderConfig("paper")
    tasks = [GradeTask("\\boxed{2/4}", "\\frac{1}{2}", "math__math"),       # math_verify step
             GradeTask("\\boxed{1.5707963}", "\\frac{\\pi}{2}", "math__math"),  # dead pi branch
             GradeTask("\\boxed{204.0}", "204", "aime2024")]
    with Grader(config, workers=1, timeout=60) as grader:  # real SymPy: never the limit
        rewards = [result.reward for _, result in grader.stream(enumerate(tasks))]
    assert rewards == [1.0, 0.0, 1.0]


def allocate_or_square(payload):
    """Pool test task: 'allocate' asks for 8 GiB at once (refused under a 512 MiB cap)."""
    if payload == "allocate":
        return len(bytearray(8 << 30))
    return payload * payload


def test_pool_memory_limit_fails_the_item_and_replaces_the_worker():
    with TimeoutPool(allocate_or_square, workers=1, timeout=60, memory_limit=512 << 20) as pool:
        for key, payload in enumerate([2, "allocate", 3]):
            pool.submit(key, payload)
        results = collect_all(pool)
        assert results[0] == 4 and results[2] == 9
        assert isinstance(results[1], TaskFailed) and results[1].kind == "memory"
        assert pool.n_started == 2  # the worker that ran out was replaced


def grade_or_allocate(task: GradeTask, config: GraderConfig):
    """Injected grading function: "<allocate>" asks for 8 GiB on purpose, others are quick."""
    if "<allocate>" in task.response:
        bytearray(8 << 30)
    return grade_or_hang(task, config)


def test_grader_memory_limit_gives_error_and_keeps_the_record():
    tasks = [GradeTask("<allocate> \\boxed{5}", "5"), GradeTask("\\boxed{5}", "5")]
    with Grader(workers=1, timeout=60, memory_mb=512, grade_function=grade_or_allocate) as grader:
        out = [result for _, result in grader.stream(enumerate(tasks))]
    assert out == [GradeResult(0.0, "5", "error"), GradeResult(1.0, "5", "correct")]


def _start_pool_with_a_hang(pid_file: str) -> None:
    """Child process: a pool whose only worker hangs; writes the worker's pid, then waits."""
    pool = TimeoutPool(square_or_misbehave, workers=1, timeout=3600)
    pool.submit(0, "hang")
    while not pool.busy:
        pool.collect(wait=0.05)
    with open(pid_file, "w") as handle:
        handle.write(str(pool.busy[0].process.pid))
    time.sleep(3600)


def test_workers_exit_when_the_pool_process_dies(tmp_path):
    import multiprocessing

    pid_file = str(tmp_path / "worker.pid")
    owner = multiprocessing.get_context("spawn").Process(target=_start_pool_with_a_hang,
                                                         args=(pid_file,))
    owner.start()
    try:
        for _ in range(1200):  # the owner imports and starts its worker (no time limit asserted)
            if os.path.exists(pid_file) and open(pid_file).read():
                break
            time.sleep(0.1)
        worker_pid = int(open(pid_file).read())
        os.kill(worker_pid, 0)  # the hung worker is running
    finally:
        owner.kill()
        owner.join()
    for _ in range(600):  # it notices within about a second of the owner's death
        try:
            os.kill(worker_pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        os.kill(worker_pid, 9)
        raise AssertionError("the orphaned worker kept running")
