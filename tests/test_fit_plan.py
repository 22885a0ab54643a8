"""`fit --plan`: the best value of a discrete setting per budget, and the crossover budgets."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rlscale.core.laws.forms import get_law
from rlscale.core.laws.model import FittedLaw
from rlscale.core.laws.planner import plan_discrete
from tests.conftest import jsonl, run_inprocess

# two rollout group sizes: G=8 starts lower, G=32 learns faster (the paper's App. B.2 finding)
TRUE = {8: (0.05, 1.0), 32: (0.08, 1.5)}  # G -> (slope k, log10 intercept E)
CROSS = 10 ** ((1.5 - 1.0) / (0.08 - 0.05))  # where -k8 lx + E8 = -k32 lx + E32: 10^16.67


def _curves(sd=0.003, seed=0, runs=3):
    rng = np.random.default_rng(seed)
    rows = []
    for g, (k, e) in TRUE.items():
        for run in range(runs):
            for s in range(1, 101):
                c = 10 ** (15 + 4 * s / 100)  # 1e15 ... 1e19 FLOPs
                rows.append({"G": g, "run_id": f"G{g}-{run}", "step": s, "C": c,
                             "loss": 10 ** (e - k * math.log10(c)) * (1 + rng.normal(0, sd))})
    return rows


def test_exact_law_gives_the_analytic_crossover():
    fitted = FittedLaw(get_law("loglinear"), ["8", "32"], np.array([8.0, 32.0]),
                       {"k": np.array([0.05, 0.08]), "E": np.array([1.0, 1.5])})
    out = plan_discrete(fitted, budgets=[1e15, 1e18], budget_range=(1e15, 1e19))
    [cross] = out["crossovers"]
    assert (cross["from"], cross["to"]) == ("8", "32")
    assert cross["budget"] == pytest.approx(CROSS, rel=1e-8)
    assert [b["best"] for b in out["best_by_budget"]] == ["8", "32"]
    assert out["best_by_budget"][0]["loss_by_choice"]["8"] == pytest.approx(10 ** (1 - 0.05 * 15))
    none = plan_discrete(fitted, budget_range=(1e15, 1e16))
    assert none["crossovers"] == [] and none["best_at_range_start"] == "8"


def test_plan_from_the_command_line_finds_the_crossover_with_an_interval():
    result = run_inprocess(["fit", "--plan", "--group", "G", "--bootstrap", "40",
                            "--budget", "1e15,1e19"], input=jsonl(_curves()))
    assert result.exit_code == 0, result.stderr
    [out] = result.records
    assert out["law"] == "loglinear" and out["setting"] == "G"
    [cross] = out["crossovers"]
    assert (cross["from"], cross["to"]) == ("8", "32")
    assert cross["budget"] == pytest.approx(CROSS, rel=0.1)
    lo, hi = cross["budget_ci"]
    assert lo <= CROSS <= hi and hi / lo < 2.0
    assert cross["share_of_draws"] == 1.0
    assert [b["best"] for b in out["best_by_budget"]] == ["8", "32"]
    assert out["best_by_budget"][1]["best_share"] == {"8": 0.0, "32": 1.0}
    assert "G=32 overtakes G=8 at C = " in result.stderr


def test_plan_usage_errors():
    data = jsonl(_curves(runs=1))
    bad = run_inprocess(["fit", "--plan", "--group", "G", "--sizes", "1e9"], input=data)
    assert bad.exit_code == 2 and "--plan chooses among the fitted groups" in bad.stderr
    bad = run_inprocess(["fit", "--budget-range", "1:2"], input=data)
    assert bad.exit_code == 2 and "--budget-range goes with --plan" in bad.stderr
    one = [r for r in _curves(runs=1) if r["G"] == 8]
    bad = run_inprocess(["fit", "--plan", "--group", "G"], input=jsonl(one))
    assert bad.exit_code == 1 and "needs at least 2 fitted values" in bad.stderr
