"""One call from a dataset to a finished fit: protocol split, fit, bootstrap, report.

:func:`rlscale.fit` (``rlscale/api/fit.py``) turns options into a :class:`FitRequest`, builds
the :class:`Dataset` from records, and calls :func:`run_fit`; everything numeric happens here
and below.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rlscale.core.errors import OptionError, OptionsError, RlscaleError
from rlscale.core.laws.data import Dataset, same_group, split_by_fraction
from rlscale.core.laws.fit import FitOptions, arrays_from_points, fit_law, profile_param
from rlscale.core.laws.forms import Law, get_law
from rlscale.core.laws.model import FittedLaw
from rlscale.core.laws.report import fit_report, reuse_summary
from rlscale.core.laws.uncertainty import bootstrap
from rlscale.core.laws.validate import (
    fraction_report,
    hidden_by_pooling,
    holdout_report,
    per_curve_report,
)


@dataclass
class FitRequest:
    law: Law
    options: FitOptions = field(default_factory=FitOptions)
    n_bootstrap: int = 0
    bootstrap_by: str = "auto"
    level: float = 0.95
    holdout: Sequence[str] = ()
    fit_fraction: float | None = None
    reference: str | None = None
    fixed: dict[str, float] = field(default_factory=dict)  # global parameters held (--fix)


@dataclass
class FitOutcome:
    report: dict[str, Any]
    fitted: FittedLaw
    fit_data: Dataset
    held_out: Dataset | None = None  # holdout groups or the predicted rest of each curve
    calibrated: dict[str, Callable] = field(default_factory=dict)  # holdout: x -> prediction


def find_groups(dataset: Dataset, wanted: Sequence[str]) -> list[int]:
    out = []
    for value in wanted:
        match = [g for g, key in enumerate(dataset.keys) if same_group(key, value)]
        if not match:
            raise OptionError("holdout_group", f"{value}: no such group; groups are "
                              f"{', '.join(dataset.keys)}")
        out += [g for g in match if g not in out]
    return out


def run_fit(dataset: Dataset, request: FitRequest,
            progress: Callable[[Any], Any] | None = None) -> FitOutcome:
    """Fit ``request.law`` to ``dataset`` following the requested protocol."""
    if request.holdout and request.fit_fraction is not None:
        raise OptionsError("use either {holdout_group} or {fit_fraction}, not both")
    law, options = request.law, request.options
    if request.fixed:
        law = law.with_fixed(request.fixed)
    fit_data, held_out, holdout_idx = dataset, None, []
    if request.holdout:
        holdout_idx = find_groups(dataset, request.holdout)
        fit_data = dataset.without_groups(holdout_idx)
        if fit_data.n_groups == 0:
            raise OptionError("holdout_group", "leaves no group to fit")
        held_out = dataset.without_groups(g for g in range(dataset.n_groups)
                                          if g not in holdout_idx)
    elif request.fit_fraction is not None:
        fit_data, held_out = split_by_fraction(dataset, request.fit_fraction)
    pts = fit_data.points()
    arrays = arrays_from_points(pts.x, pts.y, pts.gidx, fit_data.n_values, options)
    result = fit_law(law, arrays, options)
    fitted = FittedLaw(law, list(fit_data.keys), fit_data.n_values, result.values,
                       level=request.level)
    boot = None
    if request.n_bootstrap:
        boot = bootstrap(fit_data, result, options, request.n_bootstrap, options.seed,
                         request.bootstrap_by, progress=progress)
        if not boot.samples:
            raise RlscaleError("every bootstrap refit failed; the data cannot support intervals")
        fitted.samples = boot.samples
    report = fit_report(fitted, result, arrays, dataset.spec, options, fit_data, boot,
                        request.level)
    if request.fixed:  # held parameters are "on their bound" by construction
        report["fixed"] = dict(request.fixed)
        report["warnings"] = [w for w in report["warnings"] if w.get("param") not in request.fixed]
    for name in (n for n in law.profiled if n not in request.fixed):  # known trade-offs
        prof = profile_param(law, arrays, options, result, name)
        report.setdefault("profile", {})[name] = prof
        if prof["flat"]:
            lo, hi = prof["values"][0], prof["values"][-1]
            report["warnings"].append({
                "code": "not_identifiable", "severity": "warning", "param": name,
                "message": f"{name} is not identifiable: held anywhere in [{lo:.3g}, {hi:.3g}] "
                           f"the refitted law fits as well (profile within the 95 % "
                           f"threshold); read the per-group floor and lambda, not {name}"})
    calibrated: dict[str, Callable] = {}
    if request.holdout:
        report["validation"], calibrated = holdout_report(fitted, dataset, holdout_idx, options)
    elif request.fit_fraction is not None and held_out is not None:
        report["validation"] = fraction_report(fitted, request.fit_fraction, fit_data, held_out,
                                               options)
        curves = per_curve_report(fitted, dataset, held_out, options)
        report["validation"]["per_curve"] = curves
        hidden = hidden_by_pooling(report["validation"].get("test", {}).get("r2"), curves)
        if hidden:
            report["warnings"].append({"code": "pooled_hides_curves", "severity": "warning",
                                       "message": hidden})
    if law.name == "reuse":
        report["reuse"] = reuse_summary(fitted, fit_data, request.reference, options.log_factor)
    return FitOutcome(report, fitted, fit_data, held_out, calibrated)


def independent_slopes(dataset: Dataset, options: FitOptions) -> dict[str, float]:
    """Per-group log-log slopes from a separate ``loglinear`` fit (the dots on the k(N) plot)."""
    pts = dataset.points()
    arrays = arrays_from_points(pts.x, pts.y, pts.gidx, dataset.n_values,
                                FitOptions(space="log", weights=options.weights))
    result = fit_law(get_law("loglinear"), arrays, FitOptions(space="log", refine=1))
    return {k: float(v) for k, v in zip(dataset.keys, result.values["k"], strict=True)}


def points_by_group(dataset: Dataset | None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    if dataset is None:
        return {}
    pts = dataset.points()
    return {key: (pts.x[pts.gidx == g], pts.y[pts.gidx == g])
            for g, key in enumerate(dataset.keys) if np.any(pts.gidx == g)}
