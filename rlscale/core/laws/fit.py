"""Fitting a :class:`~rlscale.core.laws.forms.Law` to points: deterministic multi-start least squares.

How the fit works (and why it beats the paper's fitter, T25 §4.2-4.3):

1. **Grid + variable projection.** Every combination of the grid values of the law's parameters
   (e.g. K_max x N_0) is a start; the remaining parameters (the per-group intercepts E) are
   solved in closed form for that start by the law's ``profile`` (for fixed k the model is
   linear in E in log space). Random starts drawn from ``seed`` are added. Every start is scored
   with the real objective.
2. **Local refinement.** The best few starts are refined with :func:`scipy.optimize.least_squares`
   (trust-region reflective, bounds respected, log-scale parameters such as N_0 optimised as
   log10) over all parameters, in the chosen space, optionally with a Huber loss.
3. **Diagnostics.** Parameters that end on a bound, or a best start on the edge of the grid, are
   reported as structured warnings rather than silently accepted.

The objective is the weighted mean of squared residuals (of the Huber function with --huber),
with weights normalised to mean 1; in ``linear`` space with ``group-equal`` weights it is
exactly the paper's ``np.average((y_hat - y)^2, weights=w)``.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import least_squares

from rlscale.core.errors import RlscaleError
from rlscale.core.laws.forms import LN10, DataSummary, Law, Param

SPACES = ("log", "linear")
WEIGHTINGS = ("group-equal", "point")
TINY = 1e-300


@dataclass(frozen=True)
class FitOptions:
    """How to fit. ``log_base`` only changes the units of log-space residuals and intercepts."""

    space: str = "log"
    log_base: str = "10"
    huber: float | None = None
    weights: str = "group-equal"
    x_weight_power: float = 0.0
    random_starts: int = 8
    refine: int = 4
    seed: int = 0
    max_nfev: int = 3000

    @property
    def log_factor(self) -> float:
        """Multiplier from log10 to the reporting base."""
        return LN10 if self.log_base == "e" else 1.0


@dataclass
class FitArrays:
    """The points to fit: x, y, group index per point, numeric group value per group, weights."""

    x: np.ndarray
    y: np.ndarray
    gidx: np.ndarray
    n_values: np.ndarray
    w: np.ndarray

    @property
    def n_groups(self) -> int:
        return len(self.n_values)

    @property
    def n_point(self) -> np.ndarray:
        return self.n_values[self.gidx]

    def summary(self) -> DataSummary:
        return DataSummary(self.n_values, float(self.x.min()), float(self.x.max()),
                           float(self.y.min()), float(self.y.max()))


def point_weights(gidx: np.ndarray, n_groups: int, x: np.ndarray, mode: str = "group-equal",
                  x_weight_power: float = 0.0) -> np.ndarray:
    """Fit weights, normalised to mean 1 (the paper's ``gen_grouped_inv_weights``, T25 §4.2).

    ``group-equal`` gives every group the same total weight; ``point`` weighs points equally.
    ``x_weight_power`` p > 0 down-weights large x inside each group by ``(x / x_min)^-p``.

    >>> point_weights(np.array([0, 0, 0, 1]), 2, np.ones(4)).round(3).tolist()
    [0.667, 0.667, 0.667, 2.0]
    """
    if mode not in WEIGHTINGS:
        raise ValueError(f"unknown weighting {mode!r}; expected one of {', '.join(WEIGHTINGS)}")
    w = np.ones(len(gidx), dtype=float)
    if x_weight_power:
        x_min = np.full(n_groups, np.inf)
        np.minimum.at(x_min, gidx, x)
        w = np.power(x / x_min[gidx], -x_weight_power)
    if mode == "group-equal":
        totals = np.bincount(gidx, weights=w, minlength=n_groups)
        w = w / totals[gidx]
    return w * (len(w) / w.sum())


# --- parameter layout -------------------------------------------------------------------------


class Layout:
    """Maps a law's named parameters to the flat vector the optimiser sees.

    Log-scale parameters are stored as log10(value) in the vector, everything else as is;
    per-group parameters take one slot per group.
    """

    def __init__(self, law: Law, n_groups: int, summary: DataSummary):
        self.law = law
        self.n_groups = n_groups
        self.slices: dict[str, slice] = {}
        lower, upper, start = [], [], 0
        for p in law.params:
            size = n_groups if p.per_group else 1
            self.slices[p.name] = slice(start, start + size)
            lo, hi = p.bounds(summary)
            if p.log_scale:
                lo, hi = math.log10(max(lo, TINY)), math.log10(hi)
            lower += [lo] * size
            upper += [hi] * size
            start += size
        self.size = start
        self.lower = np.array(lower)
        self.upper = np.array(upper)

    def unpack(self, theta: np.ndarray) -> dict[str, Any]:
        """Vector -> {name: float or per-group array} in natural units."""
        out: dict[str, Any] = {}
        for p in self.law.params:
            v = theta[self.slices[p.name]]
            if p.log_scale:
                v = np.power(10.0, v)
            out[p.name] = v.copy() if p.per_group else float(v[0])
        return out

    def pack(self, values: Mapping[str, Any]) -> np.ndarray:
        theta = np.empty(self.size)
        for p in self.law.params:
            v = np.broadcast_to(np.asarray(values[p.name], dtype=float),
                                (self.n_groups,) if p.per_group else (1,))
            theta[self.slices[p.name]] = np.log10(np.maximum(v, TINY)) if p.log_scale else v
        return theta

    def clip(self, theta: np.ndarray) -> np.ndarray:
        span = self.upper - self.lower
        margin = np.where(np.isfinite(span), span * 1e-9, 0.0)
        return np.clip(theta, self.lower + margin, self.upper - margin)


def expand(law: Law, values: Mapping[str, Any], gidx: np.ndarray) -> dict[str, Any]:
    """Per-group parameter arrays -> per-point arrays (globals stay scalars)."""
    return {p.name: (np.asarray(values[p.name])[gidx] if p.per_group else values[p.name])
            for p in law.params}


# --- objective ----------------------------------------------------------------------------------


def residuals(law: Law, values: Mapping[str, Any], arrays: FitArrays, space: str,
              log_factor: float = 1.0) -> np.ndarray:
    """Unweighted residuals ``model - data`` in the fitting space (log in the reporting base)."""
    with np.errstate(all="ignore"):
        pred = law.predict(expand(law, values, arrays.gidx), arrays.x, arrays.n_point)
        if space == "log":
            r = (np.log10(np.maximum(pred, TINY)) - np.log10(arrays.y)) * log_factor
        else:
            r = pred - arrays.y
    return np.where(np.isfinite(r), r, 1e6)


def huber(r: np.ndarray, delta: float | None) -> np.ndarray:
    """``r^2`` inside ``|r| <= delta``, ``2 delta |r| - delta^2`` outside (scipy's 'huber' x delta^2).

    >>> huber(np.array([0.5, 3.0]), 1.0).tolist()
    [0.25, 5.0]
    """
    if delta is None:
        return r * r
    a = np.abs(r)
    return np.where(a <= delta, r * r, 2.0 * delta * a - delta * delta)


def objective(law: Law, values: Mapping[str, Any], arrays: FitArrays, options: FitOptions) -> float:
    r = residuals(law, values, arrays, options.space, options.log_factor)
    return float(np.mean(arrays.w * huber(r, options.huber)))


# --- result -----------------------------------------------------------------------------------


@dataclass
class FitWarning:
    """A diagnostic: ``severity`` is "warning" (shown on stderr) or "note" (output only)."""

    code: str
    message: str
    param: str | None = None
    severity: str = "warning"

    def as_dict(self) -> dict[str, Any]:
        out = {"code": self.code, "severity": self.severity, "message": self.message}
        if self.param is not None:
            out["param"] = self.param
        return out


@dataclass
class FitResult:
    law: Law
    values: dict[str, Any]  # natural units, intercepts in log10
    theta: np.ndarray
    layout: Layout
    objective: float
    options: FitOptions
    warnings: list[FitWarning] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)


def _grid_params(law: Law, summary: DataSummary) -> list[tuple[Param, list[float]]]:
    return [(p, p.grid_values(summary)) for p in law.params if p.grid_values(summary)]


def starting_values(law: Law, fixed: Mapping[str, float], arrays: FitArrays) -> dict[str, Any]:
    """Complete a start: the given grid values, then the law's profile, then defaults."""
    values: dict[str, Any] = dict(fixed)
    if law.profile is not None:
        with np.errstate(all="ignore"):
            profiled = law.profile(values, arrays.x, arrays.y, arrays.gidx, arrays.n_groups,
                                   arrays.n_values, arrays.w)
        for name, v in profiled.items():
            if name not in values:
                values[name] = v
    for p in law.params:
        if p.name not in values:
            values[p.name] = p.default if p.default is not None else 0.0
    return values


class Projection:
    """Closed-form per-group log-amplitudes (e.g. the intercepts E) for fixed shared parameters.

    If the prediction is ``10**E_g * f(x; shared)``, then for fixed shared parameters the
    weighted least-squares ``E_g`` is, in log space, the weighted mean of ``log10 y - log10 f``
    and, in linear space, ``log10`` of the amplitude ``sum(w y f) / sum(w f^2)``. Optimising the
    shared parameters with the intercepts projected out (Golub & Pereyra's variable projection)
    shrinks the problem from 2 + G to 2 parameters and removes their strongest correlation.
    """

    def __init__(self, law: Law, amplitude: Param, arrays: FitArrays, space: str):
        self.law, self.amplitude, self.arrays, self.space = law, amplitude, arrays, space
        self.zeros = np.zeros(arrays.n_groups)
        self.log_y = np.log10(arrays.y) if space == "log" else None

    def solve(self, shared: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        """(per-group amplitudes E, unweighted residuals) for the shared parameter values."""
        a = self.arrays
        values = {**shared, self.amplitude.name: self.zeros}
        with np.errstate(all="ignore"):
            base = self.law.predict(expand(self.law, values, a.gidx), a.x, a.n_point)
            if self.space == "log":
                log_base = np.log10(np.maximum(base, TINY))
                num = np.bincount(a.gidx, weights=a.w * (self.log_y - log_base),
                                  minlength=a.n_groups)
                den = np.bincount(a.gidx, weights=a.w, minlength=a.n_groups)
                e = num / den
                r = log_base + e[a.gidx] - self.log_y
            else:
                num = np.bincount(a.gidx, weights=a.w * a.y * base, minlength=a.n_groups)
                den = np.bincount(a.gidx, weights=a.w * base * base, minlength=a.n_groups)
                amp = np.maximum(num / np.where(den > 0, den, 1.0), TINY)
                e = np.log10(amp)
                r = amp[a.gidx] * base - a.y
        return e, np.where(np.isfinite(r), r, 1e6)


def _projectable(law: Law, options: FitOptions) -> Param | None:
    """The per-group parameter to project out, when the law and options allow it."""
    group = law.group_params
    if options.huber is None and len(group) == 1 and group[0].log_amplitude and law.global_params:
        return group[0]
    return None


def fit_law(law: Law, arrays: FitArrays, options: FitOptions = FitOptions(), *,
            start: np.ndarray | None = None) -> FitResult:
    """Fit ``law`` to ``arrays``; deterministic for given options (``options.seed``).

    With ``start`` (a parameter vector, e.g. the full-data optimum when bootstrapping) the grid
    search is skipped and only that start is refined.
    """
    if options.space not in SPACES:
        raise ValueError(f"unknown space {options.space!r}; expected one of {', '.join(SPACES)}")
    summary = arrays.summary()
    layout = Layout(law, arrays.n_groups, summary)
    sw = np.sqrt(arrays.w)

    # The optimiser always sees log10 residuals, so the fitted parameters do not depend on
    # --log-base; a Huber delta given in the reporting base is converted to log10 units.
    def fun(theta: np.ndarray) -> np.ndarray:
        return sw * residuals(law, layout.unpack(theta), arrays, options.space)

    amplitude = _projectable(law, options)
    if amplitude is not None:
        projection = Projection(law, amplitude, arrays, options.space)
        shared_layout = Layout(dataclasses.replace(law, params=law.global_params),
                               arrays.n_groups, summary)

        def complete(values: dict[str, Any]) -> dict[str, Any]:
            e, _ = projection.solve(values)
            return {**values, amplitude.name: e}

        def shared_fun(theta: np.ndarray) -> np.ndarray:
            return sw * projection.solve(shared_layout.unpack(theta))[1]

    grid = _grid_params(law, summary)
    starts: list[tuple[float, np.ndarray, dict[str, Any]]] = []
    if start is not None:
        theta0 = layout.clip(np.asarray(start, dtype=float))
        starts.append((0.0, theta0, {"kind": "given"}))
    else:
        candidates: list[tuple[dict[str, float], dict[str, Any]]] = []
        for combo in itertools.product(*(values for _, values in grid)):
            fixed = {p.name: v for (p, _), v in zip(grid, combo, strict=True)}
            candidates.append((fixed, {"kind": "grid", "grid": dict(fixed)}))
        if grid and options.random_starts:
            rng = np.random.default_rng(options.seed)
            for _ in range(options.random_starts):
                fixed = {}
                for p, _ in grid:
                    lo, hi = p.bounds(summary)
                    if p.log_scale:
                        fixed[p.name] = float(10 ** rng.uniform(math.log10(lo), math.log10(hi)))
                    else:
                        fixed[p.name] = float(rng.uniform(lo, hi))
                candidates.append((fixed, {"kind": "random"}))
        if not candidates:
            candidates.append(({}, {"kind": "profile"}))
        for fixed, meta in candidates:
            if amplitude is not None:  # score with the intercepts projected out: one predict
                values = {p.name: fixed.get(p.name, p.default if p.default is not None else 0.0)
                          for p in law.global_params}
                e, r = projection.solve(values)
                theta0 = layout.clip(layout.pack({**values, amplitude.name: e}))
                starts.append((float(np.mean(arrays.w * r * r)), theta0, meta))
                continue
            theta0 = layout.clip(layout.pack(starting_values(law, fixed, arrays)))
            score = objective(law, layout.unpack(theta0), arrays, options)
            starts.append((score, theta0, meta))
        starts.sort(key=lambda s: s[0])
    loss = "huber" if options.huber else "linear"
    f_scale = (options.huber or 1.0) / (options.log_factor if options.space == "log" else 1.0)
    best = None
    n_fev = 0
    for rank, (_score, theta0, meta) in enumerate(starts[:max(1, options.refine)]):
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            if amplitude is not None:
                shared0 = shared_layout.clip(shared_layout.pack(layout.unpack(theta0)))
                sol = least_squares(shared_fun, shared0, bounds=(shared_layout.lower,
                                                                 shared_layout.upper),
                                    method="trf", x_scale="jac", xtol=1e-12, ftol=1e-12,
                                    gtol=1e-12, max_nfev=options.max_nfev)
                theta = layout.pack(complete(shared_layout.unpack(sol.x)))
            else:
                sol = least_squares(fun, theta0, bounds=(layout.lower, layout.upper),
                                    method="trf", loss=loss, f_scale=f_scale, x_scale="jac",
                                    xtol=1e-12, ftol=1e-12, gtol=1e-12,
                                    max_nfev=options.max_nfev)
                theta = sol.x
        n_fev += sol.nfev
        value = objective(law, layout.unpack(theta), arrays, options)
        if best is None or value < best[0] - 1e-15:
            best = (value, theta, sol, rank, meta)
    assert best is not None
    value, theta, sol, rank, meta = best
    with np.errstate(all="ignore"):
        pred = law.predict(expand(law, layout.unpack(theta), arrays.gidx), arrays.x,
                           arrays.n_point)
    bad = ~np.isfinite(pred) | ((pred <= 0) if options.space == "log" else False)
    if np.any(bad):  # residuals there were a stand-in penalty: the "fit" would be meaningless
        raise RlscaleError(
            f"cannot fit the '{law.name}' law to these points: at the best parameters found its "
            f"prediction is {'not finite or not positive' if options.space == 'log' else 'not finite'} "
            f"at {int(bad.sum())} of {len(pred)} point(s) (check --x/--y and the law's domain)")
    result = FitResult(law, layout.unpack(theta), theta, layout, value, options)
    result.info = {"starts": len(starts), "refined": min(len(starts), max(1, options.refine)),
                   "best_start": {"rank": rank, **meta}, "nfev": n_fev,
                   "converged": bool(sol.success),
                   "method": "variable projection" if amplitude is not None else "full"}
    result.warnings = diagnose(law, theta, layout, meta, grid)
    solved_layout = shared_layout if amplitude is not None else layout
    result.warnings += identifiability(law, arrays, layout.size, sol.jac, solved_layout)
    result.warnings += outside_data(law, arrays, result.values)
    errors = standard_errors(sol.jac, sol.fun, layout.size)
    if errors is not None:
        stderr = {}
        for p in law.global_params:
            i = solved_layout.slices[p.name].start
            value = result.values[p.name]
            sd = float(errors[i])
            stderr[p.name] = value * LN10 * sd if p.log_scale else sd
            if (sd > 0.5) if p.log_scale else (sd > abs(value) > 0):
                shown = f"{sd:.2g} decades" if p.log_scale else f"{sd:.3g}"
                result.warnings.append(FitWarning(
                    "poorly_determined",
                    f"{p.name} is poorly determined by the data (standard error {shown}); it "
                    f"trades off against other parameters", p.name))
        result.info["stderr"] = stderr
    if not math.isfinite(value):
        raise RlscaleError("the fit did not converge to a finite objective; check the data")
    return result


def diagnose(law: Law, theta: np.ndarray, layout: Layout, meta: Mapping[str, Any],
             grid: Sequence[tuple[Param, list[float]]]) -> list[FitWarning]:
    """Warnings for parameters on a bound and for a best start on the edge of the grid."""
    out: list[FitWarning] = []
    span = layout.upper - layout.lower
    for p in law.params:
        sl = layout.slices[p.name]
        near_lo = np.abs(theta[sl] - layout.lower[sl]) <= 1e-6 * span[sl]
        near_hi = np.abs(layout.upper[sl] - theta[sl]) <= 1e-6 * span[sl]
        for i in np.nonzero(near_lo | near_hi)[0]:
            side = "lower" if near_lo[i] else "upper"
            bound = layout.lower[sl][i] if near_lo[i] else layout.upper[sl][i]
            if p.log_scale:
                bound = 10 ** bound
            label = p.name if not p.per_group else f"{p.name}[{i}]"
            out.append(FitWarning(
                "param_at_bound",
                f"{label} is at its {side} bound {bound:.6g}; the data do not pin it down "
                f"(more groups or a wider x range would)", label))
    if meta.get("kind") == "grid":
        final = layout.unpack(theta)
        for p, values in grid:
            if len(values) > 1 and meta["grid"][p.name] in (values[0], values[-1]):
                ended = np.atleast_1d(final[p.name])
                outside = bool(np.any((ended < min(values)) | (ended > max(values))))
                where = ("outside the grid: the optimum may lie beyond the region the starts "
                         "explored (widen the bounds or check the data)" if outside
                         else "inside the grid")
                shown = ", ".join(f"{v:.6g}" for v in ended[:4]) + (" ..." if len(ended) > 4
                                                                     else "")
                out.append(FitWarning(
                    "start_at_grid_edge",
                    f"the best start has {p.name} = {meta['grid'][p.name]:.6g}, on the edge of "
                    f"its starting grid [{values[0]:.6g} ... {values[-1]:.6g}]; the fit ended "
                    f"at {shown}, {where}", p.name, "warning" if outside else "note"))
    return out


IDENTIFIABILITY_CODES = ("not_identifiable", "flat_direction")
STRICT_CODES = IDENTIFIABILITY_CODES + ("param_at_bound",)  # what fit --strict refuses
FLAT_RATIO = 1e-7  # smallest / largest singular value of the column-scaled Jacobian


def identifiability(law: Law, arrays: FitArrays, n_params: int, jac: np.ndarray | None,
                    solved: Layout) -> list[FitWarning]:
    """Warnings for what the data cannot determine, whatever the optimiser returned.

    * fewer points than parameters (the fit interpolates; R^2 says nothing);
    * a law with parameters fixed only across groups (``Law.across_groups``, e.g. K_max and N_0
      of k(N)) fitted to one group, or to fewer groups than such parameters;
    * a direction of no curvature: a parameter that does not change the residuals, or a
      combination of parameters that trade off exactly (a near-zero singular value of the
      Jacobian at the optimum, columns scaled to unit norm).
    """
    out: list[FitWarning] = []
    n_points, n_groups = len(arrays.y), arrays.n_groups
    if n_points <= n_params:
        out.append(FitWarning(
            "not_identifiable", f"{n_points} point(s) for {n_params} parameter(s): the law "
            f"passes through the data and R2 means nothing; add points or fit a smaller law"))
    across = [name for name in law.across_groups if any(p.name == name for p in law.params)]
    if across and n_groups < max(2, len(across)):
        names = " and ".join(across) if len(across) <= 2 else ", ".join(across)
        out.append(FitWarning(
            "not_identifiable", f"{names} describe how the curves change across groups, and "
            f"there {'is' if n_groups == 1 else 'are'} {n_groups} group(s) for {len(across)} "
            f"such parameter(s): they are not identifiable (fit more model sizes, or "
            f"--law loglinear for one slope per group)", across[0]))
    if jac is None or not np.all(np.isfinite(jac)) or jac.shape[1] == 0:
        return out
    names = []
    for p in solved.law.params:
        size = solved.slices[p.name].stop - solved.slices[p.name].start
        names += [p.name] if size == 1 else [f"{p.name}[{i}]" for i in range(size)]
    norms = np.linalg.norm(jac, axis=0)
    dead = [names[i] for i in np.nonzero(norms <= 1e-12 * max(float(norms.max()), 1e-300))[0]]
    if dead:
        out.append(FitWarning(
            "flat_direction", f"{', '.join(dead[:4])} {'does' if len(dead) == 1 else 'do'} not "
            f"change the fit at the optimum (no curvature): the data do not determine "
            f"{'it' if len(dead) == 1 else 'them'}", dead[0]))
        return out
    singular, vt = np.linalg.svd(jac / norms, full_matrices=False)[1:]
    if len(singular) > 1 and singular[-1] < FLAT_RATIO * singular[0]:
        weights = np.abs(vt[-1])
        involved = [names[i] for i in np.argsort(-weights) if weights[i] > 0.2][:4]
        out.append(FitWarning(
            "flat_direction", f"{' and '.join(involved)} trade off along a direction with no "
            f"curvature (singular value ratio {singular[-1] / singular[0]:.1e}): the data "
            f"determine only a combination of them", involved[0]))
    return out


PROFILE_POINTS = 7
CHI2_95_1DOF = 3.841  # a 95 % profile-likelihood interval: n log(obj / obj_min) <= this


def profile_param(law: Law, arrays: FitArrays, options: FitOptions, result: FitResult,
                  name: str, values: Sequence[float] | None = None) -> dict[str, Any]:
    """The best objective with parameter ``name`` held at each of ``values`` (others refitted).

    A flat profile is a direction the data do not determine. Returns the values, the
    objectives, and the approximate 95 % interval of the values whose objective is within
    ``CHI2_95_1DOF / n`` (in log) of the best (Gaussian errors).
    """
    param = law.param(name)
    lo, hi = param.bounds(arrays.summary())
    best = float(result.values[name])
    if values is None:
        top = min(hi, float(arrays.y.min())) if name == "L_inf" else hi
        values = sorted({*np.linspace(lo, top * 0.98, PROFILE_POINTS).tolist(), best})
    quick = dataclasses.replace(options, random_starts=0, refine=1)
    objectives = []
    for v in values:
        fixed_law = law.with_fixed({name: v})
        try:
            start = result.layout.pack({**result.values, name: v})
            objectives.append(fit_law(fixed_law, arrays, quick, start=start).objective)
        except RlscaleError:
            objectives.append(math.inf)
    n = len(arrays.y)
    floor = min([result.objective, *objectives])
    inside = [v for v, o in zip(values, objectives, strict=True)
              if math.isfinite(o) and n * math.log(max(o, TINY) / max(floor, TINY)) <= CHI2_95_1DOF]
    return {"values": [float(v) for v in values], "objective": objectives,
            "interval_95": [float(min(inside)), float(max(inside))] if inside else None,
            "flat": bool(inside) and len(inside) == len(values)}


def outside_data(law: Law, arrays: FitArrays, values: Mapping[str, Any]) -> list[FitWarning]:
    """A per-group x scale (``Param.x_scale``, e.g. D_0) fitted beyond the group's own x range:
    the curve never reaches it, so only a combination with the amplitude is determined."""
    out = []
    for p in law.group_params:
        if not p.x_scale:
            continue
        for g, v in enumerate(np.asarray(values[p.name], dtype=float)):
            xs = arrays.x[arrays.gidx == g]
            if xs.size and not xs.min() <= v <= xs.max():
                out.append(FitWarning(
                    "not_identifiable",
                    f"{p.name}[{g}] = {v:.4g} lies outside its curve's x range [{xs.min():.4g}, "
                    f"{xs.max():.4g}]: the data fix only a combination of it with the other "
                    f"per-group parameters (fit fewer steps, fewer sizes, or a law without it)",
                    f"{p.name}[{g}]"))
    return out


def standard_errors(jac: np.ndarray, resid: np.ndarray, n_params: int) -> np.ndarray | None:
    """Asymptotic standard errors of the solved coordinates: ``sqrt(diag(s^2 (J'J)^+))``.

    ``s^2`` is the residual variance with ``n_params`` (all parameters, including projected
    ones) subtracted from the degrees of freedom. With variable projection, ``jac`` is the
    Jacobian of the projected residuals, whose covariance is that of the shared parameters.
    """
    dof = len(resid) - n_params
    if dof <= 0 or jac is None:
        return None
    s2 = float(np.sum(resid * resid)) / dof
    with np.errstate(all="ignore"):
        cov = s2 * np.linalg.pinv(jac.T @ jac)
    return np.sqrt(np.clip(np.diag(cov), 0.0, None))


# --- metrics ---------------------------------------------------------------------------------


def r_squared(y: np.ndarray, pred: np.ndarray) -> float | None:
    """``1 - SS_res / SS_tot`` (None when y is constant)."""
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    if len(y) < 2 or ss_tot <= 0:
        return None
    return 1.0 - float(np.sum((y - pred) ** 2)) / ss_tot


def prediction_metrics(y: np.ndarray, pred: np.ndarray, gidx: np.ndarray, keys: Sequence[str],
                       log_factor: float = 1.0, *, positive: bool = True) -> dict[str, Any]:
    """Goodness of fit: pooled R^2 in linear space (the paper's), R^2 in log space, per-group
    R^2, RMSE in linear and log space, mean absolute relative error, number of points."""
    out: dict[str, Any] = {"n_points": int(len(y)), "r2": r_squared(y, pred)}
    with np.errstate(all="ignore"):
        ly, lp = np.log10(y) * log_factor, np.log10(np.maximum(pred, TINY)) * log_factor
    if positive:
        out["r2_log"] = r_squared(ly, lp)
    out["r2_group"] = {keys[g]: r_squared(y[gidx == g], pred[gidx == g])
                       for g in np.unique(gidx)}
    out["rmse"] = float(np.sqrt(np.mean((y - pred) ** 2))) if len(y) else None
    if positive:
        out["rmse_log"] = float(np.sqrt(np.mean((ly - lp) ** 2))) if len(y) else None
        out["mean_abs_rel_error"] = float(np.mean(np.abs(pred / y - 1.0))) if len(y) else None
    return out


def fit_metrics(result: FitResult, arrays: FitArrays, keys: Sequence[str]) -> dict[str, Any]:
    pred = result.law.predict(expand(result.law, result.values, arrays.gidx), arrays.x,
                              arrays.n_point)
    out = prediction_metrics(arrays.y, pred, arrays.gidx, keys, result.options.log_factor,
                             positive=bool(np.all(arrays.y > 0)))
    out["objective"] = result.objective
    out["n_params"] = result.layout.size
    out["n_groups"] = arrays.n_groups
    # Information criteria for comparing laws fitted to the same points in the same space
    # (Gaussian errors with the fit's weights; meaningless across spaces or data sets).
    n, k = len(arrays.y), result.layout.size
    if result.options.huber is None and result.objective > 0 and n > 0:
        out["aic"] = n * math.log(result.objective) + 2 * k
        out["bic"] = n * math.log(result.objective) + k * math.log(n)
    return out


def arrays_from_points(x: np.ndarray, y: np.ndarray, gidx: np.ndarray, n_values: np.ndarray,
                       options: FitOptions) -> FitArrays:
    """Fit arrays with the weights that ``options`` asks for."""
    return FitArrays(np.asarray(x, float), np.asarray(y, float), np.asarray(gidx, int),
                     np.asarray(n_values, float),
                     point_weights(np.asarray(gidx, int), len(n_values), np.asarray(x, float),
                                   options.weights, options.x_weight_power))
