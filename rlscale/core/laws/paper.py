"""The paper's own learning curves, shipped with rlscale, and the protocols of its Table 6.

``rlscale/data/qwen2.5_base_instruct_curves.csv`` holds the Qwen2.5 Base and Instruct test-loss
curves of Tan et al. (2025) read back from the vector figures of the paper's repository (see
``rlscale/data/README.md`` for provenance); :func:`rlscale.io.curves.paper_curves` reads them,
and the functions here take those records (they do no file I/O). :func:`reproduce` fits one
row of Table 6 the way the paper's code did (saturating law, linear-space objective,
group-equal weights):

* **intra**: the early part of every curve -- Base the first 25 of 105 points
  (``--ending-clip 80``), Instruct points 4-40 (the figure starts at step 4, ``--ending-clip 65``);
* **inter**: all points of the sizes up to 32B (72B held out), R^2 of that fit.

On these curves rlscale gives the paper's K_max, N_0 and R^2 to the digits it reports for the
six Base and Instruct-intra rows; the two Instruct-inter rows are not reproduced (see
:data:`TABLE6` and the README).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from rlscale.core.errors import OptionError, RlscaleError
from rlscale.core.laws.data import Dataset, DataSpec, build_dataset, parse_where
from rlscale.core.laws.fit import FitOptions
from rlscale.core.laws.forms import get_law

CURVES_FILE = "qwen2.5_base_instruct_curves.csv"


@dataclass(frozen=True)
class Example:
    variant: str
    intra_ending_clip: int
    doc: str


EXAMPLES = {
    "paper-base": Example("Base", 80, "Qwen2.5 Base 0.5B-72B, 732 points (Tan et al. 2025)"),
    "paper-instruct": Example("Instruct", 65, "Qwen2.5 Instruct 0.5B-72B, 712 points, from "
                              "step 4 (Tan et al. 2025)"),
}

# Table 6 of Tan et al. (arXiv 2509.25300 v3, 4 decimals): (example, x, scenario) ->
# (K_max, N_0 in units of 1e9, pooled R^2). x "E" is the paper's D (prompts, 512 per step).
TABLE6: dict[tuple[str, str, str], tuple[float, float, float]] = {
    ("paper-base", "C", "intra"): (0.1349, 13.09, 0.9955),
    ("paper-base", "C", "inter"): (0.1518, 17.37, 0.9944),
    ("paper-base", "E", "intra"): (0.1348, 11.52, 0.9953),
    ("paper-base", "E", "inter"): (0.1631, 16.95, 0.9947),
    ("paper-instruct", "C", "intra"): (0.1276, 17.27, 0.9970),
    ("paper-instruct", "C", "inter"): (0.1443, 28.33, 0.9950),
    ("paper-instruct", "E", "intra"): (0.1325, 17.08, 0.9970),
    ("paper-instruct", "E", "inter"): (0.1484, 27.15, 0.9949),
}
SCENARIOS = ("intra", "inter")


def example(name: str) -> Example:
    if name not in EXAMPLES:
        raise OptionError("example", f"{name!r}: expected one of {', '.join(EXAMPLES)}")
    return EXAMPLES[name]


def example_where(name: str) -> str:
    """The ``--where`` filter that selects an example's curves from the shipped file."""
    return f"variant={example(name).variant}"


Curves = Iterable[Mapping[str, Any]]  # the shipped file's records (rlscale.io.curves)


def _refuse(where: Any, message: str) -> None:
    raise RlscaleError(f"{CURVES_FILE}:{where}: {message}")


def load_example(curves: Curves, name: str, *, x: str = "C", y: str = "L",
                 where: tuple[str, ...] = (), ending_clip: int = 0) -> Dataset:
    """The curves of one example as a fit dataset (group N, aligned by step)."""
    filters = tuple(parse_where(w) for w in (example_where(name), *where))
    spec = DataSpec(x=x, y=y, group="N", run=None, where=filters, ending_clip=ending_clip)
    return build_dataset(((dict(r), i) for i, r in enumerate(curves, 1)), spec, _refuse)


def reproduce(curves: Curves, name: str, x: str = "C", scenario: str = "intra"):
    """Fit one Table 6 row; returns the :class:`~rlscale.core.laws.pipeline.FitOutcome`."""
    from rlscale.core.laws.pipeline import FitRequest, run_fit

    if scenario not in SCENARIOS:
        raise OptionError("scenario", f"{scenario!r}: expected intra or inter")
    ex = example(name)
    dataset = load_example(curves, name, x=x,
                           ending_clip=ex.intra_ending_clip if scenario == "intra" else 0)
    request = FitRequest(get_law("saturating"), FitOptions(space="linear"),
                         holdout=["72e9"] if scenario == "inter" else ())
    return run_fit(dataset, request)


def table6(curves: Curves, names: tuple[str, ...] = tuple(EXAMPLES)) -> list[dict[str, Any]]:
    """Every Table 6 row of ``names``: the paper's numbers beside rlscale's."""
    curves = list(curves)
    rows = []
    for (name, x, scenario), (k_paper, n0_paper, r2_paper) in TABLE6.items():
        if name not in names:
            continue
        report = reproduce(curves, name, x, scenario).report
        rows.append({
            "example": name, "x": "D" if x == "E" else x, "scenario": scenario,
            "K_max": report["params"]["K_max"], "N_0": report["params"]["N_0"],
            "r2": report["metrics"]["r2"], "n_points": report["metrics"]["n_points"],
            "paper": {"K_max": k_paper, "N_0": n0_paper * 1e9, "r2": r2_paper},
            "holdout_72B_r2_calibrated": (report.get("validation", {}).get("groups", {})
                                          .get("72000000000", {}).get("calibrated", {})
                                          .get("r2")),
        })
    return rows


# Table 7 of Tan et al. (v3): Appendix D law on Base, L(N, D), first 30 % of steps, 3B-72B.
# size -> (D_0 in prompts, lambda); the paper gives R^2 0.995 and no global parameters.
TABLE7: dict[str, tuple[float, float]] = {
    "3000000000": (5109.6316, 0.0734),
    "7000000000": (3725.6374, 0.1882),
    "14000000000": (4554.7619, 0.2520),
    "32000000000": (3576.0323, 0.3279),
    "72000000000": (5861.6228, 0.3084),
}


def table7(curves: Curves) -> dict[str, Any]:
    """The Appendix D decomposition under the paper's protocol (Base, x = D, 3B-72B, the first
    30 % of steps, log-space objective), with Table 7's D_0 and lambda beside rlscale's."""
    from rlscale.core.laws.pipeline import FitRequest, run_fit

    dataset = load_example(curves, "paper-base", x="E", where=("N>=3e9",))
    outcome = run_fit(dataset, FitRequest(get_law("decomposition"), FitOptions(space="log"),
                                          fit_fraction=0.3))
    report = outcome.report
    rows = {key: {"D_0": report["params"]["D_0"][key], "lambda": report["params"]["lambda"][key],
                  "paper": {"D_0": d_0, "lambda": lam}}
            for key, (d_0, lam) in TABLE7.items()}
    return {"groups": rows, "r2": report["metrics"]["r2"], "params": report["params"],
            "warnings": report["warnings"], "profile": report.get("profile")}
