"""Grading model answers to math problems (``rlscale reward`` and the VeRL plug-in).

* :mod:`.extraction` finds the final answer (last ``\\boxed{}``, fallbacks);
* :mod:`.normalize` canonicalises answer strings;
* :mod:`.expressions` parses answers safely (no ``eval``);
* :mod:`.math_grader` is the default grader (fast path + Math-Verify);
* :mod:`.paper_grader` reproduces the scorer of the paper's VeRL runs;
* :mod:`.pool` and :mod:`.dispatch` run graders with a hard per-item time limit.

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
    "GRADERS": "dispatch", "Grader": "dispatch", "GraderConfig": "dispatch",
    "GradeTask": "dispatch",
    "FALLBACKS": "extraction", "extract_answer": "extraction",
    "VERDICTS": "math_grader", "GradeResult": "math_grader", "MathOptions": "math_grader",
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
