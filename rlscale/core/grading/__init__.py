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

from rlscale.core.grading.bounded import close_all, grade_bounded
from rlscale.core.grading.dispatch import GRADERS, Grader, GraderConfig, GradeTask
from rlscale.core.grading.extraction import FALLBACKS, extract_answer
from rlscale.core.grading.math_grader import VERDICTS, GradeResult, MathOptions

__all__ = ["FALLBACKS", "GRADERS", "VERDICTS", "GradeResult", "GradeTask", "Grader",
           "GraderConfig", "MathOptions", "close_all", "extract_answer", "grade_bounded"]
