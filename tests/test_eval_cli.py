"""`rlscale eval` end to end: golden groups, fit-ready output, held-out loss, error paths."""

from __future__ import annotations

import math
import os

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rlscale import __version__
from rlscale.core.evaluation import pass_at_k
from tests.conftest import DATA, jsonl
from tests.conftest import run_cli as run_subprocess
from tests.conftest import run_inprocess as run_cli

META = {"rlscale_version": __version__, "seed": 0, "bootstrap": 0, "threshold": 0.5}


def _samples(step, n, outcomes, **extra):
    """Scored records: outcomes maps prompt_id -> list of 0/1 rewards."""
    return [{"step": step, "N": n, "prompt_id": pid, "sample_idx": i, "reward": float(r), **extra}
            for pid, rewards in outcomes.items() for i, r in enumerate(rewards)]


def test_golden_groups_by_step_and_n():
    records = (_samples(0, 5e8, {"p1": [0, 0], "p2": [1, 0]})
               + _samples(0, 7e9, {"p1": [1, 1], "p2": [0, 1]})
               + _samples(1, 5e8, {"p1": [1, 0], "p2": [1, 1]}))
    result = run_subprocess(["eval", "--by", "step,N", "--k", "2", "--bootstrap", "0"],
                     input=jsonl(records))
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""

    def expected(step, n, rates, pass2):
        pass1 = sum(rates) / 2
        sd = math.sqrt(sum((r - pass1) ** 2 for r in rates) / 1)
        return {"step": step, "N": n, "n_prompts": 2, "n_samples": 4, "pass@1": pass1,
                "loss": 1 - pass1, "pass@2": pass2, "mean_reward": pass1,
                "loss_se": sd / math.sqrt(2), "ci95": None, **META}

    assert result.records == [
        expected(0, 5e8, [0.0, 0.5], (0 + pass_at_k(2, 1, 2)) / 2),
        expected(0, 7e9, [1.0, 0.5], 1.0),
        expected(1, 5e8, [0.5, 1.0], 1.0),
    ]


def test_output_is_a_runs_file_for_fit():
    """Group values keep their JSON types: step stays an integer, N a number (fit --group N)."""
    records = _samples(3, 1.5e9, {"a": [1, 0]}) + _samples(3, 1500000000, {"b": [1]})
    out = run_cli(["eval", "--by", "step,N"], input=jsonl(records)).records
    assert len(out) == 1  # 1.5e9 and 1500000000 are one group
    raw = orjson.dumps(out[0])
    assert raw.startswith(b'{"step":3,"N":1500000000.0,')
    for field in ("step", "N", "loss"):
        assert isinstance(out[0][field], (int, float)) and not isinstance(out[0][field], bool)
    assert out[0]["n_prompts"] == 2 and out[0]["loss"] == pytest.approx(1 - (0.5 + 1) / 2)


def test_ci95_is_seeded_and_independent_of_other_groups():
    base = _samples(1, 1e9, {f"p{i}": [i % 2, (i // 2) % 2, 1] for i in range(12)})
    other = _samples(2, 1e9, {"q": [1, 0, 0]})
    one = run_cli(["eval", "--by", "step", "--seed", "7"], input=jsonl(base)).records
    two = run_cli(["eval", "--by", "step", "--seed", "7"], input=jsonl(other + base)).records
    assert one[0]["ci95"] == two[1]["ci95"]
    low, high = one[0]["ci95"]
    assert low < one[0]["loss"] < high
    assert one[0]["seed"] == 7 and one[0]["bootstrap"] == 1000
    again = run_cli(["eval", "--by", "step", "--seed", "8"], input=jsonl(base)).records
    assert again[0]["ci95"] != one[0]["ci95"]


def test_uneven_samples_and_pass_at_k_null():
    records = _samples(1, 1, {"a": [1, 0, 0, 0], "b": [1]})
    result = run_cli(["eval", "--k", "1,4", "--bootstrap", "0"], input=jsonl(records))
    assert result.exit_code == 0
    (out,) = result.records
    assert out["pass@1"] == pytest.approx((0.25 + 1.0) / 2)
    assert out["pass@4"] is None
    assert result.stderr.strip() == ("rlscale eval: pass@4 is null in 1 group(s): some prompts "
                                     "have fewer than 4 samples (fewest: 1)")
    assert "step" not in out  # no --by: one group, no group fields


def test_rewards_other_than_zero_one():
    records = [{"prompt_id": 1, "reward": 1.0}, {"prompt_id": 1, "reward": -1.0},
               {"prompt_id": 2, "reward": 0.7}, {"prompt_id": 2, "reward": True}]
    result = run_cli(["eval", "--bootstrap", "0"], input=jsonl(records))
    (out,) = result.records
    assert out["pass@1"] == pytest.approx((0.5 + 1.0) / 2)
    assert out["mean_reward"] == pytest.approx((0.0 + 0.85) / 2)
    assert result.stderr.strip() == ("rlscale eval: note: 2 reward(s) are not 0/1; pass@k counts "
                                     "reward > 0.5 as correct, mean_reward is the raw mean")
    strict = run_cli(["eval", "--bootstrap", "0", "--threshold", "0.8", "-q"], input=jsonl(records))
    assert strict.records[0]["pass@1"] == pytest.approx((0.5 + 0.5) / 2)
    assert strict.stderr == ""


def test_nested_group_field_custom_fields_and_group_named_seed():
    records = [{"qid": "a", "ok": True, "extra_info": {"split": "test"}, "seed": 3},
               {"qid": "a", "ok": False, "extra_info": {"split": "test"}, "seed": 3},
               {"qid": "b", "ok": True, "extra_info": {"split": "val"}, "seed": 3}]
    result = run_cli(["eval", "--by", "extra_info.split,seed", "--prompt-field", "qid",
                      "--reward-field", "ok", "--bootstrap", "0", "--seed", "11"],
                     input=jsonl(records))
    assert result.exit_code == 0, result.stderr
    out = result.records
    assert [(r["extra_info.split"], r["pass@1"]) for r in out] == [("test", 0.5), ("val", 1.0)]
    assert out[0]["seed"] == 3  # the group value wins over the metadata echo


def test_heldout_fixture_loss_per_source_and_overall():
    """20 problems of the paper's held-out set (10 per data source, tests/data/heldout_sample.jsonl).
    Scored samples: 8 per problem, the first round(8 * qwen2.5_7b_pass_rate) correct."""
    with open(os.path.join(DATA, "heldout_sample.jsonl"), "rb") as handle:
        problems = [orjson.loads(line) for line in handle]
    assert len(problems) == 20
    scored = []
    n_correct = {}
    for problem in problems:
        k = round(8 * problem["extra_info"]["qwen2.5_7b_pass_rate"])
        n_correct[problem["prompt_id"]] = k
        scored += [{**problem, "step": 10, "sample_idx": i, "reward": float(i < k)} for i in range(8)]
    result = run_cli(["eval", "--by", "step,data_source", "--k", "1,8", "--bootstrap", "0"],
                     input=jsonl(scored))
    assert result.exit_code == 0, result.stderr
    by_source = {r["data_source"]: r for r in result.records}
    assert set(by_source) == {"math__merged_deduped_dapo_or1_dataset", "math__deepscaler_preview"}
    for source, record in by_source.items():
        ids = [p["prompt_id"] for p in problems if p["data_source"] == source]
        expected_pass1 = sum(n_correct[i] / 8 for i in ids) / len(ids)
        assert record["n_prompts"] == 10 and record["n_samples"] == 80
        assert record["loss"] == pytest.approx(1 - expected_pass1, abs=1e-12)
        assert record["pass@8"] == pytest.approx(sum(n_correct[i] > 0 for i in ids) / 10)
    # the overall loss equals the paper's recombination of per-source scores weighted by problem
    # counts (335/165 on the full set; 10/10 here)
    (overall,) = run_cli(["eval", "--by", "step", "--bootstrap", "0"], input=jsonl(scored)).records
    weighted = sum(10 * by_source[s]["pass@1"] for s in by_source) / 20
    assert overall["loss"] == pytest.approx(1 - weighted, abs=1e-12)


def test_repeated_samples_are_counted_but_warned_about():
    records = _samples(1, 1e9, {"a": [1, 0]})
    result = run_cli(["eval", "--by", "step", "--bootstrap", "0"], input=jsonl(records + records))
    assert result.exit_code == 0
    assert result.records[0]["n_samples"] == 4
    assert result.stderr.strip() == (
        "rlscale eval: warning: 2 sample(s) repeat a (prompt_id, sample_idx) already seen in their "
        "group; is the input doubled, or a --by field missing?")
    other = [{**r, "N": 2e9} for r in records]
    result = run_cli(["eval", "--by", "step,N", "--bootstrap", "0"], input=jsonl(records + other))
    assert result.stderr == ""


def test_empty_input():
    result = run_cli(["eval", "--by", "step"], input="")
    assert (result.exit_code, result.stdout) == (0, "")


@pytest.mark.parametrize("records, args, message", [
    ([{"prompt_id": 1, "reward": 1, "step": 1}], ["--by", "step,N"],
     "rlscale eval: <stdin>:1: missing group field 'N' (from --by step,N)"),
    ([{"reward": 1}], [], "rlscale eval: <stdin>:1: missing required field 'prompt_id'"),
    ([{"prompt_id": 1}], [], "rlscale eval: <stdin>:1: missing required field 'reward'"),
    ([{"prompt_id": 1, "reward": "yes"}], [],
     "rlscale eval: <stdin>:1: field 'reward' must be a finite number or boolean, got 'yes'"),
    ([{"prompt_id": 1, "reward": None}], [],
     "rlscale eval: <stdin>:1: field 'reward' must be a finite number or boolean, got null"),
    ([{"prompt_id": [1], "reward": 1}], [],
     "rlscale eval: <stdin>:1: field 'prompt_id' must be a string|number, got array [1]"),
])
def test_bad_records(records, args, message):
    result = run_cli(["eval", *args], input=jsonl(records))
    assert result.exit_code == 1
    assert result.stderr.strip() == message


def test_missing_group_field_in_a_real_process():
    result = run_subprocess(["eval", "--by", "step"], input='{"prompt_id": 1, "reward": 1}\n')
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == "rlscale eval: <stdin>:1: missing group field 'step' (from --by step)\n"


def test_nan_reward_and_skip_invalid(tmp_path):
    text = ('{"prompt_id": 1, "reward": NaN}\n{"prompt_id": 1, "reward": 1}\n'
            '{"prompt_id": 2, "reward": 1e999}\n{"prompt_id": 2, "reward": 0, "step": 1}\n')
    result = run_cli(["eval"], input=text)
    assert result.exit_code == 1
    assert result.stderr.startswith("rlscale eval: <stdin>:1: invalid JSON")
    rejects = tmp_path / "rejects.jsonl"
    result = run_cli(["eval", "--skip-invalid", "--rejects", str(rejects), "--bootstrap", "0"],
                     input=text)
    assert result.exit_code == 0
    assert result.records[0]["n_samples"] == 2
    assert result.stderr.strip().endswith(f"skipped 2 invalid line(s) (written to {rejects})")
    assert len(rejects.read_text().splitlines()) == 2


@pytest.mark.parametrize("args, message", [
    (["--k", "0"], "rlscale eval: --k values must be integers >= 1, got '0'"),
    (["--k", "two"], "rlscale eval: --k: cannot read 'two'"),
    (["--bootstrap", "-1"], "rlscale eval: --bootstrap must be >= 0, got -1"),
    (["--by", "step,step"], "rlscale eval: --by step,step: a field is named twice"),
    (["--rejects", "x.jsonl"], "rlscale eval: --rejects needs --skip-invalid"),
])
def test_usage_errors(args, message):
    result = run_cli(["eval", *args], input="")
    assert result.exit_code == 2
    assert result.stderr.strip() == message


def test_missing_file():
    result = run_cli(["eval", "no-such-file.jsonl"])
    assert result.exit_code == 1
    assert result.stderr.strip() == "rlscale eval: no-such-file.jsonl: no such file"


def test_eval_then_flops_pipeline():
    """eval per (run, step) joined with token counts feeds flops: loss with C for `fit --x C`."""
    scored = []
    for step in (0, 1, 2):
        scored += _samples(step, 1e9, {"p1": [1, step > 0], "p2": [0, step > 1]}, run_id="r",
                           n_tokens=0 if step == 0 else 1000)
    evals = run_cli(["eval", "--by", "run_id,step,N,n_tokens", "--bootstrap", "0"],
                    input=jsonl(scored)).records
    runs = run_cli(["flops"], input=jsonl(evals)).records
    assert [(r["step"], r["loss"], r["C"]) for r in runs] == [
        (0, 0.75, 0.0), (1, 0.5, 6e12), (2, 0.25, 12e12)]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=3),
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=2), inner, max_size=2),
    max_leaves=4)
records_strategy = st.lists(
    st.fixed_dictionaries({}, optional={"prompt_id": json_values, "reward": json_values,
                                        "step": json_values, "N": json_values}),
    max_size=6)


@given(records_strategy, st.binary(max_size=20))
def test_eval_never_crashes_on_odd_input(records, junk):
    """Any mix of odd records and bytes ends in exit 0/1 with one stderr line, never an exception."""
    text = jsonl(records).encode() + junk
    for args in (["eval", "--by", "step,N", "--bootstrap", "3"], ["eval", "--skip-invalid", "--k", "2"]):
        result = run_cli(args, input=text)
        assert result.exit_code in (0, 1)
        if result.exit_code == 1:
            assert result.stderr.startswith("rlscale eval: ") and result.stderr.count("\n") == 1


def test_set_adds_typed_constant_fields_for_a_runs_file():
    scored = jsonl([{"prompt_id": 1, "reward": 1}, {"prompt_id": 2, "reward": 0}])
    result = run_cli(["eval", "--set", "run_id=a", "--set", "step=40", "--set", "N=5e8",
                      "--bootstrap", "0"], input=scored)
    assert result.exit_code == 0, result.stderr
    (record,) = result.records
    assert (record["run_id"], record["step"], record["N"], record["loss"]) == ("a", 40, 5e8, 0.5)
    assert isinstance(record["step"], int)

    bad = run_cli(["eval", "--set", "step"], input=scored)
    assert bad.exit_code == 2
    assert "rlscale eval: --set 'step': expected KEY=VALUE" in bad.stderr


@pytest.mark.parametrize("item, message", [
    ("n_tokens=", "--set 'n_tokens=': empty value (an empty $(...)?); write n_tokens='\"\"' for "
                  "an empty string"),
    ("step=01", "--set 'step=01': a number cannot start with 0; write the number without it, or "
                "step='\"01\"' for text"),
    ("loss=5", "--set loss: eval computes this field itself; choose another name"),
    ("n_prompts=3", "--set n_prompts: eval computes this field itself; choose another name"),
])
def test_set_refuses_empty_leading_zero_and_computed_fields(item, message):
    scored = jsonl([{"prompt_id": "a", "reward": 1.0}])
    result = run_cli(["eval", "--set", item], input=scored)
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == f"rlscale eval: {message}\n"


def test_set_keeps_an_explicit_empty_string_and_text_with_zeros():
    scored = jsonl([{"prompt_id": "a", "reward": 1.0}])
    result = run_cli(["eval", "--set", 'tag=""', "--set", 'code="01"', "--set", "step=0"],
                     input=scored)
    assert result.exit_code == 0, result.stderr
    assert (result.records[0]["tag"], result.records[0]["code"], result.records[0]["step"]) \
        == ("", "01", 0)
