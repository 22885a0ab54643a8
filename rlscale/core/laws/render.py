"""Human-readable fits: ``rlscale fit --format table|markdown``.

The JSON object stays the contract; these render the parts a reader looks at -- parameters with
intervals, per-group k and E, metrics, the held-out prediction per curve, warnings -- as aligned
plain text (a terminal or notebook cell) or GitHub markdown (a report).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

FORMATS = ("json", "table", "markdown")


def _num(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if value != value:  # NaN
        return "nan"
    if value == 0 or 1e-3 <= abs(value) < 1e5:
        return f"{value:.4f}" if abs(value) < 10 else f"{value:.2f}"
    return f"{value:.4g}"


def _ci(ci: Any) -> str:
    if isinstance(ci, Sequence) and len(ci) == 2 and not isinstance(ci, str):
        return f"[{_num(ci[0])}, {_num(ci[1])}]"
    return ""


def grid(headers: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str) -> list[str]:
    """A table as lines: markdown pipes, or plain columns aligned for a fixed-width font."""
    cells = [[str(h) for h in headers]] + [[c if isinstance(c, str) else _num(c) for c in r]
                                           for r in rows]
    if fmt == "markdown":
        esc = [[c.replace("|", "\\|") for c in row] for row in cells]
        lines = ["| " + " | ".join(esc[0]) + " |", "|" + "|".join("---" for _ in headers) + "|"]
        return lines + ["| " + " | ".join(row) + " |" for row in esc[1:]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    def line(row):
        return "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
    return [line(cells[0]), line(["-" * w for w in widths])] + [line(r) for r in cells[1:]]


def _heading(text: str, fmt: str, level: int = 2) -> list[str]:
    if fmt == "markdown":
        return ["#" * level + " " + text, ""]
    return [text, ("=" if level <= 2 else "-") * min(len(text), 80), ""]


def render_fit(report: Mapping[str, Any], fmt: str) -> str:
    """One fit object as a table or markdown document."""
    out: list[str] = []
    out += _heading(f"{report['law']}: {report.get('formula', '')}", fmt, 2)
    metrics = report.get("metrics", {})
    out.append(f"x = {report.get('x')}, y = {report.get('y')}, group = {report.get('group')}; "
               f"{report.get('space')} space, {report.get('weights')} weights; "
               f"{metrics.get('n_points')} points, {metrics.get('n_groups')} group(s); "
               f"intercepts in log{report.get('log_base')}")
    if report.get("citation"):
        out.append(f"law: {report['citation']}")
    out.append("")
    ci = report.get("ci") or {}
    level = (report.get("bootstrap") or {}).get("level")
    ci_head = f"{round(level * 100)}% interval" if level else "interval"
    params = report.get("params", {})
    rows = [[name, value] + ([_ci(ci.get(name))] if ci else []) for name, value in params.items()
            if not isinstance(value, Mapping)]
    if rows:
        out += _heading("parameters", fmt, 3)
        out += grid(["parameter", "value"] + ([ci_head] if ci else []), rows, fmt) + [""]
    per_group = {name: value for name, value in params.items() if isinstance(value, Mapping)}
    derived = report.get("derived") or {}
    per_group.update({name: value for name, value in derived.items() if name not in per_group})
    if per_group:
        r2_group = metrics.get("r2_group") or {}
        names = list(per_group)
        dci = (ci.get("derived") or {})
        out += _heading("per group", fmt, 3)
        headers = [report.get("group") or "group"]
        for name in names:
            headers.append(name)
            if isinstance(ci.get(name), Mapping) or isinstance(dci.get(name), Mapping):
                headers.append(f"{name} {ci_head}")
        headers.append("R2")
        table = []
        for key in report.get("groups", {}):
            row = [key]
            for name in names:
                row.append(per_group[name].get(key))
                interval = (ci.get(name) or dci.get(name))
                if isinstance(interval, Mapping):
                    row.append(_ci(interval.get(key)))
            row.append(r2_group.get(key))
            table.append(row)
        out += grid(headers, table, fmt) + [""]
    shown = [(m, metrics.get(m)) for m in ("r2", "r2_log", "rmse", "rmse_log", "objective",
                                           "aic", "bic", "n_params") if m in metrics]
    out += _heading("metrics", fmt, 3)
    out += grid(["metric", "value"], shown, fmt) + [""]
    validation = report.get("validation") or {}
    if validation.get("protocol") == "fit-fraction" and validation.get("per_curve"):
        out += _heading(f"held out: the last {1 - validation['fraction']:.0%} of every curve "
                        f"(pooled R2 {_num((validation.get('test') or {}).get('r2'))})", fmt, 3)
        rows = [[k, e.get("n_points"), e.get("rmse"), e.get("r2"), e.get("noise_floor"),
                 e.get("rmse_over_noise"), (e.get("final_point") or {}).get("rel_error"),
                 e.get("interval_coverage")] for k, e in validation["per_curve"].items()]
        out += grid(["curve", "points", "RMSE", "R2", "noise floor", "RMSE/noise",
                     "final rel. error", "coverage"], rows, fmt) + [""]
    elif validation.get("protocol") == "holdout-group":
        out += _heading("held-out groups", fmt, 3)
        rows = []
        for key, entry in validation.get("groups", {}).items():
            for kind in ("pure", "calibrated"):
                e = entry.get(kind) or {}
                rows.append([key, kind, e.get("rmse"), e.get("r2"), entry.get("noise_floor"),
                             e.get("rmse_over_noise"),
                             (e.get("final_point") or {}).get("rel_error"),
                             e.get("interval_coverage")] if "rmse" in e
                            else [key, kind, e.get("reason", "-"), "", "", "", "", ""])
        out += grid(["group", "prediction", "RMSE", "R2", "noise floor", "RMSE/noise",
                     "final rel. error", "coverage"], rows, fmt) + [""]
    out += _warnings(report.get("warnings") or [], fmt)
    return "\n".join(out).rstrip() + "\n"


def _warnings(warnings: Sequence[Any], fmt: str) -> list[str]:
    if not warnings:
        return []
    out = _heading("warnings", fmt, 3)
    for w in warnings:
        message = w["message"] if isinstance(w, Mapping) else str(w)
        out.append(f"- {message}")
    return out + [""]


def render_compare(result: Mapping[str, Any], fmt: str) -> str:
    """The law comparison as one ranking table plus each law's warnings."""
    out = _heading(f"laws ranked by mean held-out RMSE per curve ({result.get('protocol')})",
                   fmt, 2)
    rows = []
    for row in result["compare"]:
        if "error" in row:
            rows.append(["-", row["law"], "cannot be fitted: " + row["error"], "", "", "", "",
                         "", ""])
            continue
        rows.append([row.get("rank") or "-", row["law"], row.get("heldout_rmse_mean"),
                     row.get("heldout_rmse_over_noise_median"), row.get("heldout_r2_worst"),
                     row.get("r2"), row.get("aic"), row.get("bic"), len(row.get("warnings", []))])
    out += grid(["rank", "law", "held-out RMSE", "RMSE/noise (median)", "worst curve R2",
                 "pooled R2", "AIC", "BIC", "warnings"], rows, fmt) + [""]
    for row in result["compare"]:
        if row.get("warnings"):
            out += _heading(f"{row['law']}: warnings", fmt, 3)
            out += [f"- {m}" for m in row["warnings"]] + [""]
    return "\n".join(out).rstrip() + "\n"
