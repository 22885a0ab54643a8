"""Scaling-law forms as small declarative objects.

A :class:`Law` lists its parameters (:class:`Param`: bounds, starting grid, whether there is
one value per group), a vectorised ``predict`` function, an optional ``profile`` that gives good
starting values for the parameters that are cheap to solve for, and the paper and equation it
comes from. The fitter (:mod:`rlscale.core.laws.fit`) knows nothing about any particular law, so
adding one means writing a factory (here or in a module of its own) and one line in
:mod:`rlscale.core.laws.registry` (``docs/extending-laws.md``).

Symbols (Tan et al. 2025, arXiv 2509.25300, "T25"):

* ``X`` -- the resource on the x axis (compute C in FLOPs, data D in prompts, or step);
* ``N`` -- model size in parameters (the group value);
* ``L`` -- test loss ``1 - pass@1``;
* ``k`` -- learning efficiency, the log-log slope; ``E`` -- the intercept, ``log L`` at ``X = 1``.

Intercepts (``E`` and friends, ``Param.log_intercept``) are held in log10 units inside the
fitter, like the paper's code; the report converts them to ``log_base="e"`` (``--log-base e``)
(``E_ln = E_10 * ln 10``, T25 §1.6). Slopes do not depend on the base.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rlscale.core.errors import OptionError

LN10 = math.log(10.0)
N_REF = 1e9  # reference size for the log-linear intercept trend, so E_ref is E at 1B parameters

ParamValues = Mapping[str, Any]  # name -> float (global) or per-point array (per-group, expanded)


@dataclass(frozen=True)
class DataSummary:
    """What parameter bounds and grids may depend on: the range of the data being fitted."""

    n_values: np.ndarray  # numeric group values (model sizes), one per group; NaN if not numeric
    x_min: float
    x_max: float
    y_min: float
    y_max: float

    @property
    def n_min(self) -> float:
        return float(np.nanmin(self.n_values))

    @property
    def n_max(self) -> float:
        return float(np.nanmax(self.n_values))


Bound = float | Callable[[DataSummary], float]
Grid = Sequence[float] | Callable[[DataSummary], Sequence[float]]


@dataclass(frozen=True)
class Param:
    """One law parameter.

    Attributes:
        name: key in the output ``params`` object.
        lower, upper: bounds (a number, or a function of the data summary).
        grid: starting values tried by the multi-start search (empty: start from ``profile``
            or ``default``). A per-group parameter's grid value is used for every group.
        per_group: one value per group (e.g. the intercept E of each model size).
        log_scale: optimise ``log10(value)`` (for sizes such as N_0 that span decades).
        log_intercept: the value is a logarithm of the loss and is rescaled by ``--log-base``.
        interpolable: a per-group value that may be interpolated in log N for an unseen group
            (the paper's intercept extrapolation, T25 §1.12).
        log_amplitude: the prediction is proportional to ``10 ** value`` (a per-group log10
            intercept), so for fixed other parameters its least-squares value has a closed form
            and the fitter can project it out (variable projection).
        default: starting value when neither grid nor profile gives one.
        doc: one line for the user.
    """

    name: str
    lower: Bound
    upper: Bound
    grid: Grid = ()
    per_group: bool = False
    log_scale: bool = False
    log_intercept: bool = False
    interpolable: bool = False
    log_amplitude: bool = False
    x_scale: bool = False  # a per-group position on the x axis (D_0, C_mid): checked in range
    default: float | None = None
    doc: str = ""

    def bounds(self, summary: DataSummary) -> tuple[float, float]:
        lower = self.lower(summary) if callable(self.lower) else self.lower
        upper = self.upper(summary) if callable(self.upper) else self.upper
        return float(lower), float(upper)

    def grid_values(self, summary: DataSummary) -> list[float]:
        values = self.grid(summary) if callable(self.grid) else self.grid
        return [float(v) for v in values]


@dataclass(frozen=True)
class Law:
    """A scaling-law form: parameters, prediction function and provenance.

    ``predict(p, x, n)`` returns predicted y (always in linear units, > 0 for losses) for arrays
    ``x`` (resource) and ``n`` (numeric group value per point); ``p`` maps each parameter name to
    a float (global parameter) or to a per-point array (per-group parameter, already expanded).

    ``profile(fixed, x, y, gidx, n_groups, n_values, w)`` returns starting values for the
    parameters that are not in ``fixed`` (floats for globals, length-``n_groups`` arrays for
    per-group ones), typically the closed-form least-squares intercepts in log space (variable
    projection). It may return only some of them; ``Param.default`` fills the rest.
    """

    name: str
    title: str
    citation: str
    params: tuple[Param, ...]
    predict: Callable[[ParamValues, np.ndarray, np.ndarray], np.ndarray]
    profile: Callable[..., dict[str, Any]] | None = None
    numeric_groups: bool = True
    default_x: str = "C"
    default_y: str = "loss"
    default_group: str = "N"
    default_space: str = "log"
    options: dict[str, str] = field(default_factory=dict)
    derived: Callable[[Mapping[str, Any], Sequence[str], np.ndarray], dict[str, Any]] | None = None
    # global parameters fixed only by how the curves differ across groups (e.g. K_max and N_0
    # of k(N)): one group, or fewer groups than these, cannot determine them
    across_groups: tuple[str, ...] = ()
    # global parameters whose profile (best objective with the parameter held fixed) the fit
    # reports, because they are known to trade off against others
    profiled: tuple[str, ...] = ()

    @property
    def global_params(self) -> tuple[Param, ...]:
        return tuple(p for p in self.params if not p.per_group)

    @property
    def group_params(self) -> tuple[Param, ...]:
        return tuple(p for p in self.params if p.per_group)

    @property
    def predicts_unseen_groups(self) -> bool:
        """True when every per-group parameter can be interpolated in N for a new group."""
        return all(p.interpolable for p in self.group_params)

    def with_fixed(self, values: Mapping[str, float]) -> Law:
        """This law with some global parameters held at given values (``fit --fix``): the way
        to tie a direction the data do not determine, e.g. the decomposition's L_inf."""
        import dataclasses

        names = {p.name for p in self.global_params}
        for name in values:
            if name not in names:
                per = " (it is per group)" if any(p.name == name for p in self.params) else ""
                raise OptionError("fix", f"{name}: not a global parameter of the '{self.name}' "
                                  f"law{per}; its global parameters are {', '.join(sorted(names))}")
        params = []
        for p in self.params:
            if p.name in values:
                v = float(values[p.name])
                lo, hi = p.lower, p.upper
                if not callable(lo) and not callable(hi) and not lo <= v <= hi:
                    raise OptionError("fix", f"{p.name}={v:g}: outside its bounds [{lo:g}, {hi:g}]")
                if p.log_scale and v <= 0:
                    raise OptionError("fix", f"{p.name}={v:g}: must be > 0")
                span = 1e-12 * max(1.0, abs(v))
                p = dataclasses.replace(p, lower=v - span if not p.log_scale else v * (1 - 1e-12),
                                        upper=v + span if not p.log_scale else v * (1 + 1e-12),
                                        grid=(v,))
            params.append(p)
        return dataclasses.replace(self, params=tuple(params))

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)


# --- helpers shared by the log-linear family -----------------------------------------------


def saturating_k(k_max: Any, n_0: Any, n: Any) -> Any:
    """Saturating learning efficiency ``k(N) = K_max / (1 + N_0 / N)`` (T25 Eq. 2, §1.7).

    >>> round(saturating_k(0.1349, 13.09e9, 7e9), 4)
    0.047
    """
    return k_max / (1.0 + n_0 / n)


def _group_mean(values: np.ndarray, gidx: np.ndarray, n_groups: int, w: np.ndarray) -> np.ndarray:
    total = np.bincount(gidx, weights=w * values, minlength=n_groups)
    weight = np.bincount(gidx, weights=w, minlength=n_groups)
    return total / np.where(weight > 0, weight, 1.0)


def _profile_intercepts(k_point: np.ndarray, x, y, gidx, n_groups, w) -> np.ndarray:
    """Closed-form per-group intercepts of ``log10 L = -k log10 X + E`` for fixed slopes.

    For fixed k the model is linear in E, and the weighted least-squares E of each group is the
    weighted mean of ``log10 L + k log10 X`` (variable projection).
    """
    return _group_mean(np.log10(y) + k_point * np.log10(x), gidx, n_groups, w)


def _loglinear_predict(k: Any, e: Any, x: np.ndarray) -> np.ndarray:
    return np.power(10.0, e - k * np.log10(x))


def _e_bound(lo: bool) -> Bound:
    # the paper's E0 bounds are [-10, 10] (§1.11); wider, so that steep slopes on x in FLOPs
    # (E ~ k log10 C, with log10 C up to ~25) never hit them
    return -200.0 if lo else 200.0


K_GRID = (0.02, 0.05, 0.1, 0.2, 0.4, 0.8, 1.5)


# --- loglinear: one slope and one intercept per group --------------------------------------


def loglinear_law() -> Law:
    """Per-group power law ``log10 L = -k_g log10 X + E_g`` (T25 Eq. 1 with a k lookup, §1.11)."""

    def predict(p: ParamValues, x: np.ndarray, n: np.ndarray) -> np.ndarray:
        return _loglinear_predict(p["k"], p["E"], x)

    def profile(fixed, x, y, gidx, n_groups, n_values, w) -> dict[str, Any]:
        # ordinary weighted least squares of log L on log X, per group: exact in log space
        lx, ly = np.log10(x), np.log10(y)
        mx = _group_mean(lx, gidx, n_groups, w)
        my = _group_mean(ly, gidx, n_groups, w)
        dx, dy = lx - mx[gidx], ly - my[gidx]
        sxx = np.bincount(gidx, weights=w * dx * dx, minlength=n_groups)
        sxy = np.bincount(gidx, weights=w * dx * dy, minlength=n_groups)
        slope = np.where(sxx > 0, sxy / np.where(sxx > 0, sxx, 1.0), 0.0)
        k = np.clip(-slope, -4.9, 4.9)
        return {"k": k, "E": my + k * mx}

    return Law(
        name="loglinear",
        title="per-group power law: log L = -k_g log X + E_g",
        citation="Tan et al. 2025 (arXiv 2509.25300) Eq. 1, per-model k lookup (code model "
        "`loglinear`)",
        params=(
            Param("k", -5.0, 5.0, per_group=True, default=0.1, doc="slope of each group"),
            Param("E", _e_bound(True), _e_bound(False), per_group=True, log_intercept=True,
                  default=0.0, doc="intercept of each group (log L at X = 1)"),
        ),
        predict=predict,
        profile=profile,
        numeric_groups=False,
    )


# --- saturating: shared k(N) = K_max / (1 + N_0/N), intercept per group or a trend in N -----

INTERCEPTS = ("per-group", "loglinear-in-N", "saturating")


def saturating_law(intercept: str = "per-group") -> Law:
    """The paper's law: ``log10 L = -k(N) log10 X + E(N)``, ``k(N) = K_max / (1 + N_0/N)``.

    T25 Eqs. 1-2 (§1.6-1.7); K_max and N_0 are fitted jointly with the intercepts in one fit, as
    in the official code (``loglinear_kn``). ``intercept`` chooses E(N):

    * ``per-group``: one free E per model size (the paper; unseen sizes are interpolated in
      log N, the paper's 72B extrapolation, §1.12);
    * ``loglinear-in-N``: ``E(N) = E_ref + E_slope * log10(N / 1e9)``;
    * ``saturating``: ``E(N) = E_max * N / (N + N_1)`` (code model ``loglinear_kn_e0``, §1.11).
    """
    if intercept not in INTERCEPTS:
        raise ValueError(f"unknown intercept {intercept!r}; expected one of {', '.join(INTERCEPTS)}")

    def n0_lower(s: DataSummary) -> float:
        return s.n_min / 100.0

    def n0_upper(s: DataSummary) -> float:
        return s.n_max * 100.0

    def n0_grid(s: DataSummary) -> list[float]:
        return list(np.geomspace(s.n_min / 10.0, s.n_max * 10.0, 9))

    core = (
        Param("K_max", 0.0, 2.0, grid=K_GRID, doc="asymptotic learning efficiency"),
        Param("N_0", n0_lower, n0_upper, grid=n0_grid, log_scale=True,
              doc="half-saturation model size: k(N_0) = K_max / 2"),
    )

    def k_of(p: ParamValues, n: Any) -> Any:
        return saturating_k(p["K_max"], p["N_0"], n)

    if intercept == "per-group":
        params = core + (Param("E", _e_bound(True), _e_bound(False), per_group=True,
                               log_intercept=True, interpolable=True, log_amplitude=True,
                               default=0.0,
                               doc="intercept of each group (log L at X = 1)"),)

        def e_of(p: ParamValues, n: Any) -> Any:
            return p["E"]

        def profile(fixed, x, y, gidx, n_groups, n_values, w) -> dict[str, Any]:
            k = saturating_k(fixed["K_max"], fixed["N_0"], n_values)[gidx]
            return {"E": _profile_intercepts(k, x, y, gidx, n_groups, w)}

    elif intercept == "loglinear-in-N":
        params = core + (
            Param("E_ref", _e_bound(True), _e_bound(False), log_intercept=True, default=0.0,
                  doc="intercept at N = 1e9"),
            Param("E_slope", -20.0, 20.0, log_intercept=True, default=0.0,
                  doc="change of the intercept per decade of N"),
        )

        def e_of(p: ParamValues, n: Any) -> Any:
            return p["E_ref"] + p["E_slope"] * np.log10(n / N_REF)

        def profile(fixed, x, y, gidx, n_groups, n_values, w) -> dict[str, Any]:
            k = saturating_k(fixed["K_max"], fixed["N_0"], n_values)[gidx]
            target = np.log10(y) + k * np.log10(x)
            design = np.stack([np.ones_like(x), np.log10(n_values[gidx] / N_REF)], axis=1)
            sw = np.sqrt(w)
            coef, *_ = np.linalg.lstsq(design * sw[:, None], target * sw, rcond=None)
            return {"E_ref": float(coef[0]), "E_slope": float(coef[1])}

    else:
        params = core + (
            Param("E_max", _e_bound(True), _e_bound(False), log_intercept=True, default=1.0,
                  doc="asymptotic intercept"),
            Param("N_1", n0_lower, n0_upper, grid=n0_grid, log_scale=True,
                  doc="half-saturation size of the intercept"),
        )

        def e_of(p: ParamValues, n: Any) -> Any:
            return p["E_max"] * n / (n + p["N_1"])

        def profile(fixed, x, y, gidx, n_groups, n_values, w) -> dict[str, Any]:
            k = saturating_k(fixed["K_max"], fixed["N_0"], n_values)[gidx]
            target = np.log10(y) + k * np.log10(x)
            basis = (n_values / (n_values + fixed["N_1"]))[gidx]
            denom = float(np.sum(w * basis * basis))
            return {"E_max": float(np.sum(w * basis * target) / denom) if denom > 0 else 1.0}

    def predict(p: ParamValues, x: np.ndarray, n: np.ndarray) -> np.ndarray:
        return _loglinear_predict(k_of(p, n), e_of(p, n), x)

    def derived(values: Mapping[str, Any], keys: Sequence[str], n_values: np.ndarray) -> dict:
        k = saturating_k(values["K_max"], values["N_0"], n_values)
        out: dict[str, Any] = {"k": dict(zip(keys, (float(v) for v in k), strict=True))}
        if intercept != "per-group":
            e = e_of(values, n_values)
            out["E"] = dict(zip(keys, (float(v) for v in e), strict=True))
        return out

    return Law(
        name="saturating",
        title="shared saturating efficiency: log L = -k(N) log X + E(N), "
        "k(N) = K_max / (1 + N_0/N)",
        citation="Tan et al. 2025 (arXiv 2509.25300) Eqs. 1-2; code model `loglinear_kn`"
        + ("" if intercept != "saturating" else " / `loglinear_kn_e0`"),
        params=params,
        predict=predict,
        profile=profile,
        options={"intercept": intercept},
        derived=derived,
        across_groups=("K_max", "N_0") + {"per-group": (), "loglinear-in-N": ("E_slope",),
                                          "saturating": ("E_max", "N_1")}[intercept],
    )


# --- Appendix D decomposition --------------------------------------------------------------


def decomposition_loss(l_inf, n_0, alpha, beta, lam, d_0, n, d):
    """``L(N, D) = L_inf + (N_0/N)^alpha + lambda(N) / (1 + (D / D_0(N))^beta)``.

    T25 Appendix D, Eqs. 16-20 (§1.10). ``L(N, 0) = L_inf + G + lambda``; ``L(N, inf) = L_inf + G``.

    >>> round(float(decomposition_loss(0.1, 1e9, 1.0, 2.0, 0.3, 4000.0, 2e9, 4000.0)), 6)
    0.75
    """
    return l_inf + np.power(n_0 / n, alpha) + lam / (1.0 + np.power(d / d_0, beta))


def decomposition_slope_at_d0(l_inf_plus_g: float, lam: float, beta: float) -> float:
    """Effective slope ``-d log L / d log D`` at ``D = D_0``: ``(beta/2) / (1 + 2 (L_inf+G)/lambda)``.

    T25 Appendix D (§1.10); e.g. beta = 2, L_inf + G = 0.5, lambda = 0.3 gives 0.230769.

    >>> round(decomposition_slope_at_d0(0.5, 0.3, 2.0), 6)
    0.230769
    """
    return (beta / 2.0) / (1.0 + 2.0 * l_inf_plus_g / lam)


def decomposition_law() -> Law:
    """Appendix D: loss = irreducible + model-limited + (learnable capacity x unrealised progress)."""

    def predict(p: ParamValues, x: np.ndarray, n: np.ndarray) -> np.ndarray:
        return decomposition_loss(p["L_inf"], p["N_0"], p["alpha"], p["beta"], p["lambda"],
                                  p["D_0"], n, x)

    def profile(fixed, x, y, gidx, n_groups, n_values, w) -> dict[str, Any]:
        floor = fixed["L_inf"] + np.power(fixed["N_0"] / n_values, fixed["alpha"])
        top = np.array([y[gidx == g].max() for g in range(n_groups)])
        lam = np.clip(top - floor, 1e-3, None)
        # D_0: where each curve has fallen half-way between its start and its floor
        d_0 = np.empty(n_groups)
        for g in range(n_groups):
            xs, ys = x[gidx == g], y[gidx == g]
            order = np.argsort(xs)
            xs, ys = xs[order], ys[order]
            half = floor[g] + lam[g] / 2.0
            below = np.nonzero(ys <= half)[0]
            d_0[g] = xs[below[0]] if below.size else xs[-1]
        return {"lambda": lam, "D_0": d_0}

    def derived(values: Mapping[str, Any], keys: Sequence[str], n_values: np.ndarray) -> dict:
        # what the data pin down even when L_inf and G(N) trade off: the floor L_inf + G(N)
        # each curve approaches, and the effective slope at D_0
        floor = values["L_inf"] + np.power(values["N_0"] / n_values, values["alpha"])
        out = {"floor": dict(zip(keys, (float(v) for v in floor), strict=True))}
        lam = np.asarray(values["lambda"], dtype=float)
        if lam.shape == floor.shape:  # an unseen size has no lambda of its own
            slope = (values["beta"] / 2.0) / (1.0 + 2.0 * floor / np.maximum(lam, 1e-300))
            out["k_at_D0"] = dict(zip(keys, (float(v) for v in slope), strict=True))
        return out

    return Law(
        name="decomposition",
        title="L = L_inf + (N_0/N)^alpha + lambda(N) / (1 + (X/D_0(N))^beta)",
        citation="Tan et al. 2025 (arXiv 2509.25300) Appendix D, Eqs. 16-20",
        params=(
            Param("L_inf", 0.0, 1.0, grid=(0.0, 0.2, 0.4), doc="irreducible loss"),
            Param("N_0", lambda s: s.n_min / 1e4, lambda s: s.n_max * 1e2,
                  grid=lambda s: list(np.geomspace(s.n_min / 100.0, s.n_max, 5)),
                  log_scale=True, doc="scale of the model-limited loss"),
            Param("alpha", 0.01, 5.0, grid=(0.3, 1.0), doc="exponent of the model-limited loss"),
            Param("beta", 0.05, 10.0, grid=(0.5, 1.0, 2.0), doc="steepness of learning progress"),
            Param("lambda", 0.0, 2.0, per_group=True, default=0.3,
                  doc="learnable capacity of each group"),
            Param("D_0", lambda s: s.x_min / 1e3, lambda s: s.x_max * 1e3, per_group=True,
                  log_scale=True, default=1.0, x_scale=True,
                  doc="characteristic scale of each group"),
        ),
        predict=predict,
        profile=profile,
        default_x="D",
        default_space="log",
        across_groups=("L_inf", "N_0", "alpha"),
        profiled=("L_inf",),
        derived=derived,
    )


# --- ScaleRL sigmoid ------------------------------------------------------------------------


def sigmoid_pass_rate(r_0, a, c_mid, b, c):
    """ScaleRL compute-performance curve ``R = R_0 + (A - R_0) / (1 + (C_mid / C)^B)``.

    Khatri et al. 2025, "The Art of Scaling RL Compute" (arXiv 2510.13786), Eq. 1. At C = C_mid
    the curve is half-way between R_0 and the asymptote A.

    >>> float(sigmoid_pass_rate(0.1, 0.6, 1e20, 1.5, 1e20))
    0.35
    """
    return r_0 + (a - r_0) / (1.0 + np.power(c_mid / c, b))


def sigmoid_law() -> Law:
    """Per-group ScaleRL sigmoid on pass rate (asymptote A, efficiency B, midpoint C_mid)."""

    def predict(p: ParamValues, x: np.ndarray, n: np.ndarray) -> np.ndarray:
        return sigmoid_pass_rate(p["R_0"], p["A"], p["C_mid"], p["B"], x)

    def profile(fixed, x, y, gidx, n_groups, n_values, w) -> dict[str, Any]:
        r_0, a, c_mid = np.empty(n_groups), np.empty(n_groups), np.empty(n_groups)
        for g in range(n_groups):
            xs, ys = x[gidx == g], y[gidx == g]
            order = np.argsort(xs)
            xs, ys = xs[order], ys[order]
            head = max(1, len(ys) // 10)
            r_0[g] = float(np.clip(ys[:head].mean(), 0.0, 1.0))
            a[g] = float(np.clip(ys[-head:].mean() + 0.05, 0.0, 1.0))
            half = (r_0[g] + a[g]) / 2.0
            above = np.nonzero(ys >= half)[0]
            c_mid[g] = xs[above[0]] if above.size else xs[-1]
        return {"R_0": r_0, "A": a, "C_mid": c_mid}

    return Law(
        name="sigmoid",
        title="R = R_0 + (A - R_0) / (1 + (C_mid/C)^B) per group, on pass rate",
        citation="Khatri et al. 2025, The Art of Scaling RL Compute (arXiv 2510.13786), Eq. 1",
        params=(
            Param("R_0", 0.0, 1.0, per_group=True, default=0.0, doc="pass rate at the start"),
            Param("A", 0.0, 1.0, per_group=True, default=0.5, doc="asymptotic pass rate"),
            Param("B", 0.05, 20.0, grid=(0.5, 1.0, 2.0, 4.0), per_group=True,
                  doc="scaling exponent (compute efficiency)"),
            Param("C_mid", lambda s: s.x_min / 1e3, lambda s: s.x_max * 1e3, per_group=True,
                  log_scale=True, default=1.0, x_scale=True, doc="compute at half of the gain"),
        ),
        predict=predict,
        profile=profile,
        numeric_groups=False,
        default_y="pass@1",
        default_space="linear",
    )


# --- data reuse: per-tau log-linear fits vs step ------------------------------------------


def reuse_law() -> Law:
    """Per-reuse-factor power law ``log10 L = -k_tau log10 step + E_tau`` (T25 §3 data reuse).

    The fit is the ``loglinear`` one, on x = step and groups = tau; the command adds the
    final-step loss of each tau and its difference to tau = 1 (acceptance check A-T1).
    """
    base = loglinear_law()
    return Law(
        name="reuse",
        title="per-tau power law of loss vs step: log L = -k_tau log step + E_tau",
        citation="Tan et al. 2025 (arXiv 2509.25300) §3 (data reuse), code model `loglinear-tau`",
        params=base.params,
        predict=base.predict,
        profile=base.profile,
        numeric_groups=False,
        default_x="step",
        default_group="tau",
    )


# --- k(N) on its own: the paper's second-stage view of the saturation ------------------------


def efficiency_law() -> Law:
    """``k = K_max / (1 + N_0 / N)`` fitted directly to per-model slopes (x = N, y = k).

    For per-model k lookups such as the paper's commented-out tables (T25 method notes §3.4,
    check A-S2); use with ``--space linear --weights point`` for unweighted least squares.
    """

    def predict(p: ParamValues, x: np.ndarray, n: np.ndarray) -> np.ndarray:
        return saturating_k(p["K_max"], p["N_0"], x)

    return Law(
        name="efficiency",
        title="k(N) = K_max / (1 + N_0/N), fitted to per-model slopes",
        citation="Tan et al. 2025 (arXiv 2509.25300) Eq. 2",
        params=(
            Param("K_max", 0.0, 10.0, grid=K_GRID, doc="asymptotic learning efficiency"),
            Param("N_0", lambda s: s.x_min / 100.0, lambda s: s.x_max * 100.0,
                  grid=lambda s: list(np.geomspace(s.x_min / 10.0, s.x_max * 10.0, 9)),
                  log_scale=True, doc="half-saturation model size"),
        ),
        predict=predict,
        numeric_groups=False,
        default_x="N",
        default_y="k",
        default_group="",
        default_space="linear",
    )


def _import_factory(spec: str) -> Callable[..., Law]:
    import importlib

    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
        return getattr(module, attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot load law {spec!r}: {exc}") from None


def get_law(name: str, **options: str) -> Law:
    """Build a law by name; options (e.g. ``intercept``) go to its factory.

    ``name`` may also be ``package.module:factory``, a function returning a :class:`Law`, so a
    user can fit their own law without changing rlscale.

    >>> get_law("saturating", intercept="loglinear-in-N").options
    {'intercept': 'loglinear-in-N'}
    """
    from rlscale.core.laws.registry import LAWS

    if ":" in name:
        factory = _import_factory(name)
    elif name in LAWS:
        factory = LAWS[name].load()
    else:
        raise ValueError(f"unknown law {name!r}; expected one of {', '.join(LAWS)} "
                         f"or module:function")
    if ":" in name:
        options = {k: v for k, v in options.items() if v is not None and
                   not (k == "intercept" and v == "per-group")}
        law = factory(**options)
        if not isinstance(law, Law):
            raise ValueError(f"{name} did not return a Law")
        return law
    options = {k: v for k, v in options.items() if v is not None}
    if name != "saturating" and options.get("intercept", "per-group") != "per-group":
        raise ValueError(f"--intercept applies only to --law saturating, not {name}")
    options.pop("intercept", None) if name != "saturating" else None
    return factory(**options)
