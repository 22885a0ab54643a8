"""The result of the micro scaling study, from the files ``scripts/demo.sh`` writes.

``python -m rlscale.demo.report OUT`` reads

- ``OUT/runs.jsonl`` (held-out pass@1, pass@G, loss and compute per size and step),
- ``OUT/runs/SIZE/heldout-step*.jsonl`` (the scored held-out samples of the first and last step),
- ``OUT/pretrain.jsonl`` (the base models),
- ``OUT/fit.json`` (saturating law on compute C), ``OUT/fit-loglinear.json`` (a free slope per
  size), ``OUT/fit-reuse.json`` (a free slope on D per τ of the reuse panel), ``OUT/fit-holdout.json`` (saturating law without the largest size, predicting it) and
  ``OUT/fit-early.json`` (saturating law on the first 30% of each curve, predicting the rest),
- and, where the study ran them, ``OUT/reuse/runs.jsonl`` (one size at τ = 1, 2, 4, ...) and
  ``OUT/seedS/`` (the RL runs again with seed S on the same base models and data: its own
  ``runs.jsonl``, ``fit.json``, ``fit-loglinear.json`` and ``runs/SIZE/heldout-step*.jsonl``),

writes ``OUT/summary.json`` (the machine-readable result: per size pass@1, pass@G, formatted
share and accuracy among formatted answers before and after RL, and k with its interval; K_max
and N_0 with intervals; the same per seed; the reuse result per τ; one verdict per observation
of the paper with the numbers behind it: observations 1-3 are tested on every seed and hold
only when every seed agrees) and prints the same as Markdown on stdout.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Sequence
from typing import Any

import orjson

from rlscale.demo.task import is_worked

HOLDS, FAILS, UNSURE = "holds", "does not hold", "cannot tell"
# Observation 2: a size's curve counts as log-linear when its free fit explains this much of it.
R2_LOGLINEAR = 0.8


def _load_json(path: str) -> dict[str, Any]:
    with open(path, "rb") as handle:
        return orjson.loads(handle.read())


def _load_jsonl(path: str) -> list[dict[str, Any]]:
    from rlscale.io.jsonl import read_records

    return read_records([path])  # the one reader: end-of-stream records are not data


def _maybe(path: str) -> dict[str, Any] | None:
    return _load_json(path) if os.path.exists(path) else None


def _num(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "–"
    value += 0.0  # -0.0 prints as 0
    return f"{value:.{digits}g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"


def _with_ci(value: float | None, interval: Sequence[float] | None) -> str:
    if interval is None or value is None:
        return _num(value)
    return f"{_num(value)} [{_num(interval[0])}, {_num(interval[1])}]"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


def sample_shares(scored: Sequence[dict]) -> dict[str, float | None]:
    """Shares among scored held-out samples (graded with ``--fallbacks none``, so a sample
    without a ``\\boxed{}`` answer has verdict ``no_answer``): ``formatted`` (boxed),
    ``accuracy_formatted`` (correct among the boxed) and ``worked`` (following the procedure)."""
    if not scored:
        return {"formatted": None, "accuracy_formatted": None, "worked": None}
    formatted = [r for r in scored if r.get("verdict") != "no_answer"]
    return {
        "formatted": len(formatted) / len(scored),
        "accuracy_formatted": (sum(r.get("reward", 0.0) > 0 for r in formatted) / len(formatted)
                               if formatted else None),
        "worked": sum(is_worked(r.get("completion", "")) for r in scored) / len(scored),
    }


def _pass_k_field(runs: Sequence[dict]) -> str | None:
    """The largest pass@k field eval wrote (pass@G with G the group size)."""
    ks = sorted({int(key[5:]) for r in runs for key in r if key.startswith("pass@")})
    return f"pass@{ks[-1]}" if ks and ks[-1] > 1 else None


def size_rows(runs: Sequence[dict], pretrain: Sequence[dict], fit_free: dict,
              shares: dict[str, tuple[dict, dict]]) -> list[dict]:
    """One row per size, smallest first: the ``sizes`` list of summary.json."""
    k_free = fit_free["params"]["k"]
    ci_free = (fit_free.get("ci") or {}).get("k", {})
    r2_free = fit_free["metrics"].get("r2_group", {})
    key_of = {float(n): key for key, n in fit_free["groups"].items()}
    pass_k = _pass_k_field(runs)
    rows = []
    for model in sorted(pretrain, key=lambda p: p["n_params"]):
        size = model["size"]
        curve = sorted((r for r in runs if r.get("run_id") == size), key=lambda r: r["step"])
        if not curve:
            continue
        first, last = curve[0], curve[-1]
        key = key_of.get(float(first["N"]))
        start, end = shares.get(size, ({}, {}))
        row = {
            "size": size,
            "N": first["N"],
            "steps": last["step"],
            "k": k_free.get(key),
            "k_ci95": ci_free.get(key),
            "r2": r2_free.get(key),
            "pass1_start": first["pass@1"],
            "pass1_end": last["pass@1"],
            "pass8_start": first.get(pass_k) if pass_k else None,
            "pass8_end": last.get(pass_k) if pass_k else None,
        }
        for name in ("formatted", "accuracy_formatted", "worked"):
            row[f"{name}_start"] = start.get(name)
            row[f"{name}_end"] = end.get(name)
        row["base_probe_pass_rate"] = model.get("probe_pass_rate")
        rows.append(row)
    return rows


def _separated(a: Sequence[float] | None, b: Sequence[float] | None) -> bool | None:
    if a is None or b is None:
        return None
    return a[1] < b[0] or b[1] < a[0]


def verdict_k_rises(rows: Sequence[dict]) -> dict:
    """(1) k rises with N: the smallest and largest size's intervals are separated."""
    small, large = rows[0], rows[-1]
    numbers = {"k_smallest": small["k"], "k_smallest_ci95": small["k_ci95"],
               "k_largest": large["k"], "k_largest_ci95": large["k_ci95"],
               "k_by_size": {r["size"]: r["k"] for r in rows}}
    separated = _separated(small["k_ci95"], large["k_ci95"])
    if separated is None or small["k"] is None or large["k"] is None:
        return {"verdict": UNSURE, "why": "no interval for a slope", **numbers}
    if not separated:
        return {"verdict": UNSURE, "why": "the intervals of the smallest and largest size overlap",
                **numbers}
    if large["k"] > small["k"]:
        return {"verdict": HOLDS, "why": "the largest size's interval lies above the smallest's",
                **numbers}
    return {"verdict": FAILS, "why": "the largest size's interval lies below the smallest's",
            **numbers}


def verdict_loglinear(rows: Sequence[dict]) -> dict:
    """(2) learning curves log-linear per size: every free per-size fit has R² ≥ 0.8."""
    r2 = {r["size"]: r["r2"] for r in rows}
    numbers = {"r2_by_size": r2, "threshold": R2_LOGLINEAR}
    if any(v is None for v in r2.values()):
        return {"verdict": UNSURE, "why": "a size has no R²", **numbers}
    low = [size for size, value in r2.items() if value < R2_LOGLINEAR]
    if not low:
        return {"verdict": HOLDS, "why": f"R² ≥ {R2_LOGLINEAR} for every size", **numbers}
    if len(low) == len(r2):
        return {"verdict": FAILS, "why": f"R² < {R2_LOGLINEAR} for every size", **numbers}
    return {"verdict": UNSURE, "why": f"R² < {R2_LOGLINEAR} for {', '.join(low)}", **numbers}


def saturation(fit_c: dict, rows: Sequence[dict]) -> dict:
    """K_max and N_0 with intervals, and (3) whether k(N) saturates inside the studied range:
    holds when N_0's interval lies below the largest size, fails when it lies above; cannot
    tell when the fit warns that K_max or N_0 is at a bound or poorly determined."""
    ci = fit_c.get("ci") or {}
    params = fit_c["params"]
    lo, hi = rows[0]["N"], rows[-1]["N"]
    n0_ci = ci.get("N_0")
    result = {
        "K_max": params["K_max"], "K_max_ci95": ci.get("K_max"),
        "N_0": params["N_0"], "N_0_ci95": n0_ci,
        "r2": fit_c["metrics"]["r2"], "n_points": fit_c["metrics"]["n_points"],
        "studied_N": [lo, hi],
        "N_0_inside_range": lo <= params["N_0"] <= hi,
        "warnings": [w["message"] for w in fit_c.get("warnings", [])],
    }
    # a fit that ends at a bound, or trades K_max against N_0, has intervals that say nothing
    undetermined = sorted({w.get("param") for w in fit_c.get("warnings", [])
                           if w.get("code") in ("param_at_bound", "poorly_determined")
                           and w.get("param") in ("K_max", "N_0")})
    if n0_ci is None:
        verdict, why = UNSURE, "no interval for N_0"
    elif undetermined:
        verdict, why = UNSURE, (f"the fit does not determine {' and '.join(undetermined)} (at a "
                                "bound or traded off against each other)")
    elif n0_ci[1] <= hi:
        verdict, why = HOLDS, "N_0's interval lies below the largest size: k(N) flattens in range"
    elif n0_ci[0] > hi:
        verdict, why = FAILS, "N_0's interval lies above the largest size: no saturation in range"
    else:
        verdict, why = UNSURE, "N_0's interval reaches beyond the largest size"
    result["observation"] = {"verdict": verdict, "why": why}
    return result


def reuse_rows(reuse_runs: Sequence[dict], fit_reuse: dict | None = None) -> list[dict]:
    """Per τ, the last held-out evaluation of the reuse runs (same size, same number of steps),
    and with ``fit_reuse`` (a loglinear fit on D grouped by τ) each τ's slope k with its
    interval: how fast the loss fell, not only where it ended."""
    slopes = (fit_reuse or {}).get("params", {}).get("k", {})
    slope_ci = ((fit_reuse or {}).get("ci") or {}).get("k", {})
    key_of = {float(value): key for key, value in (fit_reuse or {}).get("groups", {}).items()}
    rows = []
    for tau in sorted({r["tau"] for r in reuse_runs}):
        curve = sorted((r for r in reuse_runs if r["tau"] == tau), key=lambda r: r["step"])
        first, last = curve[0], curve[-1]
        key = key_of.get(float(tau))
        rows.append({"tau": tau, "steps": last["step"], "loss_start": first["loss"],
                     "loss_start_se": first.get("loss_se"), "loss_end": last["loss"],
                     "loss_se": last.get("loss_se"), "pass1_end": last["pass@1"],
                     "k": slopes.get(key), "k_ci95": slope_ci.get(key)})
    return rows


def verdict_reuse(rows: Sequence[dict]) -> dict:
    """(4) data reuse: final loss at each τ within noise (|Δ| ≤ 1.96·SE of the difference) of
    τ = 1 up to some τ; holds when τ = 2 is within noise; reports where it degrades. Cannot
    tell when τ = 1 itself did not learn beyond noise (then no τ has anything to lose)."""
    numbers: dict[str, Any] = {"by_tau": {str(r["tau"]): r["loss_end"] for r in rows},
                               "k_by_tau": {str(r["tau"]): r.get("k") for r in rows}}
    base = next((r for r in rows if r["tau"] == 1), None)
    if base is None or len(rows) < 2 or base["loss_se"] is None:
        return {"verdict": UNSURE, "why": "no reuse runs in this study", **numbers}
    gain = base["loss_start"] - base["loss_end"]
    numbers["tau1_gain"] = gain
    if gain <= 1.96 * math.hypot(base["loss_start_se"] or 0.0, base["loss_se"]):
        return {"verdict": UNSURE, "why": f"τ = 1 itself lowered the loss by only {gain:.3f}, "
                "within noise", **numbers}
    within, first_worse = [], None
    for row in rows:
        if row["tau"] == 1:
            continue
        noise = 1.96 * math.hypot(base["loss_se"], row["loss_se"] or 0.0)
        if row["loss_end"] - base["loss_end"] > noise:
            first_worse = row["tau"] if first_worse is None else first_worse
        elif first_worse is None:
            within.append(row["tau"])
    numbers.update(within_noise_of_tau1=within, first_worse_tau=first_worse)
    if 2 not in within:
        return {"verdict": FAILS, "why": "τ = 2 already ends worse than τ = 1 beyond noise",
                **numbers}
    if first_worse is None:
        return {"verdict": HOLDS, "why": "every τ ends within noise of τ = 1 (no degradation seen)",
                **numbers}
    return {"verdict": HOLDS, "why": f"within noise up to τ = {within[-1]}, worse from τ = "
            f"{first_worse}", **numbers}


def _validation_r2(fit: dict | None, kind: str) -> dict[str, float | None]:
    groups = ((fit or {}).get("validation") or {}).get("groups") or {}
    return {group: (values.get(kind) or {}).get("r2") for group, values in groups.items()}


def verdict_prediction(fit_holdout: dict | None, fit_early: dict | None) -> dict:
    """(5) prediction: the largest size from the smaller ones (pure: intercept extrapolated in
    log N; calibrated: intercept from its own points), and each curve's last 70% from its first
    30%. Holds when every R² of prediction (per curve for the 30% protocol: the pooled R² also
    counts the spread between sizes) is positive, i.e. better than the points' own mean."""
    pure = _validation_r2(fit_holdout, "pure")
    calibrated = _validation_r2(fit_holdout, "calibrated")
    test = ((fit_early or {}).get("validation") or {}).get("test") or {}
    per_curve = test.get("r2_group") or {}
    numbers = {"largest_pure_r2": next(iter(pure.values()), None),
               "largest_calibrated_r2": next(iter(calibrated.values()), None),
               "first30_rest_r2_pooled": test.get("r2"),
               "first30_rest_r2_per_curve": per_curve}
    values = [numbers["largest_pure_r2"], numbers["largest_calibrated_r2"], *per_curve.values()]
    values = [v for v in values if v is not None]
    if not values:
        return {"verdict": UNSURE, "why": "no prediction was scored", **numbers}
    if all(v > 0 for v in values):
        return {"verdict": HOLDS, "why": "every prediction beats the held-out points' own mean",
                **numbers}
    if all(v <= 0 for v in values):
        return {"verdict": FAILS, "why": "no prediction beats the held-out points' own mean",
                **numbers}
    worse = sum(v <= 0 for v in values)
    return {"verdict": UNSURE, "why": f"{worse} of {len(values)} predictions do not beat the "
            "held-out points' own mean", **numbers}


def combine_seeds(by_seed: dict[str, dict]) -> dict:
    """One verdict from the same observation tested on each seed's runs: the seeds' verdict
    when they agree, else cannot tell (with every seed's verdict and numbers)."""
    verdicts = {seed: observation["verdict"] for seed, observation in by_seed.items()}
    first = next(iter(by_seed.values()))
    if len(set(verdicts.values())) == 1:
        whys = {seed: observation["why"] for seed, observation in by_seed.items()}
        if len(by_seed) == 1:
            why = first["why"]
        elif len(set(whys.values())) == 1:
            why = f"every seed: {first['why']}"
        else:
            why = f"every seed {first['verdict']} (" + "; ".join(
                f"seed {seed}: {reason}" for seed, reason in whys.items()) + ")"
        return {**first, "verdict": first["verdict"], "why": why, "by_seed": by_seed}
    shown = ", ".join(f"seed {seed} {verdict}" for seed, verdict in verdicts.items())
    return {"verdict": UNSURE, "why": f"the seeds disagree ({shown})", "by_seed": by_seed}


def seed_result(directory: str, pretrain: Sequence[dict]) -> dict:
    """The runs of one seed in ``directory`` (runs.jsonl, fit.json, fit-loglinear.json and
    runs/SIZE/heldout-step*.jsonl): its rows per size and its saturating fit."""
    runs = _load_jsonl(os.path.join(directory, "runs.jsonl"))
    fit_c = _load_json(os.path.join(directory, "fit.json"))
    fit_free = _load_json(os.path.join(directory, "fit-loglinear.json"))
    shares = {}
    for size in sorted(os.listdir(os.path.join(directory, "runs"))):
        folder = os.path.join(directory, "runs", size)
        files = sorted((int(name[len("heldout-step"):-len(".jsonl")]), name)
                       for name in os.listdir(folder)
                       if name.startswith("heldout-step") and name.endswith(".jsonl"))
        if files:
            shares[size] = tuple(sample_shares(_load_jsonl(os.path.join(folder, files[i][1])))
                                 for i in (0, -1))
    rows = size_rows(runs, pretrain, fit_free, shares)
    seeds = {r.get("seed") for r in runs}
    if len(seeds) != 1:
        raise ValueError(f"{directory}/runs.jsonl: expected the runs of one seed, got {seeds}")
    return {"seed": seeds.pop(), "runs": runs, "sizes": rows, "saturating": saturation(fit_c, rows)}


def build_summary(out: str) -> dict:
    """Everything summary.json holds, from the files of one demo run in ``out``: the main
    seed's runs in ``out`` itself, the runs of further RL seeds in ``out/seed*/``."""
    pretrain = _load_jsonl(os.path.join(out, "pretrain.jsonl"))
    main = seed_result(out, pretrain)
    others = [seed_result(os.path.join(out, name), pretrain) for name in sorted(os.listdir(out))
              if name.startswith("seed") and os.path.isdir(os.path.join(out, name))]
    every = [main, *others]
    rows, sat = main["sizes"], main["saturating"]
    reuse_path = os.path.join(out, "reuse", "runs.jsonl")
    reuse = (reuse_rows(_load_jsonl(reuse_path), _maybe(os.path.join(out, "fit-reuse.json")))
             if os.path.exists(reuse_path) else [])

    def by_seed(test) -> dict:
        return combine_seeds({str(result["seed"]): test(result) for result in every})

    def saturates(result: dict) -> dict:
        fit = result["saturating"]
        return {**fit["observation"], "K_max": fit["K_max"], "K_max_ci95": fit["K_max_ci95"],
                "N_0": fit["N_0"], "N_0_ci95": fit["N_0_ci95"], "studied_N": fit["studied_N"]}

    return {
        "pass_k": _pass_k_field(main["runs"]),
        "sizes": rows,
        "saturating": {key: value for key, value in sat.items() if key != "observation"},
        "reuse": reuse,
        "seeds": [{"seed": result["seed"],
                   "sizes": [{key: row[key] for key in SEED_ROW} for row in result["sizes"]],
                   **{key: result["saturating"][key] for key in SEED_FIT}} for result in every],
        "observations": {
            "k_rises_with_N": by_seed(lambda result: verdict_k_rises(result["sizes"])),
            "loglinear_per_size": by_seed(lambda result: verdict_loglinear(result["sizes"])),
            "k_saturates": by_seed(saturates),
            "data_reuse": verdict_reuse(reuse),
            "prediction": verdict_prediction(_maybe(os.path.join(out, "fit-holdout.json")),
                                             _maybe(os.path.join(out, "fit-early.json"))),
        },
    }


# what summary.json's ``seeds`` list keeps of each seed's rows and saturating fit
SEED_ROW = ("size", "N", "k", "k_ci95", "r2", "pass1_start", "pass1_end", "pass8_start",
            "pass8_end")
SEED_FIT = ("K_max", "K_max_ci95", "N_0", "N_0_ci95", "r2", "n_points")


def markdown(result: dict) -> str:
    """The Markdown form of ``build_summary``'s result, printed at the end of the demo."""
    pass_k = result["pass_k"] or "pass@k"
    lines = [
        f"| size | N (params) | pass@1 (start → end) | {pass_k} (start → end) "
        "| formatted | accuracy among formatted | procedure written out "
        "| k free per size [95% CI] | R² per size |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in result["sizes"]:
        lines.append(
            f"| {row['size']} | {row['N']:,.0f} "
            f"| {_pct(row['pass1_start'])} → {_pct(row['pass1_end'])} (step {row['steps']}) "
            f"| {_pct(row['pass8_start'])} → {_pct(row['pass8_end'])} "
            f"| {_pct(row['formatted_start'])} → {_pct(row['formatted_end'])} "
            f"| {_pct(row['accuracy_formatted_start'])} → {_pct(row['accuracy_formatted_end'])} "
            f"| {_pct(row['worked_start'])} → {_pct(row['worked_end'])} "
            f"| {_with_ci(row['k'], row['k_ci95'])} | {_num(row['r2'])} |")
    sat = result["saturating"]
    lines += [
        "",
        "Saturating law on compute C (log10 L = -k(N) log10 C + E(N), k(N) = K_max/(1+N_0/N)): "
        f"K_max = {_with_ci(sat['K_max'], sat['K_max_ci95'])}, "
        f"N_0 = {_with_ci(sat['N_0'], sat['N_0_ci95'])}, R² = {_num(sat['r2'], 4)} "
        f"on {sat['n_points']} points.",
    ]
    if len(result["seeds"]) > 1:
        sizes = [row["size"] for row in result["seeds"][0]["sizes"]]
        lines += ["", "Per RL seed (same base models and data; k free per size [95% CI]):", "",
                  "| seed | " + " | ".join(f"k {size}" for size in sizes)
                  + " | K_max | N_0 |", "|---" * (len(sizes) + 3) + "|"]
        for seed in result["seeds"]:
            ks = {row["size"]: _with_ci(row["k"], row["k_ci95"]) for row in seed["sizes"]}
            lines.append(f"| {seed['seed']} | " + " | ".join(ks.get(size, "–") for size in sizes)
                         + f" | {_with_ci(seed['K_max'], seed['K_max_ci95'])} "
                         f"| {_with_ci(seed['N_0'], seed['N_0_ci95'])} |")
    if result["reuse"]:
        lines += ["", "Data reuse (one size, same number of steps): final held-out loss by τ: "
                  + ", ".join(f"τ={r['tau']}: {_num(r['loss_end'])} ± {_num(r['loss_se'])}"
                              for r in result["reuse"])]
        if any(r.get("k") is not None for r in result["reuse"]):
            lines.append("Slope k of log loss on log D by τ [95% CI]: " + ", ".join(
                f"τ={r['tau']}: {_with_ci(r.get('k'), r.get('k_ci95'))}" for r in result["reuse"]))
    lines += ["", "The paper's observations at micro scale:"]
    titles = {
        "k_rises_with_N": "(1) k rises with N",
        "loglinear_per_size": "(2) learning curves log-linear per size",
        "k_saturates": "(3) k(N) saturates inside the studied range",
        "data_reuse": "(4) data reuse up to some τ costs nothing",
        "prediction": "(5) the largest size and the rest of each curve are predicted",
    }
    for key, title in titles.items():
        observation = result["observations"][key]
        lines.append(f"- {title}: **{observation['verdict']}** ({observation['why']})")
    if sat["warnings"]:
        lines += ["", "Fit warnings (saturating on C):"] + [f"- {w}" for w in sat["warnings"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m rlscale.demo.report OUT_DIR", file=sys.stderr)
        return 2
    out = args[0]
    try:
        result = build_summary(out)
        text = markdown(result)
        from rlscale.io.jsonl import atomic_write_bytes

        atomic_write_bytes(os.path.join(out, "summary.json"),
                           orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n")
    except (OSError, ValueError, KeyError) as exc:
        print(f"demo.report: {out}: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
