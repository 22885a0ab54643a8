"""The one grader registry, and the generic process machinery under the graders."""

from __future__ import annotations

import inspect
import subprocess
import sys
import threading

import pytest

from rlscale.core.errors import OptionError
from rlscale.core.grading import GraderConfig, GradeResult, GradeTask, dispatch, registry
from rlscale.runtime import pool


def test_names_help_and_routes_come_from_the_registry():
    assert registry.names() == ("math", "paper", "code", "logic", "choice")
    assert registry.summary().startswith("math: fast path + Math-Verify; paper: ")
    assert [registry.resolve("paper", source).name for source in
            ("math__math", None, "codegen__humaneval", "logic__zebra_puzzle_dataset",
             "stem__supergpqa")] == ["paper", "paper", "code", "logic", "choice"]
    assert registry.resolve("math", "codegen__humaneval").name == "math"  # only paper routes
    assert registry.paper_sources()[-3:] == ("codegen__*", "logic__zebra_puzzle*",
                                             "stem__supergpqa*")


def test_an_unknown_grader_is_an_option_error_naming_the_parameter():
    for refuse in (lambda: GraderConfig("strict"), lambda: registry.get("strict")):
        with pytest.raises(OptionError) as caught:
            refuse()
        assert caught.value.option == "grader"
        assert str(caught.value) == ("grader must be one of math, paper, code, logic, choice, "
                                     "got 'strict'")
        assert isinstance(caught.value, ValueError)  # what GraderConfig raised before


def test_reading_the_registry_imports_no_grader():
    probe = ("import sys\n"
             "from rlscale.core.grading import registry\n"
             "registry.summary(), registry.names(), registry.domain_for('codegen__x')\n"
             "loaded = [m for m in ('rlscale.core.grading.math_grader', 'sympy', 'math_verify',"
             " 'rlscale.core.grading.paper_grader', 'rlscale.core.grading.dispatch') "
             "if m in sys.modules]\n"
             "print(loaded)\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    assert out.strip() == "[]"


def _yes(task: GradeTask, config: GraderConfig) -> GradeResult:
    return GradeResult.of(task.response.strip().lower() == "yes", task.response.strip())


def test_a_new_registration_line_is_all_dispatch_needs(monkeypatch):
    module = type(sys)("tests_yes_grader")
    module.full = _yes
    monkeypatch.setitem(sys.modules, module.__name__, module)
    spec = registry.GraderSpec("yes", "yes or no", module.__name__, quick="full")
    monkeypatch.setattr(registry, "REGISTRY", (*registry.REGISTRY, spec))
    config = GraderConfig("yes")
    assert dispatch.quick(GradeTask(" Yes ", "-"), config) == GradeResult(1.0, "Yes", "correct")
    with dispatch.Grader(config, workers=1) as grader:
        assert grader.grade(GradeTask("no", "-")).verdict == "wrong"
        assert grader.pool.n_started == 0  # its grade runs in the calling process


def test_pred_of_an_item_the_pool_gave_up_on_is_the_graders_own():
    task = GradeTask("so \\boxed{x^{x^{x}}}", "7")
    assert dispatch._from_pool(pool.TIMED_OUT, task, GraderConfig("math")) == GradeResult(
        0.0, "x^{x^{x}}", "timeout")
    failed = pool.TaskFailed("crashed", "died")
    assert dispatch._from_pool(failed, task, GraderConfig("paper")) == GradeResult(
        0.0, None, "error")  # the paper grader registers no pred


def test_the_pool_names_no_grading_module_and_takes_its_preload():
    source = inspect.getsource(pool)
    assert "rlscale.core" not in source and "grading" not in source
    with dispatch.Grader(workers=1) as grader:
        assert grader.pool.preload == dispatch.PRELOAD == ("rlscale.core.grading.warm_worker",)


def test_the_main_module_swap_is_undone_under_threads():
    main = sys.modules["__main__"]
    seen = []

    def start():
        with pool._main_module_hidden():
            seen.append(sys.modules["__main__"] is main)

    threads = [threading.Thread(target=start) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == [False] * 16  # hidden while a child starts
    assert sys.modules["__main__"] is main  # and always put back


class _Closeable:
    def __init__(self):
        self.closed = False

    def close(self):
        self.closed = True


def test_shared_objects_are_kept_per_key_and_closed_per_owner():
    with pool.shared("test-a", 1, _Closeable) as first:
        pass
    with pool.shared("test-a", 1, _Closeable) as again, pool.shared("test-b", 1, _Closeable) as other:
        assert again is first and other is not first
    pool.close_shared("test-a")
    assert first.closed and not other.closed
    with pool.shared("test-a", 1, _Closeable) as fresh:
        assert fresh is not first
    pool.close_shared("test-a")
    pool.close_shared("test-b")
    assert other.closed
