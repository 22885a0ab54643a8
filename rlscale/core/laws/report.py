"""The JSON object ``rlscale fit`` writes: parameters, metrics, intervals, diagnostics, provenance.

Everything a later ``rlscale fit --load`` needs to predict is in it (law, options, groups with
their numeric sizes, parameters in the stated log base, bootstrap draws), and everything a reader
needs to judge the fit (pooled and per-group R^2 in linear and log space, RMSE, warnings for
parameters on bounds, the data that went in).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from rlscale.core.errors import OptionError
from rlscale.core.laws.data import Dataset, DataSpec
from rlscale.core.laws.fit import FitArrays, FitOptions, FitResult, fit_metrics
from rlscale.core.laws.model import FittedLaw
from rlscale.core.laws.uncertainty import BootstrapResult, intervals


def dataset_info(dataset: Dataset) -> dict[str, Any]:
    """Where the points came from: counts, runs per group, x range per group."""
    pts = dataset.points()
    x_range = {}
    for g, key in enumerate(dataset.keys):
        sel = pts.x[pts.gidx == g]
        if sel.size:
            x_range[key] = [float(sel.min()), float(sel.max())]
    return {**dataset.counts, "runs": dict(zip(dataset.keys, dataset.runs_per_group(), strict=True)),
            "averaged": dataset.spec.average, "aligned_by": dataset.aligned_by,
            "x_range": x_range}


def fit_report(fitted: FittedLaw, result: FitResult, arrays: FitArrays, spec: DataSpec,
               options: FitOptions, dataset: Dataset | None = None,
               boot: BootstrapResult | None = None, level: float = 0.95) -> dict[str, Any]:
    """Assemble the output object for a fit (without run metadata, which :func:`rlscale.fit`
    adds)."""
    law = fitted.law
    log_base = options.log_base
    report: dict[str, Any] = {
        "law": law.name,
        "law_options": dict(law.options),
        "formula": law.title,
        "citation": law.citation,
        "x": spec.x, "y": spec.y, "group": spec.group, "run": spec.run,
        "log_base": log_base,
        "space": options.space,
        "weights": options.weights,
        "huber": options.huber,
        "groups": {k: (None if math.isnan(v) else float(v))
                   for k, v in zip(fitted.keys, fitted.n_values, strict=True)},
        "params": fitted.params_json(fitted.values, log_base),
    }
    derived = fitted.derived()
    if derived:
        report["derived"] = _scale_derived(derived, options.log_factor)
    report["metrics"] = fit_metrics(result, arrays, fitted.keys)
    if boot is not None:
        draws = fitted.samples_json(log_base)
        report["ci"] = intervals(draws, level)
        if law.derived is not None and boot.samples:
            per = [_scale_derived(fitted.derived(s), options.log_factor) for s in boot.samples]
            report["ci"]["derived"] = intervals(_stack(per), level)
        report["bootstrap"] = {"n": len(boot.samples), "failed": boot.n_failed,
                               "mode": boot.mode, "level": level, "samples": draws}
    # per-group warnings name the group instead of its index
    warnings = []
    for w in result.warnings:
        item = w.as_dict()
        if w.param and "[" in w.param:
            name, index = w.param[:-1].split("[")
            label = f"{name}[{fitted.keys[int(index)]}]"
            item["param"] = label
            item["message"] = item["message"].replace(w.param, label, 1)
        warnings.append(item)
    report["warnings"] = warnings
    report["fit"] = dict(result.info)
    if dataset is not None:
        report["data"] = dataset_info(dataset)
    return report


def _scale_derived(derived: Mapping[str, Any], log_factor: float) -> dict[str, Any]:
    out = {}
    for name, per in derived.items():
        scale = log_factor if name == "E" else 1.0
        out[name] = {k: v * scale for k, v in per.items()}
    return out


def _stack(items: list[Mapping[str, Any]]) -> dict[str, Any]:
    """[{name: {key: v}}] -> {name: {key: [v, ...]}}."""
    out: dict[str, Any] = {}
    for item in items:
        for name, per in item.items():
            for key, v in per.items():
                out.setdefault(name, {}).setdefault(key, []).append(v)
    return out


def reuse_summary(fitted: FittedLaw, dataset: Dataset, reference: str | None,
                  log_factor: float = 1.0) -> dict[str, Any]:
    """Final-step loss per reuse factor and its difference to the reference (tau = 1).

    The comparison is made at the last step every tau reaches (the paper compares reuse runs on
    the steps they share, T25 §4.3 item 9), both as the fitted law's value there and as the mean
    observed loss of the last point.
    """
    pts = dataset.points()
    keys = fitted.keys
    if reference is None:
        ref_index = next((i for i, v in enumerate(fitted.n_values) if v == 1.0), 0)
    else:
        ref_index = fitted.find_group(reference)
        if ref_index is None:
            raise OptionError("reference", f"{reference!r} is not one of the groups "
                              f"({', '.join(keys)})")
    final_x = min(float(pts.x[pts.gidx == g].max()) for g in range(len(keys)))
    pred = fitted.predict(np.full(len(keys), final_x), keys)
    observed = []
    for g in range(len(keys)):
        sel = (pts.gidx == g) & (pts.x <= final_x)
        last = np.nonzero(sel)[0][np.argmax(pts.x[sel])]
        observed.append(float(pts.y[last]))
    out = {"reference": keys[ref_index], "final_x": final_x, "groups": {}}
    for g, key in enumerate(keys):
        out["groups"][key] = {
            "k": float(np.asarray(fitted.values["k"])[g]),
            "E": float(np.asarray(fitted.values["E"])[g]) * log_factor,
            "loss_final_pred": float(pred[g]),
            "delta_pred": float(pred[g] - pred[ref_index]),
            "loss_final_obs": observed[g],
            "delta_obs": observed[g] - observed[ref_index],
        }
    return out
