"""Compute-optimal planning: for a budget on the x axis, which model size gives the lowest loss.

The paper poses the compute-constrained problem ``argmin_N L(N, C)`` (T25 §3, §1.9) and answers
it descriptively from the curves; with a fitted law it is a one-dimensional minimisation over N:
either over a list of candidate sizes or over a continuous range (a log-spaced scan refined by a
bounded scalar search). With bootstrap draws, the optimum is recomputed per draw to give an
interval on N_opt and on the predicted loss.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar

from rlscale.core.laws.data import group_key
from rlscale.core.laws.model import FittedLaw

SCAN_POINTS = 241


def _best_in_list(fitted: FittedLaw, values, budget: float, sizes: Sequence[float]
                  ) -> tuple[float, float, np.ndarray]:
    losses = fitted.predict_with(values, np.full(len(sizes), budget), list(sizes))
    losses = np.where(np.isfinite(losses), losses, np.inf)
    best = int(np.argmin(losses))
    return float(sizes[best]), float(losses[best]), losses


def _best_in_range(fitted: FittedLaw, values, budget: float, lo: float, hi: float
                   ) -> tuple[float, float]:
    grid = np.geomspace(lo, hi, SCAN_POINTS)
    _, _, losses = _best_in_list(fitted, values, budget, grid)
    i = int(np.argmin(losses))
    a, b = math.log10(grid[max(i - 1, 0)]), math.log10(grid[min(i + 1, len(grid) - 1)])
    if b <= a:
        return float(grid[i]), float(losses[i])

    def loss_at(log_n: float) -> float:
        v = float(fitted.predict_with(values, np.array([budget]), [10 ** log_n])[0])
        return v if math.isfinite(v) else math.inf

    sol = minimize_scalar(loss_at, bounds=(a, b), method="bounded",
                          options={"xatol": 1e-6})
    if sol.fun <= losses[i]:
        return float(10 ** sol.x), float(sol.fun)
    return float(grid[i]), float(losses[i])


def plan_budget(fitted: FittedLaw, budget: float, *, sizes: Sequence[float] | None = None,
                size_range: tuple[float, float] | None = None) -> dict[str, Any]:
    """The model size with the lowest predicted loss at x = ``budget``.

    Give either ``sizes`` (candidates; default: the fitted groups) or ``size_range`` (lo, hi).
    Raises ValueError (user-facing) when the law cannot predict the requested sizes.
    """
    if budget <= 0 or not math.isfinite(budget):
        raise ValueError(f"budget must be a positive number, got {budget:g}")
    out: dict[str, Any] = {"budget": budget}
    level = fitted.level
    tail = (1.0 - level) / 2.0 * 100.0
    if size_range is not None:
        lo, hi = size_range
        if not 0 < lo < hi:
            raise ValueError(f"size range must satisfy 0 < lo < hi, got {lo:g}:{hi:g}")
        n_opt, loss = _best_in_range(fitted, fitted.values, budget, lo, hi)
        out.update({"N_opt": n_opt, "loss_pred": loss, "size_range": [lo, hi]})
        if math.isclose(n_opt, lo, rel_tol=1e-3) or math.isclose(n_opt, hi, rel_tol=1e-3):
            out["at_range_edge"] = True
        if fitted.samples:
            draws = [_best_in_range(fitted, s, budget, lo, hi) for s in fitted.samples]
            out["N_opt_ci"] = list(np.percentile([d[0] for d in draws], [tail, 100 - tail]))
            out["loss_pred_ci"] = list(np.percentile([d[1] for d in draws], [tail, 100 - tail]))
        return out
    if sizes is None:
        sizes = [float(v) for v in fitted.n_values]
        if not np.all(np.isfinite(sizes)):
            raise ValueError("the fitted groups are not model sizes; give --sizes")
    n_opt, loss, losses = _best_in_list(fitted, fitted.values, budget, sizes)
    out.update({"N_opt": n_opt, "loss_pred": loss,
                "candidates": [{"N": float(n), "loss_pred": float(v)}
                               for n, v in zip(sizes, losses, strict=True)]})
    if fitted.samples:
        draws = [_best_in_list(fitted, s, budget, sizes) for s in fitted.samples]
        picks = [d[0] for d in draws]
        out["N_opt_share"] = {group_key(float(n)): picks.count(float(n)) / len(picks)
                              for n in sizes}
        out["loss_pred_ci"] = list(np.percentile([d[1] for d in draws], [tail, 100 - tail]))
    return out
