"""VeRL reward plug-in: rlscale's grader inside VeRL training and validation.

In a VeRL 0.9.1 config (Hydra overrides; `rlscale verl launch` prints them)::

    reward.custom_reward_function.path=/path/to/site-packages/rlscale/integrations/verl.py
    reward.custom_reward_function.name=compute_score

(The top-level ``custom_reward_function.*`` keys of older VeRL are not read by 0.9.1's
``main_ppo``: VeRL would then grade with its own default scorer.) VeRL loads the file with
``get_custom_reward_fn`` and calls ``compute_score`` per response (``naive`` reward manager:
``data_source, solution_str, ground_truth, extra_info``, plus any keyword arguments) or per
batch (``batch`` manager: ``data_sources, solution_strs, ground_truths, extra_infos``), and
reads ``{"score", "acc", "pred"}`` (a list of them for a batch).

The grader is chosen by keyword (``reward.custom_reward_function.reward_kwargs``) or by the
environment of the reward worker:

* ``grader`` / ``RLSCALE_GRADER``: a grader of the registry
  (:mod:`rlscale.core.grading.registry`, the choices of ``rlscale reward --grader``):
  ``paper`` (default; the scorer of Tan et al. 2025, routed by ``data_source``), ``math``
  (rlscale's default grader), or one grader for every response (``code``, ``logic``, ...);
* ``timeout`` / ``RLSCALE_REWARD_TIMEOUT``: seconds per response (default 10, the paper's
  global limit); ``memory_mb`` / ``RLSCALE_REWARD_MEMORY_MB``: address space of the grading
  worker (default 1024).

Each call is bounded in time and memory by :func:`rlscale.core.grading.bounded.grade_bounded`
(no signals, so VeRL may call from threads and Ray actors): easy responses are graded in the
calling process, the rest by a worker process that is killed past either limit (score 0, like
the original's 10 s alarm). ``compute_score`` never raises: anything unexpected scores 0 and is
reported once on stderr (an unknown grader name too). ``paper`` routing covers the transfer
benchmarks too (the registry's routes: ``codegen__*``, ``logic__zebra_puzzle*``,
``stem__supergpqa*``); a ``data_source`` with no paper scorer is graded by the ``math`` grader.
"""

from __future__ import annotations

import os
import sys
from typing import Any

_ZERO = {"score": 0.0, "acc": False, "pred": ""}
_reported: set[str] = set()


def _setting(kwargs: dict, key: str, env: str, default: str) -> str:
    value = kwargs.get(key)
    return str(value) if value is not None else os.environ.get(env, default)


def _grade_one(data_source: Any, solution_str: Any, ground_truth: Any,
               kwargs: dict) -> dict[str, Any]:
    from rlscale.core.grading import registry
    from rlscale.core.grading.bounded import grade_bounded

    name = _setting(kwargs, "grader", "RLSCALE_GRADER", registry.PAPER)
    timeout = float(_setting(kwargs, "timeout", "RLSCALE_REWARD_TIMEOUT", "10"))
    memory_mb = int(_setting(kwargs, "memory_mb", "RLSCALE_REWARD_MEMORY_MB", "1024"))
    source = None if data_source is None else str(data_source)
    if name == registry.PAPER and not registry.paper_routes(source or ""):
        name = "math"
    # structured ground truths (grids, tests) as JSON
    gold = registry.ground_truth_text(ground_truth)
    result = grade_bounded(solution_str, ground_truth if gold is None else gold, grader=name,
                           data_source=source, timeout=timeout, memory_mb=memory_mb)
    return {"score": float(result.reward), "acc": result.verdict == "correct",
            "pred": result.pred if result.pred is not None else ""}


def _safe(data_source, solution_str, ground_truth, kwargs) -> dict[str, Any]:
    try:
        return _grade_one(data_source, solution_str, ground_truth, kwargs)
    except Exception as exc:  # noqa: BLE001 - a reward worker must never crash on one item
        message = f"{type(exc).__name__}: {exc}"[:300]
        if message not in _reported and len(_reported) < 20:
            _reported.add(message)
            print(f"rlscale verl plug-in: scored 0 after an error: {message}", file=sys.stderr)
        return dict(_ZERO)


def compute_score(data_source: Any = None, solution_str: Any = None, ground_truth: Any = None,
                  extra_info: dict | None = None, *, data_sources: list | None = None,
                  solution_strs: list | None = None, ground_truths: list | None = None,
                  extra_infos: list | None = None, **kwargs: Any):
    """Grade one response -> ``{"score": 1.0|0.0, "acc": bool, "pred": str}``, or a batch
    (``data_sources=...``, VeRL's ``batch`` manager) -> a list of those, in order.

    ``pred`` is the extracted answer ("" when none was found), as VeRL's own ``math_dapo``
    returns it; ``extra_info`` and keyword arguments VeRL adds (reward-model addresses) are
    accepted and not used, except ``grader``, ``timeout`` and ``memory_mb``.
    """
    if data_sources is not None or solution_strs is not None:
        n = len(solution_strs or [])
        if len(data_sources or []) != n or len(ground_truths or []) != n:
            _safe(None, None, None, {"grader": "invalid batch"})  # reported once
            return [dict(_ZERO) for _ in range(n)]
        return [_safe(s, r, g, kwargs) for s, r, g in zip(data_sources, solution_strs,
                                                          ground_truths, strict=True)]
    return _safe(data_source, solution_str, ground_truth, kwargs)


def _close_all() -> None:
    """Stop the grading workers (tests use it to pick up new limits)."""
    from rlscale.core.grading.bounded import close_all

    close_all()
