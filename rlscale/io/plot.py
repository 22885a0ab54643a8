"""Figures of a fit: data and fitted curves per group (log-log), and k(N) for the saturating law;
and the transfer study's panels (one per benchmark).

matplotlib is imported inside :func:`plot_fit` and :func:`plot_transfer` (the Agg backend, no
display needed), so importing this module costs nothing. Figures are rendered in memory and
written by :func:`save_figure` through the one atomic writer, so a failed plot never leaves
half an image at its path.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from io import BytesIO
from typing import Any

import numpy as np

from rlscale.core.laws.data import parse_size
from rlscale.core.laws.forms import saturating_k
from rlscale.core.laws.model import FittedLaw


def save_figure(fig, path: str, **kwargs: Any) -> None:
    """Render ``fig`` to bytes in the format its path's suffix names (matplotlib's default,
    PNG, when there is none) and write them to ``path`` atomically, then close the figure.

    Raises:
        ValueError: matplotlib knows no such format (nothing is written).
        OSError: the file cannot be written (an existing file is left as it was).
    """
    import matplotlib
    import matplotlib.pyplot as plt

    try:
        suffix = os.path.splitext(path)[1][1:].lower()
        buffer = BytesIO()
        fig.savefig(buffer, format=suffix or matplotlib.rcParams["savefig.format"], **kwargs)
    finally:
        plt.close(fig)
    from rlscale.io.jsonl import atomic_write_bytes

    atomic_write_bytes(path, buffer.getvalue())


def plot_fit(path: str, fitted: FittedLaw, *, x_label: str, y_label: str,
             points: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
             x_range: Mapping[str, Sequence[float]] | None = None,
             held_out: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
             group_slopes: Mapping[str, float] | None = None,
             calibrated: Mapping[str, Callable[[np.ndarray], np.ndarray]] | None = None,
             group_label: str = "N", title: str | None = None) -> None:
    """Write a PNG (or any format matplotlib knows from the suffix) of the fit.

    Args:
        points: fitted data per group key, as (x, y) arrays.
        x_range: x range per group when no points are given (a reloaded fit).
        held_out: data of groups left out of the fit, drawn hollow with the law's prediction.
        group_slopes: independent per-group log-log slopes, drawn on the k(N) panel.
        calibrated: per held-out group, its calibrated prediction (drawn dotted).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = points or {}
    held_out = held_out or {}
    saturating = fitted.law.name == "saturating"
    fig, axes = plt.subplots(1, 2 if saturating else 1, figsize=(12 if saturating else 7, 5),
                             squeeze=False)
    ax = axes[0][0]
    keys = list(fitted.keys) + [k for k in held_out if k not in fitted.keys]
    colors = plt.get_cmap("viridis")(np.linspace(0.0, 0.9, max(len(keys), 1)))
    all_x = [x for x, _ in list(points.values()) + list(held_out.values()) if len(x)]
    span = ((min(float(x.min()) for x in all_x), max(float(x.max()) for x in all_x)) if all_x
            else (min(r[0] for r in (x_range or {}).values()),
                  max(r[1] for r in (x_range or {}).values())) if x_range else (1.0, 10.0))
    for color, key in zip(colors, keys, strict=False):
        label = f"{group_label}={_short(key)}"
        if key in points:
            x, y = points[key]
            ax.scatter(x, y, s=8, alpha=0.45, color=color)
        if key in held_out:
            x, y = held_out[key]
            ax.scatter(x, y, s=14, facecolors="none", edgecolors=color)
            label += " (predicted part)" if key in points else " (held out)"
        lo, hi = _range_for(key, points, held_out, x_range, span)
        grid = np.geomspace(lo, hi, 200)
        try:
            pred = fitted.predict(grid, [key] * len(grid))
        except ValueError:
            continue
        pure_style = "--" if key in held_out and key not in points else "-"
        ax.plot(grid, pred, color=color, lw=1.8, ls=pure_style, label=label)
        if calibrated and key in calibrated:
            ax.plot(grid, calibrated[key](grid), color=color, lw=1.4, ls=":",
                    label=f"{group_label}={_short(key)} calibrated")
        interval = fitted.predict_interval(grid, [key] * len(grid))
        if interval is not None:
            ax.fill_between(grid, interval[0], interval[1], color=color, alpha=0.15, lw=0)
    ax.set_xscale("log")
    # pass rates (sigmoid) and slopes (efficiency) read better on a linear y axis
    ax.set_yscale("linear" if fitted.law.name in ("sigmoid", "efficiency") else "log")
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=8, loc="best")
    ax.set_title(title or fitted.law.title, fontsize=9)
    if saturating:
        _plot_k(axes[0][1], fitted, group_slopes or {}, group_label, held_out)
    fig.tight_layout()
    save_figure(fig, path, dpi=130)


def _range_for(key, points, held_out, x_range, span) -> tuple[float, float]:
    xs = [source[key][0] for source in (points, held_out) if key in source and len(source[key][0])]
    if xs:
        return (min(float(x.min()) for x in xs), max(float(x.max()) for x in xs))
    if x_range and key in x_range:
        return float(x_range[key][0]), float(x_range[key][1])
    return span


def _plot_k(ax, fitted: FittedLaw, group_slopes: Mapping[str, float], group_label: str,
            held_out: Mapping[str, Any]) -> None:
    n_known = [float(n) for n in fitted.n_values]
    n_all = n_known + [float(n) for n in _sizes(held_out)]
    grid = np.geomspace(min(n_all) / 3.0, max(n_all) * 3.0, 200)
    k_max, n_0 = fitted.values["K_max"], fitted.values["N_0"]
    ax.plot(grid, saturating_k(k_max, n_0, grid), color="black", lw=1.8,
            label=f"k(N) = {k_max:.4f} / (1 + {n_0:.3g}/N)")
    if fitted.samples:
        draws = np.array([saturating_k(s["K_max"], s["N_0"], grid) for s in fitted.samples])
        tail = (1.0 - fitted.level) / 2.0 * 100.0
        ax.fill_between(grid, np.percentile(draws, tail, axis=0),
                        np.percentile(draws, 100 - tail, axis=0), color="black", alpha=0.12,
                        lw=0, label=f"{fitted.level:.0%} bootstrap band")
    ax.axhline(k_max, color="grey", ls=":", lw=1, label="K_max")
    ax.axvline(n_0, color="grey", ls="--", lw=1, label="N_0")
    if group_slopes:
        xs = [parse_size(k) for k in group_slopes]
        ax.scatter(xs, list(group_slopes.values()), color="tab:red", zorder=3,
                   label="per-group slope (separate fit)")
    top = max([k_max] + [float(v) for v in group_slopes.values()])
    ax.set_ylim(min(0.0, min(group_slopes.values(), default=0.0)), top * 1.1)
    ax.set_xscale("log")
    ax.set_xlabel(f"{group_label} (model size)")
    ax.set_ylabel("k (learning efficiency)")
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=8, loc="best")
    ax.set_title("saturating learning efficiency", fontsize=9)


def _sizes(held_out: Mapping[str, Any]) -> list[float]:
    return [v for v in (parse_size(k) for k in held_out) if v is not None]


def _short(key: str) -> str:
    v = parse_size(key)
    if v is None:
        return key
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if v >= scale:
            return f"{v / scale:g}{unit}"
    return f"{v:g}"


def plot_transfer(path: str, data: Mapping[str, Mapping[Any, tuple[list[float], list[float]]]],
                  rows: Sequence[Mapping[str, Any]], *, x_label: str, y_label: str,
                  group: str = "N") -> None:
    """Figures 8-10 layout: one panel per benchmark, one curve per size, loss vs compute."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rlscale.core.laws.transfer import sort_key

    names = sorted(data)
    columns = min(3, len(names)) or 1
    n_rows = math.ceil(len(names) / columns) or 1
    fig, axes = plt.subplots(n_rows, columns, figsize=(4.2 * columns, 3.4 * n_rows),
                             squeeze=False)
    pooled = {row["benchmark"]: row for row in rows if row[group] is None}
    for ax, name in zip(axes.flat, names, strict=False):
        sizes = sorted(data[name], key=sort_key)
        colors = plt.cm.viridis(np.linspace(0.1, 0.9, max(1, len(sizes))))
        for color, size in zip(colors, sizes, strict=True):
            xs, ys = data[name][size]
            label = f"{group}={size:g}" if isinstance(size, int | float) else f"{group}={size}"
            ax.plot(xs, ys, "o-", color=color, markersize=3, linewidth=1.2, label=label)
        ax.set_xscale("log")
        row = pooled[name]
        slope = row["slope_per_decade"]
        ax.set_title(f"{name}\n{row['verdict']}"
                     + ("" if slope is None else f", {slope:+.3f}/10x"), fontsize=9)
        ax.set_xlabel(x_label)
        ax.set_ylabel(y_label)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)
