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

from rlscale.core.identity import label
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
        out["N_opt_share"] = {label(float(n)): picks.count(float(n)) / len(picks)
                              for n in sizes}
        out["loss_pred_ci"] = list(np.percentile([d[1] for d in draws], [tail, 100 - tail]))
    return out


# --- discrete settings: which value of G (tau, N, ...) is best at which budget -----------------

PLAN_GRID = 481


def _envelope(fitted: FittedLaw, values, log_budgets: np.ndarray, keys: Sequence[str]
              ) -> np.ndarray:
    """Predicted loss of every choice (rows) at every budget (columns)."""
    x = np.power(10.0, log_budgets)
    out = np.array([fitted.predict_with(values, x, [k] * len(x)) for k in keys])
    return np.where(np.isfinite(out), out, np.inf)


def _switches(fitted: FittedLaw, values, log_budgets: np.ndarray, keys: Sequence[str]
              ) -> list[tuple[float, int, int]]:
    """Budgets (log10) where the best choice changes: (log budget, from index, to index)."""
    from scipy.optimize import brentq

    losses = _envelope(fitted, values, log_budgets, keys)
    best = np.argmin(losses, axis=0)
    out = []
    for i in np.nonzero(best[1:] != best[:-1])[0]:
        a, b = int(best[i]), int(best[i + 1])

        def gap(lb: float, a=a, b=b) -> float:
            x = np.array([10.0 ** lb])
            return float(np.log(fitted.predict_with(values, x, [keys[a]])[0])
                         - np.log(fitted.predict_with(values, x, [keys[b]])[0]))

        lo, hi = float(log_budgets[i]), float(log_budgets[i + 1])
        g_lo, g_hi = gap(lo), gap(hi)
        if g_lo == 0.0 or g_hi == 0.0:  # the crossing is a grid point
            root = lo if g_lo == 0.0 else hi
        elif g_lo * g_hi < 0:
            root = brentq(gap, lo, hi, xtol=1e-12)
        else:  # ties broken differently by argmin: the switch is within the grid step
            root = (lo + hi) / 2
        out.append((root, a, b))
    return out


def plan_discrete(fitted: FittedLaw, *, budgets: Sequence[float] = (),
                  budget_range: tuple[float, float] | None = None) -> dict[str, Any]:
    """Best value of a discrete setting (the fitted groups) per budget, and crossover budgets.

    The groups of ``fitted`` are the choices (e.g. rollout group sizes G fitted with
    ``loglinear`` on x = C). Crossovers are searched over ``budget_range`` (default: the range
    of budgets the fit saw, passed in by the caller) on a log grid and refined with a root
    finder on the log-loss difference. With bootstrap draws, each crossover gets a percentile
    interval from the draws that have the same switch nearby, and each budget the share of draws
    choosing each value.
    """
    keys = list(fitted.keys)
    if len(keys) < 2:
        raise ValueError("planning a discrete setting needs at least 2 fitted values")
    out: dict[str, Any] = {"choices": keys, "best_by_budget": []}
    tail = (1.0 - fitted.level) / 2.0 * 100.0
    for budget in budgets:
        if not budget > 0 or not math.isfinite(budget):
            raise ValueError(f"budget must be a positive number, got {budget:g}")
        losses = _envelope(fitted, fitted.values, np.array([math.log10(budget)]), keys)[:, 0]
        best = int(np.argmin(losses))
        entry: dict[str, Any] = {"budget": budget, "best": keys[best],
                                 "loss_pred": float(losses[best]),
                                 "loss_by_choice": {k: float(v) for k, v in zip(keys, losses,
                                                                                 strict=True)}}
        if fitted.samples:
            picks = [keys[int(np.argmin(_envelope(fitted, s, np.array([math.log10(budget)]),
                                                  keys)[:, 0]))] for s in fitted.samples]
            entry["best_share"] = {k: picks.count(k) / len(picks) for k in keys}
            draws = [float(np.min(_envelope(fitted, s, np.array([math.log10(budget)]), keys)))
                     for s in fitted.samples]
            entry["loss_pred_ci"] = list(np.percentile(draws, [tail, 100 - tail]))
        out["best_by_budget"].append(entry)
    if budget_range is not None:
        lo, hi = budget_range
        if not 0 < lo < hi:
            raise ValueError(f"budget range must satisfy 0 < lo < hi, got {lo:g}:{hi:g}")
        grid = np.linspace(math.log10(lo), math.log10(hi), PLAN_GRID)
        step = grid[1] - grid[0]
        crossings = []
        for root, a, b in _switches(fitted, fitted.values, grid, keys):
            item: dict[str, Any] = {"budget": float(10 ** root), "from": keys[a], "to": keys[b]}
            if fitted.samples:
                near = []
                for s in fitted.samples:
                    same = [r for r, a2, b2 in _switches(fitted, s, grid, keys)
                            if (a2, b2) == (a, b)]
                    if same:
                        near.append(min(same, key=lambda r: abs(r - root)))
                item["share_of_draws"] = len(near) / len(fitted.samples)
                if near:
                    item["budget_ci"] = [float(10 ** v) for v in np.percentile(near, [tail,
                                                                                100 - tail])]
            crossings.append(item)
        out["budget_range"] = [lo, hi]
        out["crossovers"] = crossings
        first = _envelope(fitted, fitted.values, grid[:1], keys)[:, 0]
        out["best_at_range_start"] = keys[int(np.argmin(first))]
        out["grid_step_decades"] = float(step)
    return out


def shared_x_range(x_range: dict[str, Sequence[float]]) -> tuple[float, float]:
    """The budgets every curve covers (the overlap of their x ranges), or all of them when the
    curves do not overlap: crossovers outside the data would be extrapolations.

    >>> shared_x_range({"8": [1.0, 100.0], "32": [10.0, 1000.0]})
    (10.0, 100.0)
    """
    if not x_range:
        raise ValueError("the fit has no x range; give --budget-range LO:HI")
    ranges = list(x_range.values())
    lo, hi = max(r[0] for r in ranges), min(r[1] for r in ranges)
    if lo < hi:
        return float(lo), float(hi)
    return float(min(r[0] for r in ranges)), float(max(r[1] for r in ranges))
