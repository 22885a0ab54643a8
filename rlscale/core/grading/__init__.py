"""Grading model answers to math problems (``rlscale reward`` and the VeRL plug-in).

* :mod:`.extraction` finds the final answer (last ``\\boxed{}``, fallbacks);
* :mod:`.normalize` canonicalises answer strings;
* :mod:`.expressions` parses answers safely (no ``eval``);
* :mod:`.registry` is the one list of graders (name, help, how each one runs); a new grader
  is a module plus one line there (``docs/extending-graders.md``);
* :mod:`.task` holds what graders take and give (GradeTask, GraderConfig, GradeResult);
* :mod:`.math_grader` is the default grader (fast path + Math-Verify);
* :mod:`.paper_grader` reproduces the scorer of the paper's VeRL runs; :mod:`.code`,
  :mod:`.logic` and :mod:`.choice` grade the out-of-domain benchmarks of its transfer study;
* :mod:`.dispatch` runs graders with a hard per-item time limit in the worker pool of
  :mod:`rlscale.runtime.pool`; :mod:`.bounded` grades one item at a time from any code.

One bounded grade (time and memory limits, thread-safe; what library code should call)::

    from rlscale.core.grading import grade_bounded
    grade_bounded("... so \\\\boxed{\\\\frac12}", "0.5", timeout=2, memory_mb=1024).reward  # 1.0

Many grades::

    from rlscale.core.grading import Grader, GradeTask
    with Grader(workers=1, timeout=2) as grader:
        grader.grade(GradeTask("... so \\\\boxed{\\\\frac12}", "0.5")).reward   # 1.0
"""

import importlib

# Loaded on first use (PEP 562): every command's --help reads the light grader registry,
# which must not pull in the graders themselves.
_EXPORTS = {
    "close_all": "bounded", "grade_bounded": "bounded",
    "Grader": "dispatch",
    "FALLBACKS": "extraction", "extract_answer": "extraction", "last_boxed": "extraction",
    "REGISTRY": "registry", "GraderSpec": "registry",
    "VERDICTS": "task", "GradeResult": "task", "GradeTask": "task", "GraderConfig": "task",
    "MathOptions": "task",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
