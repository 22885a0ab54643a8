"""Bootstrap confidence intervals for fitted scaling-law parameters and predictions.

The paper reports no uncertainty on K_max or N_0 (T25 §4.3 item 4). Here the data are
resampled the way they were generated:

* ``runs`` -- when every group has at least two runs, whole runs are drawn with replacement
  within each group (a stratified cluster bootstrap) and re-averaged per step, so the
  step-to-step correlation inside a run is kept;
* ``points`` -- with one run per group, the (averaged) points of each curve are drawn with
  replacement within the curve.

Each replicate is refitted from the full-data optimum (a warm start, no grid), which is what
makes 200 replicates take about a second. Intervals are percentile intervals.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rlscale.core.errors import OptionError
from rlscale.core.laws.data import Dataset
from rlscale.core.laws.fit import FitOptions, FitResult, arrays_from_points, fit_law

BOOTSTRAP_MODES = ("auto", "runs", "points")


@dataclass
class BootstrapResult:
    mode: str
    samples: list[dict[str, Any]] = field(default_factory=list)
    n_failed: int = 0


def choose_mode(dataset: Dataset, mode: str = "auto") -> str:
    """``runs`` when every group has >= 2 runs, else ``points``."""
    if mode not in BOOTSTRAP_MODES:
        raise OptionError("bootstrap_by", f"{mode!r}: expected one of "
                                          f"{', '.join(BOOTSTRAP_MODES)}")
    can_runs = min(dataset.runs_per_group()) >= 2
    if mode == "runs" and not can_runs:
        raise OptionError("bootstrap_by", "runs needs at least 2 runs in every group")
    if mode == "auto":
        return "runs" if can_runs else "points"
    return mode


def bootstrap(dataset: Dataset, result: FitResult, options: FitOptions, n_boot: int,
              seed: int, mode: str = "auto", progress=None) -> BootstrapResult:
    """Refit ``n_boot`` resampled data sets; deterministic for a given ``seed``."""
    mode = choose_mode(dataset, mode)
    rng = np.random.default_rng([seed, 0xB007])
    out = BootstrapResult(mode)
    base = dataset.points()
    by_group_points = [np.nonzero(base.gidx == g)[0] for g in range(dataset.n_groups)]
    by_group_curves: list[list[int]] = [[] for _ in range(dataset.n_groups)]
    for i, curve in enumerate(dataset.curves):
        by_group_curves[curve.group].append(i)
    replicates = range(n_boot) if progress is None else progress(range(n_boot))
    for _ in replicates:
        if mode == "runs":
            curves = []
            for members in by_group_curves:
                runs = sorted({dataset.curves[i].run for i in members})
                drawn = rng.choice(len(runs), size=len(runs), replace=True)
                for j in drawn:
                    curves += [dataset.curves[i] for i in members
                               if dataset.curves[i].run == runs[j]]
            # duplicated runs must stay separate replicates when averaging
            pts = dataset.points(curves)
        else:
            take = np.concatenate([rng.choice(idx, size=len(idx), replace=True)
                                   for idx in by_group_points])
            pts = base.subset(take)
        arrays = arrays_from_points(pts.x, pts.y, pts.gidx, dataset.n_values, options)
        try:
            refit = fit_law(result.law, arrays, options, start=result.theta)
        except Exception:  # a degenerate resample: count it, never abort the whole bootstrap
            out.n_failed += 1
            continue
        out.samples.append(refit.values)
    return out


def percentile_interval(draws: Sequence[float], level: float) -> list[float]:
    """Two-sided percentile interval ``[lo, hi]`` at ``level`` (e.g. 0.95).

    >>> [round(v, 9) for v in percentile_interval(list(range(101)), 0.9)]
    [5.0, 95.0]
    """
    tail = (1.0 - level) / 2.0 * 100.0
    arr = np.asarray(draws, dtype=float)
    return [float(np.nanpercentile(arr, tail)), float(np.nanpercentile(arr, 100.0 - tail))]


def intervals(draws: Mapping[str, Any], level: float) -> dict[str, Any]:
    """Apply :func:`percentile_interval` to every list in a nested {name: list | {key: list}}."""
    out: dict[str, Any] = {}
    for name, value in draws.items():
        if isinstance(value, Mapping):
            out[name] = intervals(value, level)
        else:
            out[name] = percentile_interval(value, level)
    return out
