"""`scripts/demo.sh --quick` end to end: the whole method through rlscale's own subcommands.

One run of the quick study (3 tiny sizes, 2 GRPO steps each) in a temporary directory, then
checks of what each stage wrote: the curated splits, the per-step runs.jsonl (compute recomputed
independently from the grpo-step token counts), the fits, the plot and the result table.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys

import orjson
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "scripts", "demo.sh")


def _read(path: str) -> list[dict]:
    with open(path, "rb") as handle:
        return [orjson.loads(line) for line in handle
                if line.strip() and not line.startswith(b'{"rlscale_end"')]


def _env() -> dict:
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    return env


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "out"
    proc = subprocess.run(["bash", SCRIPT, "--quick", "--out", str(out)], capture_output=True,
                          text=True, env=_env(), cwd=str(out.parent), timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return str(out), proc


def test_stdout_is_the_result_table_and_progress_is_on_stderr(quick_run):
    out, proc = quick_run
    # the demo opens with the paper's own result, then the micro study's table
    with open(os.path.join(out, "paper-table6.md")) as handle:
        paper_block = handle.read()
    assert proc.stdout.startswith(paper_block) and paper_block.startswith("Table 6 of Tan")
    study = proc.stdout[len(paper_block):].lstrip("\n")
    assert study.startswith("| size | N (params) |")
    assert "K_max = " in study and "N_0 = " in study and "R² = " in study
    assert "demo [" not in proc.stdout and "demo [" in proc.stderr
    with open(os.path.join(out, "summary.md")) as handle:
        assert handle.read() == study


def test_the_demo_opens_with_table6_reproduced_from_the_shipped_curves(quick_run):
    out, _ = quick_run
    with open(os.path.join(out, "paper-fit.json"), "rb") as handle:
        fit = orjson.loads(handle.read())
    # Table 6 (Base, C, inter): K_max 0.1518, N_0 17.37B, R^2 0.9944, to the digits printed
    assert round(fit["params"]["K_max"], 4) == 0.1518
    assert round(fit["params"]["N_0"] / 1e9, 2) == 17.37
    assert round(fit["metrics"]["r2"], 4) == 0.9944
    with open(os.path.join(out, "paper-table6.md")) as handle:
        rows = [line for line in handle if line.startswith("| paper") or line.startswith("| rl")]
    assert [row.split("|")[2:5] for row in rows] == [[" 0.1518 ", " 17.37B ", " 0.9944 "]] * 2
    with open(os.path.join(out, "paper-figure1.png"), "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"


def test_curated_splits(quick_run):
    out, _ = quick_run
    train = _read(os.path.join(out, "train.jsonl"))
    held = _read(os.path.join(out, "heldout.jsonl"))
    task = _read(os.path.join(out, "task.jsonl"))
    assert len(train) + len(held) == len(task)
    assert not {r["prompt_id"] for r in train} & {r["prompt_id"] for r in held}
    assert {r["split"] for r in train} == {"train"} and {r["split"] for r in held} == {"test"}
    rates = [r["pass_rate"] for r in train]
    assert rates == sorted(rates, reverse=True)  # curriculum: easy -> hard
    # pass rates are means of the reference model's rewards (4 samples each in --quick)
    assert all(4 * rate == round(4 * rate) for rate in rates)


def test_runs_jsonl_compute_matches_the_trainer_token_counts(quick_run):
    out, _ = quick_run
    runs = _read(os.path.join(out, "runs.jsonl"))
    for field in ("run_id", "N", "step", "loss", "n_tokens", "C", "D"):
        assert all(field in r for r in runs), field
    sizes = sorted({r["run_id"] for r in runs})
    assert sizes == ["s1", "s2", "s3"]
    assert len({r["N"] for r in runs}) == 3
    for size in sizes:
        curve = [r for r in runs if r["run_id"] == size]
        metrics = _read(os.path.join(out, "runs", size, "train-metrics.jsonl"))
        steps = [r["step"] for r in curve]
        assert steps == list(range(len(metrics) + 1))
        # eval at step s carries the tokens of the update that produced that policy
        assert [r["n_tokens"] for r in curve] == [0] + [m["n_tokens"] for m in metrics]
        n_params = curve[0]["N"]
        assert n_params == metrics[0]["n_params"]  # flops --n-def total == the trainer's count
        expected_c = 0.0
        prompts_per_step = metrics[0]["n_groups"]
        for record, tokens in zip(curve, [0] + [m["n_tokens"] for m in metrics], strict=True):
            expected_c += 6 * n_params * tokens
            assert math.isclose(record["C"], expected_c, rel_tol=1e-12)
            assert record["D"] == prompts_per_step * record["step"]
            assert 0.0 <= record["loss"] <= 1.0
            assert math.isclose(record["loss"], 1 - record["pass@1"], abs_tol=1e-12)


def test_fits_plot_and_pretraining_summary(quick_run):
    out, _ = quick_run
    with open(os.path.join(out, "fit.json"), "rb") as handle:
        fit = orjson.loads(handle.read())
    assert fit["law"] == "saturating" and fit["x"] == "C" and fit["y"] == "loss"
    assert len(fit["groups"]) == 3
    assert math.isfinite(fit["params"]["K_max"]) and fit["params"]["N_0"] > 0
    with open(os.path.join(out, "fit-data.json"), "rb") as handle:
        assert orjson.loads(handle.read())["x"] == "D"
    with open(os.path.join(out, "demo.png"), "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
    pretrain = _read(os.path.join(out, "pretrain.jsonl"))
    assert [p["size"] for p in pretrain] == ["s1", "s2", "s3"]
    sizes = [p["n_params"] for p in pretrain]
    assert sizes == sorted(sizes) and len(set(sizes)) == 3


def test_summary_json_holds_the_result_per_size_and_a_verdict_per_observation(quick_run):
    out, _ = quick_run
    with open(os.path.join(out, "summary.json"), "rb") as handle:
        result = orjson.loads(handle.read())
    runs = _read(os.path.join(out, "runs.jsonl"))
    assert [row["size"] for row in result["sizes"]] == ["s1", "s2", "s3"]
    for row in result["sizes"]:
        for field in ("N", "pass1_start", "pass1_end", "pass8_start", "pass8_end",
                      "formatted_start", "formatted_end", "accuracy_formatted_start",
                      "accuracy_formatted_end", "k", "k_ci95"):
            assert field in row, field
        curve = sorted((r for r in runs if r["run_id"] == row["size"]), key=lambda r: r["step"])
        assert row["N"] == curve[0]["N"]
        assert (row["pass1_start"], row["pass1_end"]) == (curve[0]["pass@1"], curve[-1]["pass@1"])
        # --quick samples G = 4 per prompt, so "pass8" holds pass@G = pass@4
        assert (row["pass8_start"], row["pass8_end"]) == (curve[0]["pass@4"], curve[-1]["pass@4"])
        for field in ("formatted_start", "formatted_end"):
            assert 0.0 <= row[field] <= 1.0
    assert result["pass_k"] == "pass@4"
    saturating = result["saturating"]
    for field in ("K_max", "K_max_ci95", "N_0", "N_0_ci95"):
        assert field in saturating, field
    assert result["reuse"] == []  # --quick runs no reuse panel
    # --quick runs one RL seed: the seeds list holds the main runs only, the same numbers
    [seed] = result["seeds"]
    assert seed["seed"] == 0 and seed["K_max"] == saturating["K_max"]
    assert [r["k"] for r in seed["sizes"]] == [r["k"] for r in result["sizes"]]
    observations = result["observations"]
    assert set(observations) == {"k_rises_with_N", "loglinear_per_size", "k_saturates",
                                 "data_reuse", "prediction"}
    for observation in observations.values():
        assert observation["verdict"] in ("holds", "does not hold", "cannot tell")
        assert observation["why"] and len(observation) > 2  # the numbers behind the verdict
    assert observations["data_reuse"]["verdict"] == "cannot tell"
    for key in ("k_rises_with_N", "loglinear_per_size", "k_saturates"):  # tested per seed
        assert set(observations[key]["by_seed"]) == {"0"}
        assert observations[key]["by_seed"]["0"]["verdict"] == observations[key]["verdict"]


def test_each_run_got_one_trainer_answer_per_step_and_left_no_pipes(quick_run):
    """Each step's answer of the --follow trainer is kept whole (its metrics record and the end
    record that closes it), the step counter continues across the batches, and the run's named
    pipes are removed."""
    out, _ = quick_run
    for size in ("s1", "s2", "s3"):
        folder = os.path.join(out, "runs", size)
        assert not [name for name in os.listdir(folder) if name.endswith((".in", ".out"))]
        with open(os.path.join(folder, "train-metrics.jsonl"), "rb") as handle:
            lines = handle.read().splitlines()
        # one answer per step: the metrics record and the end record that closes it
        assert [orjson.loads(line).get("step") for line in lines[0::2]] == [1, 2]
        assert all(line == b'{"rlscale_end":{"tool":"grpo-step","records":1}}'
                   for line in lines[1::2])


def test_bad_arguments_are_usage_errors(tmp_path):
    proc = subprocess.run(["bash", SCRIPT, "--bogus"], capture_output=True, text=True,
                          env=_env(), cwd=str(tmp_path), timeout=60)
    assert proc.returncode == 2
    assert proc.stderr == "demo.sh: unknown argument '--bogus' (see --help)\n"
    proc = subprocess.run(["bash", SCRIPT, "--seed", "x"], capture_output=True, text=True,
                          env=_env(), cwd=str(tmp_path), timeout=60)
    assert proc.returncode == 2
    assert proc.stderr == "demo.sh: --seed must be a non-negative integer\n"
    assert not os.listdir(tmp_path)  # nothing written before the arguments are checked
