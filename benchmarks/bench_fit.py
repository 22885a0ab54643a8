"""`rlscale fit` vs the paper's fitter: a saturating-law fit of 735 points, and a bootstrap.

The peer is the official analysis code's fitter as documented in the method notes (§4.2):
CMA-ES (the ``cma`` package) on the parameters normalised to [0, 1] through the bounds
(K_max in [0, 2], N_0 in [0.1e9, 100e9], E0 in [-10, 10]), start p0 = [0.5, 7e9, 0.1 ...],
sigma0 0.3, popsize 20, at most 1600 iterations, objective ``np.average((y_hat - y)^2, w)`` in
linear space with every model size given equal weight. (The paper's code stops after the first
of 5 trials when the loss is below 3e-4, which it always is here, so one trial is run.) It is
seeded here so the benchmark is repeatable; the paper's code is not.

rlscale is timed on the same objective (``--space linear``, group-equal weights) and on its
default log-space objective. Both final objectives are evaluated by the same function below.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from rlscale.core.laws.data import DataSpec, build_dataset
from rlscale.core.laws.fit import FitOptions, arrays_from_points, fit_law
from rlscale.core.laws.forms import get_law, saturating_k
from rlscale.core.laws.pipeline import FitRequest, run_fit
from rlscale.core.laws.synthetic import paper_base_c_records
from rlscale.io.jsonl import Where

N_BOOTSTRAP = 200


def paper_objective(k_max: float, n_0: float, e0: np.ndarray, arrays) -> float:
    """The paper's loss: weighted MSE of L in linear space, equal total weight per size."""
    k = saturating_k(k_max, n_0, arrays.n_point)
    pred = np.power(10.0, e0[arrays.gidx] - k * np.log10(arrays.x))
    return float(np.average((pred - arrays.y) ** 2, weights=arrays.w))


def cma_fit(arrays, seed: int) -> tuple[float, float, np.ndarray]:
    import cma

    n_groups = arrays.n_groups
    lower = np.array([0.0, 0.1e9] + [-10.0] * n_groups)
    upper = np.array([2.0, 100e9] + [10.0] * n_groups)
    p0 = np.array([0.5, 7e9] + [0.1] * n_groups)

    def loss(u) -> float:
        p = lower + np.asarray(u) * (upper - lower)
        with np.errstate(all="ignore"):
            value = paper_objective(p[0], p[1], p[2:], arrays)
        return value if np.isfinite(value) else 1e12

    strategy = cma.CMAEvolutionStrategy(
        (p0 - lower) / (upper - lower), 0.3,
        {"bounds": [0, 1], "popsize": 20, "maxiter": 1600, "seed": seed + 1, "verbose": -9})
    while not strategy.stop():
        candidates = strategy.ask()
        strategy.tell(candidates, [loss(c) for c in candidates])
    p = lower + strategy.result.xbest * (upper - lower)
    return float(p[0]), float(p[1]), p[2:]


def _timed(fn, repeats: int):
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main() -> None:
    records = paper_base_c_records(0)
    pairs = [(r, Where("bench", i + 1)) for i, r in enumerate(records)]
    dataset = build_dataset(pairs, DataSpec(), lambda where, msg: None)
    pts = dataset.points()
    linear = FitOptions(space="linear")
    arrays = arrays_from_points(pts.x, pts.y, pts.gidx, dataset.n_values, linear)
    law = get_law("saturating")
    print(f"data: {len(arrays.y)} points, {arrays.n_groups} model sizes, simulated from the "
          f"paper's base-C fit (K_max 0.133042, N_0 13.782e9, noise sd 0.012)")

    t_cma, (k_cma, n0_cma, e_cma) = _timed(lambda: cma_fit(arrays, 0), 3)
    obj_cma = paper_objective(k_cma, n0_cma, e_cma, arrays)
    t_lin, res_lin = _timed(lambda: fit_law(law, arrays, linear), 5)
    obj_lin = paper_objective(res_lin.values["K_max"], res_lin.values["N_0"],
                              np.asarray(res_lin.values["E"]), arrays)
    t_log, res_log = _timed(lambda: fit_law(law, arrays, FitOptions()), 5)
    obj_log = paper_objective(res_log.values["K_max"], res_log.values["N_0"],
                              np.asarray(res_log.values["E"]), arrays)
    t_boot, outcome = _timed(lambda: run_fit(dataset, FitRequest(law, linear,
                                                                 n_bootstrap=N_BOOTSTRAP)), 1)
    t_boot_log, _ = _timed(lambda: run_fit(dataset, FitRequest(law, FitOptions(),
                                                               n_bootstrap=N_BOOTSTRAP)), 1)

    rows = [
        ("paper CMA-ES (linear space)", t_cma, obj_cma, k_cma, n0_cma),
        ("rlscale fit --space linear", t_lin, obj_lin, res_lin.values["K_max"],
         res_lin.values["N_0"]),
        ("rlscale fit (default, log space)", t_log, obj_log, res_log.values["K_max"],
         res_log.values["N_0"]),
    ]
    print(f"\n{'fit of 735 points':36s} {'wall s':>9s} {'paper objective':>16s} "
          f"{'K_max':>8s} {'N_0 (B)':>8s}")
    for name, t, obj, k, n0 in rows:
        print(f"{name:36s} {t:9.4f} {obj:16.6e} {k:8.4f} {n0 / 1e9:8.2f}")
    print(f"\nspeed-up, same objective (CMA-ES / rlscale linear): {t_cma / t_lin:.1f}x; "
          f"objective rlscale/CMA-ES - 1 = {obj_lin / obj_cma - 1:+.2e} "
          f"({'equal or better' if obj_lin <= obj_cma * (1 + 1e-9) else 'WORSE'})")
    print(f"speed-up vs default log-space fit: {t_cma / t_log:.1f}x")
    ci = outcome.report["ci"]
    print(f"\n{N_BOOTSTRAP}-sample bootstrap (rlscale, points within curves, linear space): "
          f"{t_boot:.2f} s  (log space: {t_boot_log:.2f} s); K_max 95% CI "
          f"[{ci['K_max'][0]:.4f}, {ci['K_max'][1]:.4f}], N_0 95% CI "
          f"[{ci['N_0'][0] / 1e9:.2f}, {ci['N_0'][1] / 1e9:.2f}] B")
    print(f"same bootstrap with CMA-ES would take ~{N_BOOTSTRAP * t_cma:.0f} s "
          f"({N_BOOTSTRAP} x one fit; not run): {N_BOOTSTRAP * t_cma / t_boot:.0f}x slower")
    real_curves()


def real_curves() -> None:
    """The same comparison on the paper's own Base curves (732 points, shipped with rlscale),
    and `fit --compare` of four laws on them (the issue's bar: under 5 s)."""
    from rlscale.core.laws.compare import DEFAULT_COMPARE, compare_laws
    from rlscale.core.laws.paper import load_example
    from rlscale.io.curves import paper_curves

    dataset = load_example(paper_curves(), "paper-base")
    pts = dataset.points()
    linear = FitOptions(space="linear")
    arrays = arrays_from_points(pts.x, pts.y, pts.gidx, dataset.n_values, linear)
    law = get_law("saturating")
    t_cma, (k_cma, n0_cma, e_cma) = _timed(lambda: cma_fit(arrays, 0), 3)
    obj_cma = paper_objective(k_cma, n0_cma, e_cma, arrays)
    t_lin, res = _timed(lambda: fit_law(law, arrays, linear), 5)
    obj_lin = paper_objective(res.values["K_max"], res.values["N_0"], np.asarray(res.values["E"]),
                              arrays)
    print(f"\npaper Base curves ({len(arrays.y)} points): CMA-ES {t_cma:.3f} s, objective "
          f"{obj_cma:.6e}, K_max {k_cma:.4f}, N_0 {n0_cma / 1e9:.2f}B; rlscale --space linear "
          f"{t_lin:.4f} s, objective {obj_lin:.6e}, K_max {res.values['K_max']:.4f}, N_0 "
          f"{res.values['N_0'] / 1e9:.2f}B: {t_cma / t_lin:.1f}x faster, objective "
          f"{'equal or better' if obj_lin <= obj_cma * (1 + 1e-9) else 'WORSE'}")
    laws = [get_law(name) for name in DEFAULT_COMPARE]
    t_cmp, result = _timed(lambda: compare_laws(
        dataset, laws, lambda one: FitRequest(one, FitOptions(), fit_fraction=0.3), run_fit), 3)
    order = ", ".join(row["law"] for row in result["compare"])
    print(f"fit --compare of {len(laws)} laws on them (--fit-fraction 0.3): {t_cmp:.2f} s "
          f"(ranking: {order})")


if __name__ == "__main__":
    main()
