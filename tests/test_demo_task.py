"""The demo's digit-sum task, and the demo's result (pure code, fast)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rlscale.demo.prepare import _parse_levels
from rlscale.demo.report import (
    FAILS,
    HOLDS,
    UNSURE,
    markdown,
    reuse_rows,
    sample_shares,
    saturation,
    size_rows,
    verdict_k_rises,
    verdict_loglinear,
    verdict_prediction,
    verdict_reuse,
)
from rlscale.demo.task import (
    BOXED_SUFFIX,
    DATA_SOURCE,
    MAX_OPERANDS,
    MIN_OPERANDS,
    direct_solution,
    generate_problems,
    is_worked,
    make_problem,
    number_problems,
    operands,
    pretraining_corpus,
    worked_solution,
)


@given(seed=st.integers(0, 2**32 - 1), level=st.integers(MIN_OPERANDS, MAX_OPERANDS))
def test_problem_answer_matches_its_expression(seed, level):
    problem = make_problem(random.Random(seed), level)
    digits = operands(problem)
    assert len(digits) == level and all(0 <= d <= 9 for d in digits)
    assert problem["answer"] == str(sum(digits))
    assert problem["prompt"] == f"What is {problem['expression']}? {BOXED_SUFFIX}"
    assert problem["data_source"] == DATA_SOURCE and problem["level"] == level
    # the worked solution is correct and ends with the boxed sum
    assert worked_solution(problem).endswith(f" \\boxed{{{problem['answer']}}}")


def test_level_out_of_range_is_rejected():
    with pytest.raises(ValueError, match="level must be in 2..7, got 1"):
        make_problem(random.Random(0), 1)
    with pytest.raises(ValueError, match="level must be in 2..7, got 8"):
        make_problem(random.Random(0), 8)


def test_solutions_worked_slipped_and_direct():
    problem = {"expression": "3 + 5 + 8 + 2", "answer": "18"}
    assert worked_solution(problem) == "3+5=8 8+8=16 16+2=18 \\boxed{18}"
    # a slip at the second step is carried through to the answer
    assert worked_solution(problem, slip_at=1, slip=-1) == "3+5=8 8+8=15 15+2=17 \\boxed{17}"
    assert worked_solution({"expression": "0 + 1", "answer": "1"}, 0, -2) == "0+1=0 \\boxed{0}"
    assert direct_solution(problem) == "\\boxed{18}"
    assert direct_solution(problem, miss=2) == "\\boxed{20}"
    assert is_worked("3+5=8 8+8=16 \\boxed{16}") and not is_worked(" \\boxed{16}")
    assert not is_worked(" \\boxed{1=1}")  # only what comes before the answer counts


def test_pretraining_corpus_mixes_procedure_and_errors_as_asked():
    problems = generate_problems(random.Random(0), 2000, levels=[3, 4])
    corpus = pretraining_corpus(random.Random(1), problems, worked_share=0.5, slip_rate=0.2,
                                miss_rate=0.9)
    worked = [p for p in corpus if p["style"] == "worked"]
    direct = [p for p in corpus if p["style"] == "direct"]
    assert 900 < len(worked) < 1100 and len(worked) + len(direct) == 2000
    assert all(is_worked(p["solution"]) for p in worked)
    assert not any(is_worked(p["solution"]) for p in direct)
    assert 0.7 < sum(p["correct"] for p in worked) / len(worked) < 0.9
    assert 0.05 < sum(p["correct"] for p in direct) / len(direct) < 0.15
    assert all(p["solution"].endswith("}") and "\\boxed{" in p["solution"] for p in corpus)
    assert "solution" not in problems[0]  # the input is not modified
    exact = pretraining_corpus(random.Random(1), problems[:50], worked_share=1.0, slip_rate=0.0,
                               miss_rate=0.0)
    assert all(p["correct"] and p["solution"] == worked_solution(p) for p in exact)
    with pytest.raises(ValueError, match="must lie in"):
        pretraining_corpus(random.Random(0), problems, worked_share=1.5, slip_rate=0, miss_rate=0)


def test_generation_is_seeded_unique_and_respects_levels():
    first = generate_problems(random.Random(7), 300, levels=[3, 5])
    again = generate_problems(random.Random(7), 300, levels=[3, 5])
    other = generate_problems(random.Random(8), 300, levels=[3, 5])
    assert first == again and first != other
    assert len({p["prompt"] for p in first}) == 300
    assert {p["level"] for p in first} == {3, 5}


def test_generation_can_exclude_and_repeat():
    pool = generate_problems(random.Random(0), 60, levels=[2])
    exclude = {p["prompt"] for p in pool}
    rest = generate_problems(random.Random(1), 40, levels=[2], exclude=exclude)
    assert not exclude & {p["prompt"] for p in rest}
    repeated = generate_problems(random.Random(0), 500, levels=[2], unique=False)
    assert len({p["prompt"] for p in repeated}) <= 100  # 10 x 10 two-digit sums
    with pytest.raises(ValueError, match=r"cannot draw 101 distinct problems from levels \[2\]"):
        generate_problems(random.Random(0), 101, levels=[2])


def test_number_problems_gives_stable_ids():
    records = list(number_problems([{"prompt": "a"}, {"prompt": "b"}], prefix="x"))
    assert records == [{"id": "x-00000", "prompt": "a"}, {"id": "x-00001", "prompt": "b"}]


def test_parse_levels():
    assert _parse_levels("2-4") == (2, 3, 4)
    assert _parse_levels("2,3,5-6") == (2, 3, 5, 6)
    with pytest.raises(Exception, match="levels must lie in 2..7"):
        _parse_levels("1-2")


# --- the result ---------------------------------------------------------------------------


def test_sample_shares():
    scored = [{"verdict": "correct", "reward": 1.0, "completion": " 1+2=3 \\boxed{3}"},
              {"verdict": "wrong", "reward": 0.0, "completion": " \\boxed{4}"},
              {"verdict": "no_answer", "reward": 0.0, "completion": " 3"},
              {"verdict": "correct", "reward": 1.0, "completion": " \\boxed{3}"}]
    assert sample_shares(scored) == {"formatted": 0.75, "accuracy_formatted": 2 / 3,
                                     "worked": 0.25}
    assert sample_shares([])["formatted"] is None


def _fixture():
    fit_free = {"groups": {"1000": 1000.0, "4000": 4000.0},
                "params": {"k": {"1000": 0.01, "4000": 0.05}},
                "ci": {"k": {"1000": [0.0, 0.02], "4000": [0.03, 0.07]}},
                "metrics": {"r2": 0.95, "r2_group": {"1000": 0.5, "4000": 0.9}}}
    runs = [{"run_id": "small", "N": 1000.0, "step": 0, "pass@1": 0.1, "pass@8": 0.5, "loss": 0.9},
            {"run_id": "small", "N": 1000.0, "step": 5, "pass@1": 0.2, "pass@8": 0.6, "loss": 0.8},
            {"run_id": "big", "N": 4000.0, "step": 0, "pass@1": 0.3, "pass@8": 0.8, "loss": 0.7},
            {"run_id": "big", "N": 4000.0, "step": 5, "pass@1": 0.6, "pass@8": 0.9, "loss": 0.4}]
    pretrain = [{"size": "big", "n_params": 4000}, {"size": "small", "n_params": 1000}]
    shares = {"big": ({"formatted": 0.97, "accuracy_formatted": 0.3, "worked": 0.5},
                      {"formatted": 0.99, "accuracy_formatted": 0.6, "worked": 0.9})}
    return size_rows(runs, pretrain, fit_free, shares)


def test_size_rows_hold_the_fields_of_summary_json():
    rows = _fixture()
    assert [r["size"] for r in rows] == ["small", "big"]
    big = rows[1]
    assert (big["N"], big["pass1_start"], big["pass1_end"], big["pass8_start"],
            big["pass8_end"]) == (4000.0, 0.3, 0.6, 0.8, 0.9)
    assert (big["formatted_start"], big["accuracy_formatted_end"], big["k"],
            big["k_ci95"]) == (0.97, 0.6, 0.05, [0.03, 0.07])
    assert rows[0]["formatted_start"] is None  # no held-out samples kept for it


def test_verdicts_name_their_numbers():
    rows = _fixture()
    k = verdict_k_rises(rows)
    assert k["verdict"] == HOLDS and k["k_largest_ci95"] == [0.03, 0.07]
    assert verdict_k_rises(rows[::-1])["verdict"] == FAILS
    overlapping = [dict(rows[0], k_ci95=[0.0, 0.04]), rows[1]]
    assert verdict_k_rises(overlapping)["verdict"] == UNSURE
    log = verdict_loglinear(rows)
    assert log["verdict"] == UNSURE and log["r2_by_size"] == {"small": 0.5, "big": 0.9}
    fit_c = {"params": {"K_max": 0.1, "N_0": 2000.0},
             "ci": {"K_max": [0.05, 0.2], "N_0": [1000.0, 3000.0]},
             "metrics": {"r2": 0.9, "n_points": 10}}
    sat = saturation(fit_c, rows)
    assert sat["N_0_inside_range"] and sat["observation"]["verdict"] == HOLDS
    fit_c["ci"]["N_0"] = [5000.0, 9000.0]
    assert saturation(fit_c, rows)["observation"]["verdict"] == FAILS
    fit_c["warnings"] = [{"code": "param_at_bound", "param": "K_max",
                          "message": "K_max is at its upper bound 2"}]
    stuck = saturation(fit_c, rows)
    assert stuck["observation"] == {
        "verdict": UNSURE,
        "why": "the fit does not determine K_max (at a bound or traded off against each other)"}
    assert stuck["warnings"] == ["K_max is at its upper bound 2"]
    fit_c["warnings"] = [{"code": "poorly_determined", "param": "E", "message": "E is loose"}]
    assert saturation(fit_c, rows)["observation"]["verdict"] == FAILS  # not K_max or N_0


def test_reuse_verdict():
    runs = [{"tau": tau, "step": s, "loss": 0.8 if s == 0 else loss, "loss_se": 0.02,
             "pass@1": 1 - loss}
            for tau, loss in ((1, 0.50), (2, 0.52), (4, 0.51), (8, 0.60), (16, 0.70))
            for s in (0, 12)]
    rows = reuse_rows(runs)
    assert [r["tau"] for r in rows] == [1, 2, 4, 8, 16] and rows[0]["steps"] == 12
    result = verdict_reuse(rows)
    assert result["verdict"] == HOLDS
    assert result["within_noise_of_tau1"] == [2, 4] and result["first_worse_tau"] == 8
    assert verdict_reuse([])["verdict"] == UNSURE
    assert rows[0]["k"] is None and result["k_by_tau"]["1"] is None  # no slope fit given
    fit_reuse = {"groups": {"1": 1.0, "16": 16.0}, "params": {"k": {"1": 0.05, "16": 0.01}},
                 "ci": {"k": {"1": [0.04, 0.06], "16": [0.0, 0.03]}}}
    sloped = reuse_rows(runs, fit_reuse)
    assert [(r["tau"], r["k"], r["k_ci95"]) for r in sloped] == [
        (1, 0.05, [0.04, 0.06]), (2, None, None), (4, None, None), (8, None, None),
        (16, 0.01, [0.0, 0.03])]
    assert verdict_reuse(sloped)["k_by_tau"] == {"1": 0.05, "2": None, "4": None, "8": None,
                                                 "16": 0.01}
    early_harm = reuse_rows([{"tau": 1, "step": 0, "loss": 0.8, "loss_se": 0.01, "pass@1": 0.2},
                             {"tau": 1, "step": 1, "loss": 0.5, "loss_se": 0.01, "pass@1": 0.5},
                             {"tau": 2, "step": 1, "loss": 0.6, "loss_se": 0.01, "pass@1": 0.4}])
    assert verdict_reuse(early_harm)["verdict"] == FAILS
    no_learning = [dict(row, loss_start=row["loss_end"]) for row in rows]
    result = verdict_reuse(no_learning)
    assert result["verdict"] == UNSURE and result["tau1_gain"] == 0.0


def test_prediction_verdict():
    holdout = {"validation": {"groups": {"4000": {"pure": {"r2": 0.5}, "calibrated": {"r2": 0.8}}}}}
    early = {"validation": {"test": {"r2": 0.9, "r2_group": {"1000": 0.3, "4000": 0.2}}}}
    result = verdict_prediction(holdout, early)
    assert result["verdict"] == HOLDS
    assert (result["largest_pure_r2"], result["largest_calibrated_r2"],
            result["first30_rest_r2_pooled"]) == (0.5, 0.8, 0.9)
    assert verdict_prediction(None, None)["verdict"] == UNSURE
    early["validation"]["test"]["r2_group"]["4000"] = -1.0
    result = verdict_prediction(holdout, early)
    assert result["verdict"] == UNSURE and result["why"].startswith("1 of 4 predictions")


def test_markdown_table():
    rows = _fixture()
    result = {"pass_k": "pass@8", "sizes": rows, "reuse": [], "seeds": [],
              "saturating": {"K_max": 0.1, "K_max_ci95": None, "N_0": 2000.0, "N_0_ci95": None,
                             "r2": 0.9, "n_points": 10, "warnings": ["N_0 is poorly determined"]},
              "observations": {key: {"verdict": UNSURE, "why": "test"} for key in (
                  "k_rises_with_N", "loglinear_per_size", "k_saturates", "data_reuse",
                  "prediction")}}
    lines = markdown(result).splitlines()
    assert lines[3] == ("| big | 4,000 | 30% → 60% (step 5) | 80% → 90% | 97% → 99% | 30% → 60% "
                        "| 50% → 90% | 0.05 [0.03, 0.07] | 0.9 |")
    assert "K_max = 0.1, N_0 = 2e+03, R² = 0.9 on 10 points." in lines[5]
    assert "- (1) k rises with N: **cannot tell** (test)" in lines
    assert lines[-1] == "- N_0 is poorly determined"


def test_observations_hold_only_when_every_seed_agrees():
    from rlscale.demo.report import combine_seeds

    rows = _fixture()
    holds, overlaps = verdict_k_rises(rows), verdict_k_rises(
        [dict(rows[0], k_ci95=[0.0, 0.04]), rows[1]])
    both = combine_seeds({"0": holds, "100": holds})
    assert both["verdict"] == HOLDS and both["k_largest"] == 0.05
    assert both["why"] == "every seed: the largest size's interval lies above the smallest's"
    assert both["by_seed"] == {"0": holds, "100": holds}
    split = combine_seeds({"0": holds, "100": overlaps})
    assert split["verdict"] == UNSURE
    assert split["why"] == "the seeds disagree (seed 0 holds, seed 100 cannot tell)"
    assert split["by_seed"]["100"]["k_smallest_ci95"] == [0.0, 0.04]
    reasons = combine_seeds({"0": overlaps, "1": {"verdict": UNSURE, "why": "no interval"}})
    assert reasons["verdict"] == UNSURE and reasons["why"] == (
        "every seed cannot tell (seed 0: the intervals of the smallest and largest size "
        "overlap; seed 1: no interval)")
    alone = combine_seeds({"0": overlaps})
    assert alone["verdict"] == UNSURE and alone["why"] == overlaps["why"]


def test_markdown_shows_each_seed():
    rows = _fixture()
    seed_rows = [{key: row[key] for key in ("size", "k", "k_ci95")} for row in rows]
    result = {"pass_k": "pass@8", "sizes": rows, "reuse": [],
              "seeds": [{"seed": 0, "sizes": seed_rows, "K_max": 0.1, "K_max_ci95": [0.05, 0.2],
                         "N_0": 2000.0, "N_0_ci95": None},
                        {"seed": 100, "sizes": seed_rows[1:], "K_max": 0.2, "K_max_ci95": None,
                         "N_0": 3000.0, "N_0_ci95": None}],
              "saturating": {"K_max": 0.1, "K_max_ci95": None, "N_0": 2000.0, "N_0_ci95": None,
                             "r2": 0.9, "n_points": 10, "warnings": []},
              "observations": {key: {"verdict": UNSURE, "why": "test"} for key in (
                  "k_rises_with_N", "loglinear_per_size", "k_saturates", "data_reuse",
                  "prediction")}}
    lines = markdown(result).splitlines()
    table = lines[lines.index("| seed | k small | k big | K_max | N_0 |"):][:4]
    assert table[2] == "| 0 | 0.01 [0, 0.02] | 0.05 [0.03, 0.07] | 0.1 [0.05, 0.2] | 2e+03 |"
    assert table[3] == "| 100 | – | 0.05 [0.03, 0.07] | 0.2 | 3e+03 |"


def test_number_format_of_the_table():
    from rlscale.demo.report import _num

    assert _num(-0.0) == "0"  # a flat curve's slope can come back as -0.0
    assert _num(None) == "–"
    assert _num(0.01234) == "0.0123"
    assert _num(2.5e-5) == "2.50e-05"
