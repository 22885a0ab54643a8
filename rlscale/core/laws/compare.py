"""Compare laws on the same points and the same protocol: which one predicts the curves?

Every law is fitted to the same dataset, in the same space, under the same validation protocol
(``--fit-fraction``: the tail of every curve; ``--holdout-group``: unseen sizes, predicted
purely from the law), and ranked by the mean held-out RMSE over curves. Pooled R^2 and AIC/BIC
of the fitted points are reported beside it but do not rank: a pooled R^2 mostly measures the
spread between groups, and AIC/BIC only compare laws fitted in one space to one set of points
(which holds here). A law that fails to fit is listed with its error, last.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from rlscale.core.errors import RlscaleError, UsageError
from rlscale.core.laws.data import Dataset
from rlscale.core.laws.forms import Law

DEFAULT_COMPARE = ("saturating", "loglinear", "decomposition", "sigmoid")
DEFAULT_FRACTION = 0.3  # the paper's intra-model protocol (first 30 % of steps)


def _held_out(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per-curve held-out metrics of one fit report, whatever the protocol."""
    validation = report.get("validation") or {}
    if validation.get("protocol") == "fit-fraction":
        return validation.get("per_curve", {})
    out = {}
    for key, entry in validation.get("groups", {}).items():
        pure = entry.get("pure", {})
        out[key] = pure if "rmse" in pure else {"unavailable": pure.get("reason", "no prediction")}
    return out


def compare_laws(dataset: Dataset, laws: Sequence[Law], make_request: Callable[[Law], Any],
                 run: Callable[..., Any]) -> dict[str, Any]:
    """Fit each law (``make_request(law)`` -> FitRequest, ``run(dataset, request)`` -> outcome)
    and rank them; returns the comparison object ``rlscale fit --compare`` prints."""
    rows = []
    protocol = None
    for law in laws:
        request = make_request(law)
        row: dict[str, Any] = {"law": law.name, "law_options": dict(law.options)}
        try:
            report = run(dataset, request).report
        except UsageError:  # the user's (e.g. no such --holdout-group): stops the comparison
            raise
        except RlscaleError as exc:  # this law cannot be fitted: listed, last
            row["error"] = str(exc)
            rows.append(row)
            continue
        protocol = (report.get("validation") or {}).get("protocol", protocol)
        curves = _held_out(report)
        rmses = [c["rmse"] for c in curves.values() if c.get("rmse") is not None]
        ratios = [c["rmse_over_noise"] for c in curves.values() if c.get("rmse_over_noise")]
        metrics = report["metrics"]
        row.update({
            "heldout_rmse_mean": float(np.mean(rmses)) if rmses and len(rmses) == len(curves)
            else None,
            "heldout_rmse_over_noise_median": float(np.median(ratios)) if ratios else None,
            "heldout_r2_worst": min((c["r2"] for c in curves.values()
                                     if c.get("r2") is not None), default=None),
            "heldout": {k: {m: c.get(m) for m in ("rmse", "r2", "rmse_over_noise")}
                        if "rmse" in c else c for k, c in curves.items()},
            "r2": metrics.get("r2"), "aic": metrics.get("aic"), "bic": metrics.get("bic"),
            "n_params": metrics.get("n_params"), "n_points": metrics.get("n_points"),
            "params": {k: v for k, v in report["params"].items() if not isinstance(v, dict)},
            "warnings": [w["message"] for w in report["warnings"] if w["severity"] == "warning"],
        })
        rows.append(row)

    def rank_key(row: dict[str, Any]) -> tuple:
        value = row.get("heldout_rmse_mean")
        return (value is None or not math.isfinite(value), value if value is not None else 0.0)

    rows.sort(key=rank_key)
    for i, row in enumerate(rows, 1):
        row["rank"] = i if row.get("heldout_rmse_mean") is not None else None
    return {"compare": rows, "protocol": protocol, "ranked_by": "heldout_rmse_mean"}


def with_fraction(request: Any, fraction: float = DEFAULT_FRACTION) -> Any:
    """The request with the default tail protocol when it has none."""
    if request.holdout or request.fit_fraction is not None:
        return request
    return dataclasses.replace(request, fit_fraction=fraction)
