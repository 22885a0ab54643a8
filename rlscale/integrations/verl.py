"""VeRL reward plug-in: use rlscale's grader inside VeRL training and validation.

In a VeRL config (Hydra overrides)::

    custom_reward_function.path=/path/to/site-packages/rlscale/integrations/verl.py
    custom_reward_function.name=compute_score

VeRL calls ``compute_score(data_source, solution_str, ground_truth, extra_info)`` once per
response and reads the returned dict: ``score`` is the reward, the other keys are logged.

The grader is chosen by the environment of the reward worker:

* ``RLSCALE_GRADER``: ``paper`` (default; the scorer of Tan et al. 2025, routed by
  ``data_source``) or ``math`` (rlscale's default grader);
* ``RLSCALE_REWARD_TIMEOUT``: seconds per response (default 10, the paper's global limit);
* ``RLSCALE_REWARD_WORKERS``: processes for the symbolic slow path (default 1).

Each call is time-bounded without signals (VeRL may call from threads and Ray actors): easy
responses are graded in the calling process, the rest by a lazily started worker process that
is killed and replaced if it exceeds the limit (score 0, like the original's 10 s alarm).
``--grader paper`` routing covers the transfer benchmarks too (``codegen__*`` in the code
sandbox, ``logic__zebra_puzzle*``, ``stem__supergpqa*``; see
:mod:`rlscale.core.grading.registry`); a ``data_source`` with no paper scorer is graded by the
``math`` grader.
"""

from __future__ import annotations

import atexit
import os
import threading
from typing import Any

_lock = threading.Lock()
_graders: dict[str, Any] = {}


def _grader(name: str):
    from rlscale.core.grading.dispatch import Grader, GraderConfig

    with _lock:
        if name not in _graders:
            timeout = float(os.environ.get("RLSCALE_REWARD_TIMEOUT", "10"))
            workers = int(os.environ.get("RLSCALE_REWARD_WORKERS", "1"))
            _graders[name] = Grader(GraderConfig(name), workers=max(1, workers), timeout=timeout)
        return _graders[name]


@atexit.register
def _close_all() -> None:
    for grader in _graders.values():
        grader.close()
    _graders.clear()


def compute_score(data_source: str, solution_str: str, ground_truth: Any,
                  extra_info: dict | None = None) -> dict[str, Any]:
    """Grade one response; returns ``{"score": 1.0|0.0, "acc": bool, "pred": str}``.

    ``pred`` is the extracted answer ("" when none was found), as VeRL's own ``math_dapo``
    returns it; ``extra_info`` is accepted for VeRL's signature and not used.
    """
    from rlscale.core.grading.dispatch import GradeTask
    from rlscale.core.grading.registry import ground_truth_text, paper_routes

    name = os.environ.get("RLSCALE_GRADER", "paper")
    if name == "paper" and not paper_routes(data_source):
        name = "math"
    gold = ground_truth_text(ground_truth)  # structured ground truths (grids, tests) as JSON
    task = GradeTask(str(solution_str), str(ground_truth) if gold is None else gold, data_source)
    grader = _grader(name)
    with _lock:  # one stream at a time per grader; VeRL's reward loop is sequential anyway
        result = grader.grade(task)
    return {"score": result.reward, "acc": result.verdict == "correct",
            "pred": result.pred if result.pred is not None else ""}
