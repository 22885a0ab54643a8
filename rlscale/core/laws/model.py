"""A fitted law you can save, load and predict with.

:class:`FittedLaw` holds the law, its groups, the parameter values (intercepts in log10 inside,
converted to the chosen base in JSON) and, after a bootstrap, the parameter samples that give
prediction intervals. ``to_params_json`` / ``from_fit_json`` are exact inverses, so a saved fit
reloads and predicts identically.

Unseen groups: when every per-group parameter of the law is an intercept-like quantity
(``Param.interpolable``), its value for a new model size is interpolated piecewise-linearly in
log10 N between the fitted sizes and extrapolated linearly from the two nearest ones -- the
paper's 72B procedure, which extrapolates E0 linearly in log10 N from the 14B and 32B values
(T25 §1.12 step 3).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rlscale.core.identity import label
from rlscale.core.laws.data import parse_size, same_group
from rlscale.core.laws.fit import expand
from rlscale.core.laws.forms import LN10, Law, get_law

LOG_BASES = ("10", "e")


def base_factor(log_base: str) -> float:
    """Multiplier from log10 intercepts to intercepts in ``log_base``."""
    if log_base not in LOG_BASES:
        raise ValueError(f"unknown log base {log_base!r}; expected 10 or e")
    return LN10 if log_base == "e" else 1.0


def interpolate_in_log_n(n_known: np.ndarray, values: np.ndarray, n_new: float,
                         log_values: bool = False) -> float:
    """Piecewise-linear interpolation of a per-size value in log10 N, linear extrapolation
    from the two nearest sizes outside the fitted range.

    >>> float(interpolate_in_log_n(np.array([1e9, 1e10]), np.array([0.0, 1.0]), 1e11))
    2.0
    >>> round(float(interpolate_in_log_n(np.array([1e9, 1e10]), np.array([0.0, 1.0]), 10**9.5)), 6)
    0.5
    """
    order = np.argsort(n_known)
    lx = np.log10(n_known[order])
    v = np.asarray(values, dtype=float)[order]
    if log_values:
        v = np.log10(v)
    t = math.log10(n_new)
    if len(lx) == 1:
        out = float(v[0])
    elif t <= lx[0]:
        out = float(v[0] + (v[1] - v[0]) * (t - lx[0]) / (lx[1] - lx[0]))
    elif t >= lx[-1]:
        out = float(v[-1] + (v[-1] - v[-2]) * (t - lx[-1]) / (lx[-1] - lx[-2]))
    else:
        out = float(np.interp(t, lx, v))
    return 10 ** out if log_values else out


@dataclass
class FittedLaw:
    law: Law
    keys: list[str]
    n_values: np.ndarray
    values: dict[str, Any]  # natural units, intercepts in log10
    samples: list[dict[str, Any]] = field(default_factory=list)  # bootstrap parameter draws
    level: float = 0.95

    # --- groups --------------------------------------------------------------------------

    def find_group(self, value: Any) -> int | None:
        key = label(value)
        if key in self.keys:
            return self.keys.index(key)
        for i, k in enumerate(self.keys):
            if same_group(k, value):
                return i
        return None

    def group_values_for(self, values: Mapping[str, Any], group: Any) -> dict[str, float]:
        """Per-group parameters for one group: fitted, or interpolated in log N when unseen.

        Raises ValueError with a user-facing message when the group cannot be predicted.
        """
        index = self.find_group(group)
        out = {}
        for p in self.law.group_params:
            if index is not None:
                out[p.name] = float(np.asarray(values[p.name])[index])
                continue
            n = parse_size(group)
            if not p.interpolable or n is None or n <= 0:
                why = ("it has its own " + ", ".join(q.name for q in self.law.group_params)
                       + " per group") if not p.interpolable else "it is not a model size"
                raise ValueError(f"group {label(group)!r} is not in the fit and the "
                                 f"'{self.law.name}' law cannot predict a new group ({why})")
            if len(self.keys) < 2:
                raise ValueError(f"group {label(group)!r} is not in the fit; interpolating "
                                 f"{p.name} in log N needs at least 2 fitted groups")
            out[p.name] = interpolate_in_log_n(self.n_values, np.asarray(values[p.name]), n,
                                               log_values=p.log_scale)
        return out

    def is_extrapolated(self, group: Any) -> bool:
        return self.find_group(group) is None and bool(self.law.group_params)

    # --- prediction ------------------------------------------------------------------------

    def predict_with(self, values: Mapping[str, Any], x: np.ndarray, groups: Sequence[Any]
                     ) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        uniq: dict[str, int] = {}
        gidx = np.empty(len(groups), dtype=int)
        reps: list[Any] = []
        for i, g in enumerate(groups):
            key = label(g)
            if key not in uniq:
                uniq[key] = len(reps)
                reps.append(g)
            gidx[i] = uniq[key]
        per_group = [self.group_values_for(values, g) for g in reps]
        local = {p.name: values[p.name] for p in self.law.global_params}
        for p in self.law.group_params:
            local[p.name] = np.array([pg[p.name] for pg in per_group])
        n_point = np.array([parse_size(g) if parse_size(g) is not None else math.nan
                            for g in reps])[gidx]
        with np.errstate(all="ignore"):
            return self.law.predict(expand(self.law, local, gidx), x, n_point)

    def predict(self, x: np.ndarray, groups: Sequence[Any]) -> np.ndarray:
        return self.predict_with(self.values, x, groups)

    def predict_interval(self, x: np.ndarray, groups: Sequence[Any]
                         ) -> tuple[np.ndarray, np.ndarray] | None:
        """Percentile interval of the prediction over the bootstrap draws (None without any)."""
        if not self.samples:
            return None
        draws = np.array([self.predict_with(s, x, groups) for s in self.samples])
        tail = (1.0 - self.level) / 2.0 * 100.0
        return np.nanpercentile(draws, tail, axis=0), np.nanpercentile(draws, 100 - tail, axis=0)

    def derived(self, values: Mapping[str, Any] | None = None) -> dict[str, Any]:
        if self.law.derived is None:
            return {}
        return self.law.derived(self.values if values is None else values, self.keys,
                                self.n_values)

    # --- JSON ------------------------------------------------------------------------------

    def params_json(self, values: Mapping[str, Any], log_base: str) -> dict[str, Any]:
        """Parameters as JSON: globals as numbers, per-group ones keyed by group."""
        factor = base_factor(log_base)
        out: dict[str, Any] = {}
        for p in self.law.params:
            scale = factor if p.log_intercept else 1.0
            if p.per_group:
                out[p.name] = {k: float(v) * scale
                               for k, v in zip(self.keys, np.asarray(values[p.name]), strict=True)}
            else:
                out[p.name] = float(values[p.name]) * scale
        return out

    def values_from_json(self, params: Mapping[str, Any], log_base: str) -> dict[str, Any]:
        factor = base_factor(log_base)
        out: dict[str, Any] = {}
        for p in self.law.params:
            if p.name not in params:
                raise ValueError(f"saved fit has no parameter '{p.name}'")
            scale = 1.0 / factor if p.log_intercept else 1.0
            if p.per_group:
                per = params[p.name]
                if not isinstance(per, Mapping) or set(per) != set(self.keys):
                    raise ValueError(f"saved fit: '{p.name}' must have one value per group "
                                     f"({', '.join(self.keys)})")
                out[p.name] = np.array([_number(per[k], p.name) * scale for k in self.keys])
            else:
                out[p.name] = _number(params[p.name], p.name) * scale
        return out

    def samples_json(self, log_base: str) -> dict[str, Any]:
        """Bootstrap draws in the same shape as ``params``, with lists instead of numbers."""
        per_sample = [self.params_json(s, log_base) for s in self.samples]
        out: dict[str, Any] = {}
        for p in self.law.params:
            if p.per_group:
                out[p.name] = {k: [s[p.name][k] for s in per_sample] for k in self.keys}
            else:
                out[p.name] = [s[p.name] for s in per_sample]
        return out

    def samples_from_json(self, draws: Mapping[str, Any], log_base: str) -> list[dict[str, Any]]:
        first = self.law.params[0]
        column = draws[first.name]
        n = len(next(iter(column.values()))) if first.per_group else len(column)
        samples = []
        for i in range(n):
            params = {p.name: ({k: draws[p.name][k][i] for k in self.keys} if p.per_group
                               else draws[p.name][i]) for p in self.law.params}
            samples.append(self.values_from_json(params, log_base))
        return samples


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"saved fit: parameter '{name}' must be a finite number, got {value!r}")
    return float(value)


def from_fit_json(obj: Mapping[str, Any]) -> tuple[FittedLaw, str]:
    """Rebuild a :class:`FittedLaw` from the JSON object ``rlscale fit`` writes.

    Returns the fitted law and the log base its intercepts were written in.
    Raises ValueError with a user-facing message when the object is not a saved fit.
    """
    for name in ("law", "params", "groups", "log_base"):
        if name not in obj:
            raise ValueError(f"not an rlscale fit: missing '{name}'")
    options = obj.get("law_options") or {}
    law = get_law(str(obj.get("law_factory") or obj["law"]),
                  **{k: str(v) for k, v in options.items()})
    groups = obj["groups"]
    if not isinstance(groups, Mapping):
        raise ValueError("not an rlscale fit: 'groups' must be an object")
    keys = list(groups)
    n_values = np.array([math.nan if v is None else float(v) for v in groups.values()])
    log_base = str(obj["log_base"])
    fitted = FittedLaw(law, keys, n_values, {})
    fitted.values = fitted.values_from_json(obj["params"], log_base)
    boot = obj.get("bootstrap")
    if isinstance(boot, Mapping) and boot.get("samples"):
        fitted.samples = fitted.samples_from_json(boot["samples"], log_base)
        fitted.level = float(boot.get("level", 0.95))
    return fitted, log_base
