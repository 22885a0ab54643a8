"""The transfer study (paper §4, Observation 5, Figures 8-10): does math RL move the test loss
of other benchmarks, and which way?

Input: one point per (benchmark, model size, step) -- ``eval --by data_source,step`` records
with the size and compute added (``--set N=...``, ``rlscale flops``). For each benchmark the
trend is the slope of the test loss against ``log10`` of compute, pooled over sizes with one
intercept per size (so sizes with different base losses do not fake a trend), and per size:

    loss = a_size + b * log10(C)

``b`` is the change in loss per tenfold compute; its interval is the ordinary least-squares
``level`` interval (Student t, ``n - sizes - 1`` degrees of freedom). Verdict: ``improves`` when
the whole interval is below 0 (loss falls with compute), ``degrades`` when it is above 0,
``flat`` otherwise; ``insufficient`` when there are too few points (or no compute spread) for
an interval -- never a guessed trend. The interval treats points of
one curve as independent; consecutive steps of one run are correlated, so it is optimistic --
read a borderline verdict as flat.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

VERDICTS = ("improves", "flat", "degrades", "insufficient")


@dataclass(frozen=True)
class Trend:
    slope: float | None
    lo: float | None
    hi: float | None
    n_points: int
    verdict: str


def slope_trend(curves: Mapping[Any, tuple[Sequence[float], Sequence[float]]],
                level: float = 0.95) -> Trend:
    """Pooled within-curve slope of y on log10(x) over ``curves`` ({size: (x, y)})."""
    from scipy import stats

    sxy = sxx = 0.0
    n_points = n_curves = 0
    residual_parts = []
    for xs, ys in curves.values():
        x = np.log10(np.asarray(xs, dtype=float))
        y = np.asarray(ys, dtype=float)
        if len(x) == 0:
            continue
        n_curves += 1
        n_points += len(x)
        dx, dy = x - x.mean(), y - y.mean()
        sxy += float(dx @ dy)
        sxx += float(dx @ dx)
        residual_parts.append((dx, dy))
    if sxx <= 0.0:
        return Trend(None, None, None, n_points, "insufficient")
    slope = sxy / sxx
    dof = n_points - n_curves - 1
    if dof < 1:
        return Trend(slope, None, None, n_points, "insufficient")
    sse = sum(float(((dy - slope * dx) ** 2).sum()) for dx, dy in residual_parts)
    se = math.sqrt(sse / dof / sxx)
    half = float(stats.t.ppf(0.5 + level / 2, dof)) * se
    lo, hi = slope - half, slope + half
    verdict = "improves" if hi < 0 else "degrades" if lo > 0 else "flat"
    return Trend(slope, lo, hi, n_points, verdict)


class TransferError(ValueError):
    pass


def collect(records: Iterable[Mapping[str, Any]], benchmark: str, x: str, y: str,
            group: str | None) -> dict[str, dict[Any, tuple[list[float], list[float]]]]:
    """{benchmark: {size: (x values, y values)}} sorted by x; TransferError for bad values."""
    out: dict[str, dict[Any, tuple[list[float], list[float]]]] = {}
    for index, record in enumerate(records, 1):
        name = record.get(benchmark)
        if name is None:
            raise TransferError(f"record {index}: no {benchmark!r} field")
        values = []
        for field in (x, y):
            value = record.get(field)
            if isinstance(value, bool) or not isinstance(value, int | float) \
                    or not math.isfinite(value):
                raise TransferError(f"record {index}: {field!r} must be a finite number, got "
                                    f"{value!r}")
            values.append(float(value))
        if values[0] <= 0:
            raise TransferError(f"record {index}: {x!r} must be > 0 (a log scale), got "
                                f"{values[0]:g}")
        size = record.get(group) if group else None
        xs, ys = out.setdefault(str(name), {}).setdefault(size, ([], []))
        xs.append(values[0])
        ys.append(values[1])
    for curves in out.values():
        for size, (xs, ys) in curves.items():
            order = np.argsort(xs, kind="stable")
            curves[size] = ([xs[i] for i in order], [ys[i] for i in order])
    return out


def sort_key(size: Any):
    """Numbers first, by value, then labels: the order sizes are reported and drawn in."""
    return (0, float(size), "") if isinstance(size, int | float) else (1, 0.0, str(size))


def transfer_report(data: Mapping[str, Mapping[Any, tuple[list[float], list[float]]]],
                    level: float = 0.95, group: str = "N") -> list[dict[str, Any]]:
    """One record per benchmark (all sizes pooled, ``group: null``) and per benchmark and size."""
    rows = []
    for name in sorted(data):
        curves = data[name]
        for size in [None, *sorted(curves, key=sort_key)]:
            chosen = curves if size is None else {size: curves[size]}
            trend = slope_trend(chosen, level)
            first = [ys[0] for ys in (c[1] for c in chosen.values())]
            last = [ys[-1] for ys in (c[1] for c in chosen.values())]
            rows.append({"benchmark": name, group: size, "verdict": trend.verdict,
                         "slope_per_decade": trend.slope, "slope_lo": trend.lo,
                         "slope_hi": trend.hi, "ci_level": level, "n_points": trend.n_points,
                         "loss_first": float(np.mean(first)), "loss_last": float(np.mean(last))})
    return rows


def verdict_line(row: Mapping[str, Any]) -> str:
    """``humaneval: flat (slope -0.0031 per 10x C, 95% CI [-0.0100, 0.0038], 12 points)``."""
    if row["slope_per_decade"] is None:
        return (f"{row['benchmark']}: insufficient (no compute spread to fit a slope, "
                f"{row['n_points']} points)")
    interval = ("no interval: too few points" if row["slope_lo"] is None else
                f"{row['ci_level']:.0%} CI [{row['slope_lo']:.4f}, {row['slope_hi']:.4f}]")
    return (f"{row['benchmark']}: {row['verdict']} (slope {row['slope_per_decade']:.4f} loss "
            f"per 10x compute, {interval}, {row['n_points']} points)")
