"""The demo's opening: the paper's own Table 6 row, reproduced by ``rlscale fit``.

``scripts/demo.sh`` first runs ``rlscale fit --example paper-base --space linear
--holdout-group 72e9`` on the Qwen2.5 Base curves shipped with rlscale (sizes up to 32B fitted,
72B held out: Table 6's "inter" row on compute) and hands the fit's JSON to this module, which
prints rlscale's numbers beside the paper's as a markdown table.

    python -m rlscale.demo.paper FIT.json
"""

from __future__ import annotations

import sys
from typing import Any

import orjson

from rlscale.core.laws.paper import TABLE6

ROW = ("paper-base", "C", "inter")


def table6_row(fit: dict[str, Any]) -> str:
    """Markdown: the reproduced Table 6 row (Base, C, inter) beside the paper's numbers."""
    k_paper, n0_paper, r2_paper = TABLE6[ROW]
    params, metrics = fit["params"], fit["metrics"]
    held_out = (fit.get("validation", {}).get("groups", {}).get("72000000000", {}))
    calibrated = held_out.get("calibrated", {}).get("r2")
    pure = held_out.get("pure", {}).get("r2")
    lines = [
        "Table 6 of Tan et al. (2025), Qwen2.5 Base, test loss vs compute, fit on 0.5B-32B "
        f"({metrics['n_points']} points), 72B held out:",
        "",
        "| | K_max | N_0 | R^2 |",
        "|---|---|---|---|",
        f"| paper | {k_paper:.4f} | {n0_paper:.2f}B | {r2_paper:.4f} |",
        f"| rlscale | {params['K_max']:.4f} | {params['N_0'] / 1e9:.2f}B | {metrics['r2']:.4f} |",
    ]
    if calibrated is not None and pure is not None:
        lines += ["", f"72B, held out: R^2 {calibrated:.3f} with its intercept calibrated on "
                  f"its own points, {pure:.2f} with the intercept extrapolated in log N."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m rlscale.demo.paper FIT.json", file=sys.stderr)
        return 2
    with open(args[0], "rb") as handle:
        fit = orjson.loads(handle.read())
    print(table6_row(fit))
    return 0


if __name__ == "__main__":
    sys.exit(main())
