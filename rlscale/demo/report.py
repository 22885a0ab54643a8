"""The result table of the micro scaling study, from the files ``scripts/demo.sh`` writes.

``python -m rlscale.demo.report OUT`` reads ``OUT/fit.json`` (saturating law on compute C),
``OUT/fit-data.json`` (saturating law on prompts D), ``OUT/fit-loglinear.json`` (a free slope
per size, no shared k(N) form), ``OUT/runs.jsonl`` and ``OUT/pretrain.jsonl``, and prints a
Markdown summary: k per size, K_max, N_0, R², and whether larger models learn faster here.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

import orjson


def _load_json(path: str) -> dict[str, Any]:
    with open(path, "rb") as handle:
        return orjson.loads(handle.read())


def _load_jsonl(path: str) -> list[dict[str, Any]]:
    from rlscale.io.jsonl import read_records

    return read_records([path])  # the one reader: end-of-stream records are not data


def _num(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "–"
    value += 0.0  # -0.0 prints as 0
    return f"{value:.{digits}g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"


def _with_ci(value: float | None, interval: Sequence[float] | None) -> str:
    if interval is None or value is None:
        return _num(value)
    return f"{_num(value)} [{_num(interval[0])}, {_num(interval[1])}]"


def _ci_text(interval: Sequence[float] | None) -> str:
    return "" if interval is None else f" [{_num(interval[0], 4)}, {_num(interval[1], 4)}]"


def _curve_ends(runs: Sequence[dict], group_of: dict[float, str]) -> dict[str, tuple]:
    """First and last held-out loss per size (by step)."""
    ends: dict[str, tuple] = {}
    for n_params, size in group_of.items():
        curve = sorted((r["step"], r["loss"]) for r in runs if float(r["N"]) == n_params)
        if curve:
            ends[size] = (curve[0][1], curve[-1][1], curve[-1][0])
    return ends


def boxed_share(scored: Sequence[dict]) -> float | None:
    """Share of scored samples that gave a ``\\boxed{}`` answer (graded with ``--fallbacks
    none``, a sample without one has verdict ``no_answer``)."""
    if not scored:
        return None
    return sum(r.get("verdict") != "no_answer" for r in scored) / len(scored)


def _share(pair: tuple | None) -> str:
    if not pair or None in pair:
        return "–"
    return f"{pair[0]:.0%} → {pair[1]:.0%}"


def monotone_verdict(sizes: Sequence[str], slopes: dict[str, float | None]) -> str:
    """Plain-language answer to "do larger models learn faster?" from per-size slopes k."""
    values = [slopes.get(s) for s in sizes]
    if any(v is None for v in values) or len(values) < 2:
        return "undetermined (a size has no slope)"
    pairs = list(zip(values, values[1:], strict=False))
    rising = sum(b > a for a, b in pairs)
    if rising == len(pairs):
        return "yes: k rises with every step up in N"
    if rising == 0:
        return "no: k falls with every step up in N"
    return f"mixed: k rises at {rising} of {len(pairs)} steps up in N"


def _overlaps(sizes: Sequence[str], intervals: dict[str, Sequence[float] | None]) -> list[str]:
    """Adjacent size pairs whose intervals overlap (``"s3/s4"``)."""
    pairs = []
    for small, big in zip(sizes, sizes[1:], strict=False):
        a, b = intervals.get(small), intervals.get(big)
        if a is not None and b is not None and a[1] >= b[0] and b[1] >= a[0]:
            pairs.append(f"{small}/{big}")
    return pairs


def summary(fit_c: dict, fit_free: dict, fit_d: dict | None, runs: Sequence[dict],
            pretrain: Sequence[dict], boxed: dict[str, tuple] | None = None) -> str:
    """The Markdown summary printed at the end of the demo.

    ``boxed`` maps a size name to its boxed-answer share on the held-out split at the first and
    last evaluation.
    """
    boxed = boxed or {}
    sizes_by_n = {float(p["n_params"]): p["size"] for p in pretrain}
    keys = sorted(fit_c["groups"], key=lambda key: fit_c["groups"][key])
    name = {key: sizes_by_n.get(float(fit_c["groups"][key]), key) for key in keys}
    ends = _curve_ends(runs, {float(fit_c["groups"][key]): name[key] for key in keys})
    probe = {p["size"]: p.get("probe_pass_rate") for p in pretrain}
    k_c = fit_c["derived"]["k"]
    k_free = fit_free["params"]["k"]
    r2_free = fit_free["metrics"]["r2_group"]
    k_d = fit_d["derived"]["k"] if fit_d else {}
    ci_c = fit_c.get("ci") or {}
    ci_k_c = (ci_c.get("derived") or {}).get("k", {})
    ci_k_free = (fit_free.get("ci") or {}).get("k", {})
    lines = [
        "| size | N (params) | pretrained pass rate | held-out loss (step 0 → last) "
        "| boxed answers (step 0 → last) "
        "| k_C(N) saturating | k_C free per size | R² free per size | k_D(N) saturating |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key in keys:
        size = name[key]
        first, last, last_step = ends.get(size, (None, None, None))
        pass_rate = probe.get(size)
        lines.append(
            f"| {size} | {fit_c['groups'][key]:,.0f} "
            f"| {'–' if pass_rate is None else f'{pass_rate:.1%}'} "
            f"| {_num(first)} → {_num(last)} (step {last_step}) "
            f"| {_share(boxed.get(size))} "
            f"| {_with_ci(k_c.get(key), ci_k_c.get(key))} "
            f"| {_with_ci(k_free.get(key), ci_k_free.get(key))} | {_num(r2_free.get(key))} "
            f"| {_num(k_d.get(key))} |")
    params = fit_c["params"]
    metrics = fit_c["metrics"]
    lines += [
        "",
        f"Saturating law on compute C (log10 L = -k(N) log10 C + E(N), k(N) = K_max/(1+N_0/N)): "
        f"K_max = {_num(params['K_max'], 4)}{_ci_text(ci_c.get('K_max'))}, "
        f"N_0 = {_num(params['N_0'], 4)}{_ci_text(ci_c.get('N_0'))}, "
        f"R² = {_num(metrics['r2'], 4)} on {metrics['n_points']} points "
        f"({metrics['n_groups']} sizes).",
    ]
    if fit_d:
        lines.append(
            f"Saturating law on prompts D: K_max = {_num(fit_d['params']['K_max'], 4)}, "
            f"N_0 = {_num(fit_d['params']['N_0'], 4)}, R² = {_num(fit_d['metrics']['r2'], 4)}.")
    lines.append(f"Free per-size fit on C: R² = {_num(fit_free['metrics']['r2'], 4)}.")
    ordered = [name[key] for key in keys]
    lines += [
        "",
        "Do larger models learn faster here?",
        f"- per unit of compute (free k_C per size): "
        f"{monotone_verdict(ordered, {name[k]: k_free.get(k) for k in keys})}",
    ]
    if fit_d:
        lines.append(f"- per prompt (k_D(N) of the saturating fit on D): "
                     f"{monotone_verdict(ordered, {name[k]: k_d.get(k) for k in keys})}")
    if ci_c:
        level = fit_c.get("ci_level", 0.95)
        lines.append(f"(Brackets: {level:.0%} bootstrap intervals of the fits.)")
        overlapping = _overlaps(ordered, {name[k]: ci_k_free.get(k) for k in keys})
        if overlapping:
            lines.append(f"- free-slope intervals of adjacent sizes overlap for "
                         f"{', '.join(overlapping)}: the data cannot order those sizes")
    warnings = [w["message"] for w in fit_c.get("warnings", [])]
    if warnings:
        lines += ["", "Fit warnings (saturating on C):"] + [f"- {w}" for w in warnings]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m rlscale.demo.report OUT_DIR", file=sys.stderr)
        return 2
    out = args[0]
    try:
        fit_d_path = os.path.join(out, "fit-data.json")
        boxed = {}
        for size in sorted(os.listdir(os.path.join(out, "runs"))):
            files = sorted((int(name[len("heldout-step"):-len(".jsonl")]), name)
                           for name in os.listdir(os.path.join(out, "runs", size))
                           if name.startswith("heldout-step") and name.endswith(".jsonl"))
            if len(files) >= 2:
                boxed[size] = tuple(
                    boxed_share(_load_jsonl(os.path.join(out, "runs", size, files[i][1])))
                    for i in (0, -1))
        text = summary(
            _load_json(os.path.join(out, "fit.json")),
            _load_json(os.path.join(out, "fit-loglinear.json")),
            _load_json(fit_d_path) if os.path.exists(fit_d_path) else None,
            _load_jsonl(os.path.join(out, "runs.jsonl")),
            _load_jsonl(os.path.join(out, "pretrain.jsonl")),
            boxed,
        )
    except (OSError, ValueError, KeyError) as exc:
        print(f"demo.report: {out}: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
