"""`rlscale flops` end to end: golden outputs, VeRL logs, error paths (message + exit code)."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import DATA, jsonl, run_inprocess
from tests.conftest import run_cli as run_subprocess

run_cli = run_inprocess

QWEN7B = os.path.join(DATA, "models", "Qwen2.5-7B")
LOG = os.path.join(DATA, "verl_output.log")
TOKENS = 4096 * 800


def _steps(run_ids=("r0",), n_steps=3, **extra):
    return [{"run_id": run, "step": s, "n_tokens": 0 if s == 0 else TOKENS, **extra}
            for run in run_ids for s in range(n_steps)]


def test_model_report():
    result = run_cli(["flops", "--model", QWEN7B])
    assert result.exit_code == 0, result.stderr
    assert result.records == [{
        "model": QWEN7B, "config": os.path.join(QWEN7B, "config.json"), "model_type": "qwen2",
        "n_params_total": 7_615_616_512, "n_params_non_embedding": 6_525_621_760,
        "n_params_embedding": 1_089_994_752, "tied_embeddings": False,
        "n_params_nominal": 7e9, "nominal_from": "size label in 'Qwen2.5-7B'"}]


def test_golden_records_with_n_params():
    records = _steps(("r0",), 3) + [{"run_id": "r0", "step": 2, "n_tokens": TOKENS, "tag": "x"}]
    result = run_subprocess(["flops", "--n-params", "7e9", "-q"], input=jsonl(records))
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    per_step = 6 * 7e9 * TOKENS
    assert result.records == [
        {**records[0], "N": 7e9, "flops_step": 0.0, "C": 0.0, "D": 0, "T": 0},
        {**records[1], "N": 7e9, "flops_step": per_step, "C": per_step, "D": 512, "T": TOKENS},
        {**records[2], "N": 7e9, "flops_step": per_step, "C": 2 * per_step, "D": 1024,
         "T": 2 * TOKENS},
        # a second record of step 2 shares its values; other fields pass through
        {**records[3], "N": 7e9, "flops_step": per_step, "C": 2 * per_step, "D": 1024,
         "T": 2 * TOKENS},
    ]


def test_105_identical_steps_reach_the_paper_total():
    result = run_cli(["flops", "--n-params", "7e9"], input=jsonl(_steps(("r",), 106)))
    assert result.exit_code == 0
    last = result.records[-1]
    assert last["C"] == pytest.approx(1.445e19, rel=1e-3)
    assert result.stderr.strip() == ("rlscale flops: N = 7e+09 (--n-params); 6NT; 1 run(s), "
                                     "106 step(s), max C = 1.445e+19")


def test_interleaved_runs_keep_order_and_separate_sums():
    a, b = _steps(("a",), 3), _steps(("b",), 3, N=1e9)
    interleaved = [a[0], b[0], a[1], b[1], b[2], a[2]]
    for r in (a + b):
        r.setdefault("N", 7e9)
    result = run_cli(["flops"], input=jsonl(interleaved))
    assert result.exit_code == 0, result.stderr
    out = result.records
    assert [(r["run_id"], r["step"]) for r in out] == [(r["run_id"], r["step"]) for r in interleaved]
    assert out[5]["C"] == 2 * 6 * 7e9 * TOKENS  # run a, from its own N
    assert out[4]["C"] == 2 * 6 * 1e9 * TOKENS  # run b, from its own N
    assert [r["N"] for r in out] == [7e9, 1e9, 7e9, 1e9, 1e9, 7e9]


def test_n_def_non_embedding_and_total_count_from_the_config():
    records = _steps(("r",), 2)
    for n_def, n in (("non-embedding", 6_525_621_760), ("total", 7_615_616_512), ("nominal", 7e9)):
        result = run_cli(["flops", "-", "--model", QWEN7B, "--n-def", n_def], input=jsonl(records))
        assert result.exit_code == 0, result.stderr
        assert result.records[1]["N"] == n
        assert result.records[1]["C"] == 6 * n * TOKENS


def test_count_extra_passes():
    records = _steps(("r",), 2)
    result = run_cli(["flops", "--n-params", "1e9", "--count", "rollout,reference"],
                     input=jsonl(records))
    assert result.records[1]["flops_step"] == 10 * 1e9 * TOKENS
    result = run_cli(["flops", "--n-params", "1e9", "--count", "all"], input=jsonl(records))
    assert result.records[1]["flops_step"] == 12 * 1e9 * TOKENS


def test_prompts_per_step_from_option_record_or_default():
    # n_groups is grpo-step's prompts per step; n_prompts (eval's held-out size) is ignored
    records = [{"step": 1, "n_tokens": 10, "n_groups": 64, "n_prompts": 500},
               {"step": 2, "n_tokens": 10, "n_prompts": 500}]
    result = run_cli(["flops", "--n-params", "1"], input=jsonl(records))
    assert [r["D"] for r in result.records] == [64, 64 + 512]
    result = run_cli(["flops", "--n-params", "1", "--prompts-per-step", "100"], input=jsonl(records))
    assert [r["D"] for r in result.records] == [100, 200]


def test_gap_warning():
    records = [{"step": 1, "n_tokens": 1}, {"step": 3, "n_tokens": 1}]
    result = run_cli(["flops", "--n-params", "1"], input=jsonl(records))
    assert result.exit_code == 0
    assert "rlscale flops: warning: run None: step 3 follows step 1; C, D and T count only the " \
           "steps present" in result.stderr


def test_phi_option_adds_phi_and_ideal_compute():
    records = _steps(("a", "b"), 11, N=7e9)
    records.insert(3, {**records[2], "data_source": "other"})  # a repeated step counts once
    result = run_cli(["flops", "--phi"], input=jsonl(records))
    assert result.exit_code == 0, result.stderr
    phi = 6 * TOKENS / 512
    assert len(result.records) == len(records)
    for record in result.records:
        assert record["phi"] == pytest.approx(phi)
        assert record["C_ideal"] == pytest.approx(7e9 * record["D"] * phi)
        assert record["C_ideal"] == pytest.approx(record["C"])  # constant tokens: ideal = measured
    assert "rlscale flops: phi = 3.84e+04 (per size: N=7e+09: 3.84e+04)" in result.stderr


def test_empty_input_is_valid():
    result = run_cli(["flops", "--n-params", "1e9"], input="")
    assert (result.exit_code, result.stdout) == (0, "")


@pytest.mark.parametrize("args, records, message", [
    ([], [{"n_tokens": 5}],
     "rlscale flops: <stdin>:1: no N: the record has no field 'N'; pass --n-params or --model"),
    (["--n-params", "1"], [{"step": 1}], "rlscale flops: <stdin>:1: missing required field 'n_tokens'"),
    (["--n-params", "1"], [{"n_tokens": "many"}],
     "rlscale flops: <stdin>:1: field 'n_tokens' must be a number, got string \"many\""),
    (["--n-params", "1"], [{"n_tokens": -1}],
     "rlscale flops: <stdin>:1: field 'n_tokens' must be >= 0, got -1"),
    (["--n-params", "1"], [{"n_tokens": 1, "step": 1.5}],
     "rlscale flops: <stdin>:1: field 'step' must be an integer >= 0, got 1.5"),
    (["--n-params", "1"], [{"run_id": "a", "step": 2, "n_tokens": 1}, {"run_id": "a", "step": 1, "n_tokens": 1}],
     "rlscale flops: <stdin>:2: run a: step 1 comes after step 2 of the same run (sort records by "
     "step within each run_id)"),
    ([], [{"n_tokens": 1, "N": 0}], "rlscale flops: <stdin>:1: field 'N' must be > 0, got 0"),
])
def test_bad_records(args, records, message):
    result = run_cli(["flops", *args], input=jsonl(records))
    assert result.exit_code == 1
    assert result.stderr.strip() == message
    assert "Traceback" not in result.stderr


def test_bad_record_in_a_real_process_has_no_traceback():
    result = run_subprocess(["flops", "--n-params", "1"], input='{"n_tokens": 1}\n{"step": 2}\n')
    assert result.exit_code == 1
    assert result.stderr == "rlscale flops: <stdin>:2: missing required field 'n_tokens'\n"
    result = run_subprocess(["flops", "--n-params", "1", "--debug"], input='{"step": 2}\n')
    assert result.exit_code == 1 and "Traceback" in result.stderr


def test_nan_is_rejected_and_skip_invalid_counts(tmp_path):
    text = '{"n_tokens": NaN}\n{"n_tokens": 5}\nnot json\n'
    result = run_cli(["flops", "--n-params", "1"], input=text)
    assert result.exit_code == 1
    assert result.stderr.startswith("rlscale flops: <stdin>:1: invalid JSON")
    rejects = tmp_path / "rejects.jsonl"
    result = run_cli(["flops", "--n-params", "1", "--skip-invalid", "--rejects", str(rejects), "-q"],
                     input=text)
    assert result.exit_code == 0
    assert [r["C"] for r in result.records] == [30.0]
    assert rejects.read_text() == '{"n_tokens": NaN}\nnot json\n'


@pytest.mark.parametrize("args, message", [
    (["--n-def", "total"], "rlscale flops: --n-def total needs --model (a config.json to count parameters)"),
    (["--n-def", "huge"], "rlscale flops: --n-def must be one of nominal, total, non-embedding, got 'huge'"),
    (["--count", "critic"], "rlscale flops: --count: unknown pass 'critic'; expected rollout, "
                            "reference, old-logprob or all"),
    (["--n-params", "-5"], "rlscale flops: --n-params must be a positive number, got -5"),
    (["--n-params", "7e9", "--n-def", "total", "--model", QWEN7B],
     "rlscale flops: --n-params sets the nominal N; with --n-def total N is counted from --model, "
     "so drop one of them"),
    (["--holdout-source", "a"], "rlscale flops: --holdout-source, --run-id, --all-steps, --keep "
                                "and --val-metric need --from-verl-log"),
    (["--from-verl-log", LOG], "rlscale flops: --from-verl-log needs --n-params or --model (a log has no N)"),
    (["x.jsonl", "--from-verl-log", LOG], "rlscale flops: give either JSONL inputs or --from-verl-log, "
                                          "not both"),
])
def test_usage_errors_exit_2(args, message):
    result = run_cli(["flops", *args], input="")
    assert result.exit_code == 2
    assert result.stderr.strip() == message


def test_unreadable_model_config(tmp_path):
    result = run_cli(["flops", "--model", str(tmp_path)])
    assert result.exit_code == 1
    assert result.stderr.strip() == f"rlscale flops: {tmp_path}/config.json: no such file"
    (tmp_path / "config.json").write_text("{not json")
    result = run_cli(["flops", "--model", str(tmp_path)])
    assert result.exit_code == 1
    assert result.stderr.strip().startswith(f"rlscale flops: {tmp_path}/config.json: invalid JSON")


# --- --from-verl-log ------------------------------------------------------------------------------

# The fixture log (tests/data/verl_output.log): steps 0-6, with a crash after a first attempt
# at step 4 (tokens 9,999,999, scores 0) and a resume that re-logs step 3's validation.
FIXTURE_TOKENS = {0: 0, 1: 3_000_000, 2: 3_100_000, 3: 3_200_000, 4: 3_300_000, 5: 3_400_000,
                  6: 3_500_000}
FIXTURE_SCORES = {0: (0.3, 0.2), 1: (0.32, 0.22), 2: (0.35, 0.25), 3: (0.4, 0.3), 4: (0.42, 0.31),
                  5: (0.45, 0.33), 6: (0.5, 0.4)}


def test_verl_log_golden():
    result = run_subprocess(["flops", "--from-verl-log", LOG, "--n-params", "7e9", "--run-id", "qwen7b-r1",
                      "--keep", "response_length/*"])
    assert result.exit_code == 0, result.stderr
    out = result.records
    assert [r["step"] for r in out] == list(range(7))
    cumulative = 0.0
    for record in out:
        step = record["step"]
        dapo, deepscaler = FIXTURE_SCORES[step]
        holdout = (335 * dapo + 165 * deepscaler) / 500
        cumulative += 6 * 7e9 * FIXTURE_TOKENS[step]
        assert record["run_id"] == "qwen7b-r1"
        assert record["n_tokens"] == FIXTURE_TOKENS[step]
        assert record["score/math__merged_deduped_dapo_or1_dataset"] == dapo
        assert record["score/math__deepscaler_preview"] == deepscaler
        assert record["holdout_score"] == pytest.approx(holdout, abs=1e-12)
        assert record["loss"] == pytest.approx(1 - holdout, abs=1e-12)
        assert record["C"] == pytest.approx(cumulative, rel=1e-12)
        assert record["D"] == 512 * step
        assert record["N"] == 7e9
    assert out[1]["response_length/mean"] == 701.0
    assert out[4]["response_length/mean"] == 704.0  # np.float64(704.0) in the resumed log
    assert "score/math__math" in out[5] and "score/math__math" not in out[6]
    assert "actor/pg_loss" not in out[1]  # only --keep patterns are copied


def test_verl_log_custom_holdout_source_and_default_run_id():
    result = run_cli(["flops", "--from-verl-log", LOG, "--n-params", "1e9",
                      "--holdout-source", "math__math"])
    assert result.exit_code == 0, result.stderr
    out = result.records
    # math__math is scored at steps 0-5 only (not in the last line), so step 6 is not emitted
    assert [r["step"] for r in out] == [0, 1, 2, 3, 4, 5]
    assert out[2]["loss"] == pytest.approx(1 - 0.52)
    assert out[0]["run_id"] == LOG
    # C still counts step 6's tokens when --all-steps shows it
    result = run_cli(["flops", "--from-verl-log", LOG, "--n-params", "1e9",
                      "--holdout-source", "math__math", "--all-steps"])
    assert "loss" not in result.records[6]
    assert result.records[6]["C"] == 6 * 1e9 * sum(FIXTURE_TOKENS.values())


def test_verl_log_with_model_config():
    nominal = run_cli(["flops", "--from-verl-log", LOG, "--model", QWEN7B])
    assert {r["N"] for r in nominal.records} == {7e9}
    assert "N = 7e+09 (nominal, size label in 'Qwen2.5-7B')" in nominal.stderr
    counted = run_cli(["flops", "--from-verl-log", LOG, "--model", QWEN7B, "--n-def", "total",
                       "--count", "rollout"])
    assert counted.records[-1]["C"] == pytest.approx(
        8 * 7_615_616_512 * sum(FIXTURE_TOKENS.values()), rel=1e-12)


def test_verl_log_weighted_sources():
    result = run_cli(["flops", "--from-verl-log", LOG, "--n-params", "1e9", "--holdout-source",
                      "math__merged_deduped_dapo_or1_dataset=1", "--holdout-source",
                      "math__deepscaler_preview=3"])
    assert result.records[1]["loss"] == pytest.approx(1 - (0.32 + 3 * 0.22) / 4)


def test_verl_log_missing_holdout_source_is_an_error():
    result = run_cli(["flops", "--from-verl-log", LOG, "--n-params", "1e9",
                      "--holdout-source", "aime2024"])
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"rlscale flops: {LOG}: held-out source(s) aime2024 never scored in this log (sources "
        "seen: math__deepscaler_preview, math__math, math__merged_deduped_dapo_or1_dataset); "
        "name yours with --holdout-source or use --all-steps")


def test_verl_log_bad_lines(tmp_path):
    log = tmp_path / "output.log"
    log.write_text(
        "step:0 - val/test_score/a:0.5\n"
        "step:1 - perf/total_num_tokens:100 - val/test_score/a:0.6\n"
        "step:2 - perf/total_num_tokens:100 - val/test_score/a:zero\n"
        "step:3 - val/test_score/a:0.7\n"
        "step:4 - perf/total_num_tokens:100 - val/test_score/a:0.8\n")
    base = ["flops", "--from-verl-log", str(tmp_path), "--n-params", "1", "--holdout-source", "a"]
    result = run_cli(base)
    assert result.exit_code == 1
    assert result.stderr.strip() == (f"rlscale flops: {log}:3: step 2: metric "
                                     "'val/test_score/a': cannot read value 'zero'")
    rejects = tmp_path / "bad.log"
    result = run_cli([*base, "--skip-invalid", "--rejects", str(rejects)])
    assert result.exit_code == 0, result.stderr
    # the unreadable step-2 line and step 3 (no token count) are skipped and reported
    assert [r["step"] for r in result.records] == [0, 1, 4]
    assert result.records[-1]["C"] == 6 * 200.0  # steps 1 and 4; N = 1
    assert "rlscale flops: skipped 2 invalid line(s)" in result.stderr
    assert rejects.read_text().splitlines() == [
        "step:2 - perf/total_num_tokens:100 - val/test_score/a:zero", "step:3 - val/test_score/a:0.7"]
    result = run_cli(base[:-2] + ["--holdout-source", "a", "--holdout-source", "a"])
    assert result.exit_code == 2
    assert result.stderr.strip() == "rlscale flops: --holdout-source 'a' given twice"


def test_verl_log_from_stdin():
    with open(LOG, "rb") as handle:
        text = handle.read()
    result = run_cli(["flops", "--from-verl-log", "-", "--n-params", "7e9", "--run-id", "a"],
                     input=text)
    assert result.exit_code == 0, result.stderr
    assert [r["step"] for r in result.records] == list(range(7))
    result = run_cli(["flops", "--from-verl-log", "-", "--n-params", "7e9"], input="step:1 - x\n")
    assert result.exit_code == 1
    assert result.stderr.strip() == ("rlscale flops: <stdin>:1: step 1: cannot read metric 'x' "
                                     "(expected key:value)")


def test_verl_log_without_step_lines(tmp_path):
    log = tmp_path / "empty.log"
    log.write_text("hello\nworld\n")
    result = run_cli(["flops", "--from-verl-log", str(log), "--n-params", "1"])
    # no step lines is bad input since the VeRL round trip (it was a warning and exit 0)
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr.startswith(f"rlscale flops: {log}: no step lines in 2 line(s)")


def test_verl_log_output_feeds_itself_back():
    """The records from a log are valid per-step input: re-running flops on them with another N
    recomputes C from n_tokens (a log processed once, re-accounted with --n-def non-embedding)."""
    first = run_cli(["flops", "--from-verl-log", LOG, "--n-params", "7e9"])
    again = run_cli(["flops", "-", "--model", QWEN7B, "--n-def", "non-embedding"], input=first.stdout)
    assert again.exit_code == 0, again.stderr
    ratio = 6_525_621_760 / 7e9
    for a, b in zip(first.records, again.records, strict=True):
        assert b["C"] == pytest.approx(a["C"] * ratio, rel=1e-12)
        assert b["loss"] == a["loss"]


odd_values = st.one_of(st.none(), st.booleans(), st.integers(-2, 10**6), st.text(max_size=3),
                       st.floats(allow_nan=False, allow_infinity=False), st.lists(st.integers(-5, 5), max_size=2))


@given(st.lists(st.fixed_dictionaries({}, optional={
    "n_tokens": odd_values, "step": odd_values, "run_id": odd_values, "N": odd_values,
    "n_groups": odd_values}), max_size=6), st.binary(max_size=20))
def test_flops_never_crashes_on_odd_input(records, junk):
    text = jsonl(records).encode() + junk
    for args in (["flops"], ["flops", "--n-params", "1e9", "--skip-invalid"]):
        result = run_cli(args, input=text)
        assert result.exit_code in (0, 1)
        if result.exit_code == 1:
            assert result.stderr.startswith("rlscale flops: ") and result.stderr.count("\n") == 1


@given(st.text(max_size=400))
def test_flops_never_crashes_on_odd_logs(text):
    result = run_cli(["flops", "--from-verl-log", "-", "--n-params", "1", "--holdout-source", "a",
                      "--all-steps"], input=text)
    assert result.exit_code in (0, 1)
    if result.exit_code == 1:
        assert result.stderr.startswith("rlscale flops: ")
