"""Validation protocols: predict held-out model sizes, and predict the rest of each curve.

* :func:`holdout_groups` -- fit all other groups, then predict each held-out group two ways
  (T25 §1.12 inter-model protocol):

  - ``pure``: the law's own prediction for an unseen size (k from K_max and N_0, the intercept
    from its trend in N, or interpolated/extrapolated in log N for a per-group intercept);
  - ``calibrated``: the paper's variant, where the group's own parameters (for ``saturating``
    only the intercept E) are refitted on the held-out data with every shared parameter fixed.
    The paper reports only this one, which predicts the slope but not the level (§4.3 item 5).

* :func:`fit_fraction` -- fit the first fraction of every curve and report the error on the
  remaining points (the intra-model protocol, §1.10/§1.12).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from rlscale.core.laws.data import Dataset, parse_size
from rlscale.core.laws.fit import (
    FitOptions,
    Layout,
    arrays_from_points,
    fit_law,
    prediction_metrics,
)
from rlscale.core.laws.forms import Law, Param
from rlscale.core.laws.model import FittedLaw


def calibrate_group(fitted: FittedLaw, group: Any, x: np.ndarray, y: np.ndarray,
                    n_value: float, options: FitOptions) -> dict[str, float]:
    """Refit only a group's own parameters on its data, shared parameters held fixed.

    Returns the group's parameter values (natural units, intercepts log10). For a law without
    per-group parameters a log-intercept shift ``delta`` (log10 L moves by delta) is fitted.
    """
    law = fitted.law
    fixed = {p.name: fitted.values[p.name] for p in law.global_params}
    one = arrays_from_points(x, y, np.zeros(len(x), dtype=int), np.array([n_value]), options)
    if law.group_params:
        def predict(p, xs, ns):
            return law.predict({**fixed, **p}, xs, ns)

        def profile(fx, *args):
            return law.profile({**fixed, **fx}, *args) if law.profile else {}

        local = dataclasses.replace(law, params=law.group_params, predict=predict,
                                    profile=profile, derived=None)
        try:
            start_values = fitted.group_values_for(fitted.values, group)
        except ValueError:
            start_values = None
        refit = fit_law(local, one, dataclasses.replace(options, random_starts=0, refine=2))
        if start_values is not None:  # also try starting from the pure prediction
            layout = Layout(local, 1, one.summary())
            second = fit_law(local, one, options, start=layout.pack(start_values))
            if second.objective < refit.objective:
                refit = second
        return {name: float(np.asarray(v).ravel()[0]) for name, v in refit.values.items()}

    base = fitted.predict(x, [group] * len(x))

    def shifted(p, xs, ns):
        return base * np.power(10.0, p["delta"])

    shift = Law(name="shift", title="", citation="", predict=shifted,
                params=(Param("delta", -30.0, 30.0, grid=(0.0,), log_intercept=True),))
    refit = fit_law(shift, one, dataclasses.replace(options, random_starts=0, refine=1))
    return {"delta": float(refit.values["delta"])}


def _calibrated_prediction(fitted: FittedLaw, group: Any, calib: Mapping[str, float],
                           x: np.ndarray) -> np.ndarray:
    law = fitted.law
    if not law.group_params:
        return fitted.predict(x, [group] * len(x)) * 10 ** calib["delta"]
    p = {q.name: (calib[q.name] if q.per_group else fitted.values[q.name]) for q in law.params}
    n = parse_size(group)
    with np.errstate(all="ignore"):
        return law.predict(p, x, np.full(len(x), math.nan if n is None else n))


def _params_report(fitted: FittedLaw, group_values: Mapping[str, float], group: Any,
                   log_factor: float) -> dict[str, float]:
    """A group's parameters for the report (intercepts in the reporting base), plus k."""
    out = {}
    for name, value in group_values.items():
        is_intercept = name == "delta" or fitted.law.param(name).log_intercept
        out[name] = value * log_factor if is_intercept else value
    for name, value in _derived_for(fitted, group).items():
        if name == "E" and "delta" in group_values:  # the calibrated intercept
            value += group_values["delta"]
        out.setdefault(name, value * (log_factor if name == "E" else 1.0))
    return out


def _derived_for(fitted: FittedLaw, group: Any) -> dict[str, float]:
    """Derived quantities (e.g. k) of one group, also for an unseen size."""
    n = parse_size(group)
    if fitted.law.derived is None or n is None:
        return {}
    derived = fitted.law.derived(fitted.values, ["g"], np.array([n]))
    return {name: float(per["g"]) for name, per in derived.items()}


def holdout_report(fitted: FittedLaw, dataset: Dataset, holdout: Sequence[int],
                   options: FitOptions) -> tuple[dict[str, Any], dict[str, Callable]]:
    """Predict each held-out group of ``dataset`` with ``fitted`` (fitted without them).

    Returns the report and, per held-out group, a function x -> calibrated prediction.
    """
    report: dict[str, Any] = {"protocol": "holdout-group", "groups": {}}
    calibrated: dict[str, Callable] = {}
    for g in holdout:
        key = dataset.keys[g]
        test = dataset.only_group(g).points()
        x, y = test.x, test.y
        entry: dict[str, Any] = {"n_points": int(len(y)), "noise_floor": noise_floor(test)}
        try:
            pure = fitted.predict(x, [key] * len(x))
            entry["pure"] = {**_metrics(y, pure, key, options),
                             "params": _params_report(fitted, fitted.group_values_for(
                                 fitted.values, key), key, options.log_factor)}
            interval = fitted.predict_interval(x, [key] * len(x))
            if interval is not None:  # how often the bootstrap band holds the held-out data
                entry["pure"]["interval_coverage"] = float(np.mean(
                    (y >= interval[0]) & (y <= interval[1])))
        except ValueError as exc:
            entry["pure"] = {"available": False, "reason": str(exc)}
        calib = calibrate_group(fitted, key, x, y, float(dataset.n_values[g]), options)
        pred = _calibrated_prediction(fitted, key, calib, x)
        entry["calibrated"] = {**_metrics(y, pred, key, options),
                               "params": _params_report(fitted, calib, key, options.log_factor)}
        for kind in ("pure", "calibrated"):
            if "rmse" in entry[kind]:
                entry[kind].update(_curve_extras(entry[kind]["rmse"], entry["noise_floor"],
                                                 test, pred if kind == "calibrated" else pure))
        report["groups"][key] = entry
        calibrated[key] = (lambda xs, key=key, calib=calib:
                           _calibrated_prediction(fitted, key, calib, np.asarray(xs, float)))
    return report, calibrated


def _metrics(y: np.ndarray, pred: np.ndarray, key: str, options: FitOptions) -> dict[str, Any]:
    m = prediction_metrics(y, pred, np.zeros(len(y), dtype=int), [key], options.log_factor,
                           positive=bool(np.all(y > 0)))
    m.pop("r2_group", None)
    return m


def noise_floor(points) -> float | None:
    """Point-to-point scatter of one curve around its own smooth trend.

    The standard deviation implied by second differences of the step-ordered points,
    ``sqrt(mean((y[i-1] - 2 y[i] + y[i+1])^2) / 6)``: a locally linear trend cancels, white noise
    of standard deviation s gives s. No law can predict a curve better than this; a held-out
    RMSE near it is as good as prediction gets.

    >>> from types import SimpleNamespace as P
    >>> noise_floor(P(align=np.arange(6.0), y=np.array([1.0, 2, 3, 4, 5, 6])))
    0.0
    """
    order = np.argsort(points.align)
    y = np.asarray(points.y, float)[order]
    if len(y) < 3:
        return None
    second = y[:-2] - 2.0 * y[1:-1] + y[2:]
    return float(np.sqrt(np.mean(second * second) / 6.0))


def _curve_extras(rmse: float | None, floor: float | None, points, pred: np.ndarray
                  ) -> dict[str, Any]:
    """Held-out error relative to the noise floor, and the error at the last point."""
    last = int(np.argmax(points.align))
    out: dict[str, Any] = {"final_point": {"x": float(points.x[last]), "y": float(points.y[last]),
                                           "y_pred": float(pred[last]),
                                           "rel_error": float(pred[last] / points.y[last] - 1.0)
                                           if points.y[last] else math.nan}}
    if rmse is not None and floor:
        out["rmse_over_noise"] = rmse / floor
    return out


def per_curve_report(fitted: FittedLaw, full: Dataset, test_part: Dataset,
                     options: FitOptions) -> dict[str, Any]:
    """Per curve: held-out RMSE, R^2, final-point error, noise floor (measured on the whole
    curve), RMSE / noise floor and, with bootstrap draws, the interval coverage."""
    test = test_part.points()
    whole = full.points()
    out: dict[str, Any] = {}
    for g, key in enumerate(test_part.keys):
        sel = test.gidx == g
        if not sel.any():
            continue
        part = test.subset(sel)
        pred = fitted.predict(part.x, [key] * int(sel.sum()))
        entry = _metrics(part.y, pred, key, options)
        entry["noise_floor"] = noise_floor(whole.subset(whole.gidx == g))
        entry.update(_curve_extras(entry["rmse"], entry["noise_floor"], part, pred))
        interval = fitted.predict_interval(part.x, [key] * int(sel.sum()))
        if interval is not None:
            entry["interval_coverage"] = float(np.mean((part.y >= interval[0])
                                                       & (part.y <= interval[1])))
        out[key] = entry
    return out


def hidden_by_pooling(pooled_r2: float | None, per_curve: Mapping[str, Mapping[str, Any]]
                      ) -> str | None:
    """A plain sentence when a good pooled R^2 hides poor prediction of the curves themselves."""
    bad = [k for k, e in per_curve.items() if e.get("r2") is not None and e["r2"] < 0]
    if pooled_r2 is None or pooled_r2 < 0.9 or not bad:
        return None
    return (f"the pooled held-out R2 {pooled_r2:.3f} hides poor per-curve prediction: the "
            f"held-out R2 is below 0 on {len(bad)} of {len(per_curve)} curves ({', '.join(bad)}), "
            f"i.e. worse than each curve's own mean; the pooled number mostly measures the "
            f"spread between groups")


def fraction_report(fitted: FittedLaw, fraction: float, fit_part: Dataset, test_part: Dataset,
                    options: FitOptions) -> dict[str, Any]:
    """Score ``fitted`` (fitted on ``fit_part``) on the rest of every curve, ``test_part``."""
    test = test_part.points()
    report: dict[str, Any] = {"protocol": "fit-fraction", "fraction": fraction,
                              "n_fit": int(len(fit_part.points().y)), "n_test": int(len(test.y))}
    if len(test.y):
        groups = [test_part.keys[g] for g in test.gidx]
        pred = fitted.predict(test.x, groups)
        report["test"] = prediction_metrics(test.y, pred, test.gidx, test_part.keys,
                                            options.log_factor, positive=bool(np.all(test.y > 0)))
        final = {}
        for g, key in enumerate(test_part.keys):
            sel = np.nonzero(test.gidx == g)[0]
            if sel.size:
                last = sel[np.argmax(test.align[sel])]
                final[key] = {"x": float(test.x[last]), "y": float(test.y[last]),
                              "y_pred": float(pred[last]),
                              "rel_error": float(pred[last] / test.y[last] - 1.0)
                              if test.y[last] else math.nan}
        report["final_point"] = final
    return report


def validation_summary(validation: Mapping[str, Any]) -> str | None:
    """One line on the held-out prediction, per curve rather than pooled only."""
    if validation.get("protocol") == "fit-fraction":
        curves = validation.get("per_curve") or {}
        pooled = (validation.get("test") or {}).get("r2")
    elif validation.get("protocol") == "holdout-group":
        curves = {k: e.get("calibrated", {}) for k, e in (validation.get("groups") or {}).items()}
        pooled = None
    else:
        return None
    r2 = [e["r2"] for e in curves.values() if e.get("r2") is not None]
    ratio = [e["rmse_over_noise"] for e in curves.values() if e.get("rmse_over_noise")]
    if not r2:
        return None
    what = "held-out tails" if validation["protocol"] == "fit-fraction" else "held-out groups " \
        "(calibrated)"
    parts = [f"{what}: R2 per curve {min(r2):.3g} to {max(r2):.3g}"]
    if ratio:
        parts.append(f"RMSE / noise floor median {float(np.median(ratio)):.2f}")
    if pooled is not None:
        parts.append(f"pooled R2 {pooled:.4f}")
    return ", ".join(parts)
