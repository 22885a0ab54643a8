"""rlscale.io.verl_log: reading VeRL console lines, merging steps, held-out loss."""

from __future__ import annotations

import math
import pprint

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rlscale.core.errors import RecordError, RlscaleError
from rlscale.io.verl_log import (
    PAPER_HOLDOUT_SOURCES,
    LoggedStep,
    LogRun,
    VerlLogs,
    holdout_score,
    merge_steps,
    parse_holdout_sources,
    parse_line,
    parse_value,
    resolve_log,
    run_records,
    source_scores,
    step_record,
)


def _verl_line(step, metrics, fmt):
    """A console line the way VeRL's concat_dict_to_str writes it (' - '-joined key:value)."""
    return " - ".join([f"step:{step}", *(f"{k}:{fmt(v)}" for k, v in metrics.items())])


@pytest.mark.parametrize("line, expected", [
    ("step:0 - val/test_score/math__math/unknown:0.412",
     (0, {"val/test_score/math__math/unknown": 0.412})),
    ("(TaskRunner pid=2811) step:12 - actor/pg_loss:-0.013 - perf/total_num_tokens:3276800",
     (12, {"actor/pg_loss": -0.013, "perf/total_num_tokens": 3276800})),
    ("\x1b[36m(main_task pid=1)\x1b[0m step:3 - a:np.float64(0.5) - b:np.int64(7) - c:nan",
     (3, {"a": 0.5, "b": 7, "c": math.nan})),
    ("step:5 - flag:True - x:1e-05\r\n", (5, {"flag": True, "x": 1e-05})),
    ("step:7", (7, {})),
    ("wandb: step:3/100 done", None),
    ("global_step:4 - a:1", None),
    ("Training Progress: 10%|#         | 10/100", None),
    ("", None),
])
def test_parse_line(line, expected):
    result = parse_line(line)
    if expected is None or result is None:
        assert result == expected
        return
    step, metrics = result
    assert step == expected[0]
    assert list(metrics) == list(expected[1])
    for key, value in expected[1].items():
        if isinstance(value, float) and math.isnan(value):
            assert math.isnan(metrics[key])
        else:
            assert metrics[key] == value and type(metrics[key]) is type(value)


@pytest.mark.parametrize("line, message", [
    ("step:2 - loss", "step 2: cannot read metric 'loss' (expected key:value)"),
    ("step:2 - :0.5", "step 2: cannot read metric ':0.5' (expected key:value)"),
    ("step:2 - a:0.5 - b:fast", "step 2: metric 'b': cannot read value 'fast'"),
    ("step:2 - a:0.5 - b:0.", None),  # a truncated value that still reads is kept: 0.0
])
def test_parse_line_errors(line, message):
    if message is None:
        assert parse_line(line) == (2, {"a": 0.5, "b": 0.0})
        return
    with pytest.raises(ValueError) as exc:
        parse_line(line)
    assert str(exc.value) == message


def test_parse_value_wrappers():
    assert parse_value("tensor(0.25, device='cuda:0')") == 0.25
    assert parse_value("np.float32(0.1)") == pytest.approx(0.1)
    assert parse_value("-inf") == -math.inf
    with pytest.raises(ValueError, match="cannot read value"):
        parse_value("abc")


metric_keys = st.text(st.characters(codec="utf-8", exclude_characters=":\n\r\x1b"),
                      min_size=1, max_size=20).filter(
    lambda k: k.strip() == k and " - " not in k and not k.endswith(" -") and not k.startswith("- "))
metric_values = st.one_of(st.integers(-10**12, 10**12),
                          st.floats(allow_nan=False, allow_infinity=False, width=64))


@given(st.integers(0, 10**6), st.dictionaries(metric_keys, metric_values, max_size=8),
       st.sampled_from(["pformat", "pformat-numpy", "3f"]))
def test_roundtrip_of_verl_formatted_lines(step, metrics, style):
    """Lines written like VeRL (new: pprint.pformat, NumPy 2 reprs; old: {:.3f}) read back."""
    if style == "pformat":
        fmt = pprint.pformat
    elif style == "pformat-numpy":
        def fmt(v):
            return pprint.pformat(np.float64(v) if isinstance(v, float) else np.int64(v))
    else:
        def fmt(v):
            return f"{v:.3f}"
    parsed_step, parsed = parse_line("(TaskRunner pid=9) " + _verl_line(step, metrics, fmt))
    assert parsed_step == step
    assert list(parsed) == list(metrics)
    for key, value in metrics.items():
        expected = float(f"{value:.3f}") if style == "3f" else value
        assert parsed[key] == pytest.approx(expected, rel=1e-12, abs=1e-300)


@given(st.text(max_size=300))
def test_arbitrary_text_never_crashes(text):
    try:
        result = parse_line(text)
    except ValueError as exc:
        assert str(exc).startswith("step ")
    else:
        assert result is None or (isinstance(result[0], int) and isinstance(result[1], dict))


def test_merge_steps_later_lines_win_key_by_key():
    merged = merge_steps([
        (1, 0, {"val/test_score/a": 0.1}),
        (2, 1, {"perf/total_num_tokens": 10, "val/test_score/a": 0.2}),
        (3, 2, {"perf/total_num_tokens": 99, "val/test_score/a": 0.0}),  # crashed attempt
        (7, 1, {"val/test_score/a": 0.25}),  # resume: validation of the checkpoint step only
        (8, 2, {"perf/total_num_tokens": 20, "val/test_score/a": 0.3}),
    ])
    assert [(m.step, m.metrics, m.line) for m in merged] == [
        (0, {"val/test_score/a": 0.1}, 1),
        (1, {"perf/total_num_tokens": 10, "val/test_score/a": 0.25}, 7),
        (2, {"perf/total_num_tokens": 20, "val/test_score/a": 0.3}, 8),
    ]


def test_source_scores_both_verl_generations():
    metrics = {
        "val/test_score/math__math/unknown": 0.5,
        "val/test_score/openai/gsm8k/unknown": 0.8,
        "val/test_score/aime2024": 0.1,  # VeRL 0.3 without the reward-key suffix
        "val-core/aimeamc2023/reward/mean@1": 0.2,
        "val-core/aimeamc2023/reward/mean@4": 0.25,
        "val-core/math__math/reward/mean@1": 0.9,  # val/test_score wins
        "val-aux/aimeamc2023/reward/std@4": 0.3,
        "val/overall_pass1": 0.4,
        "actor/pg_loss": 0.0,
    }
    assert source_scores(metrics) == {"math__math": 0.5, "openai/gsm8k": 0.8, "aime2024": 0.1,
                                      "aimeamc2023": 0.25}


def test_paper_holdout_weights():
    assert PAPER_HOLDOUT_SOURCES == {"math__merged_deduped_dapo_or1_dataset": 335.0,
                                     "math__deepscaler_preview": 165.0}
    scores = {"math__merged_deduped_dapo_or1_dataset": 0.6, "math__deepscaler_preview": 0.3}
    assert holdout_score(scores, PAPER_HOLDOUT_SOURCES) == pytest.approx((335 * 0.6 + 165 * 0.3) / 500)
    assert holdout_score({"math__deepscaler_preview": 0.3}, PAPER_HOLDOUT_SOURCES) is None
    assert holdout_score({**scores, "math__deepscaler_preview": math.nan}, PAPER_HOLDOUT_SOURCES) is None


@pytest.mark.parametrize("specs, expected", [
    (["a=335", "b=165"], {"a": 335.0, "b": 165.0}),
    (["a"], {"a": 1.0}),
    (["openai/gsm8k=2.5"], {"openai/gsm8k": 2.5}),
])
def test_parse_holdout_sources(specs, expected):
    assert parse_holdout_sources(specs) == expected


@pytest.mark.parametrize("specs, message", [
    (["=3"], "--holdout-source '=3': empty source name"),
    (["a=x"], "--holdout-source 'a=x': weight 'x' is not a number"),
    (["a=0"], "--holdout-source 'a=0': weight must be a positive number"),
    (["a", "a=2"], "--holdout-source 'a' given twice"),
])
def test_parse_holdout_sources_errors(specs, message):
    with pytest.raises(ValueError) as exc:
        parse_holdout_sources(specs)
    assert str(exc.value) == message


def test_step_record():
    entry = LoggedStep(3, {"perf/total_num_tokens": 100, "val/test_score/a/unknown": 0.25,
                           "response_length/mean": 500.0, "actor/kl_loss": 0.1}, line=9)
    record = step_record(entry, {"a": 1.0}, keep=["response_length/*"])
    assert record == {"step": 3, "n_tokens": 100, "score/a": 0.25, "holdout_score": 0.25,
                      "loss": 0.75, "response_length/mean": 500.0}
    assert step_record(LoggedStep(0, {"val/test_score/a": 0.5}), {"a": 1.0})["n_tokens"] == 0
    with pytest.raises(ValueError, match="step 4 has no perf/total_num_tokens"):
        step_record(LoggedStep(4, {"val/test_score/a": 0.5}), {"a": 1.0})
    with pytest.raises(ValueError, match="must be a finite number >= 0"):
        step_record(LoggedStep(4, {"perf/total_num_tokens": -1}), {"a": 1.0})


def test_run_records_refuses_bad_steps_and_checks_the_holdout_sources():
    refused = []
    run = LogRun("x.log", [LoggedStep(1, {"perf/total_num_tokens": 10, "val/test_score/a": 0.5}),
                           LoggedStep(2, {"val/test_score/a": 0.5}, line=7)],
                 lambda entry, message: refused.append((entry.line, message)))
    assert run_records(run, {"a": 1.0}) == [
        {"step": 1, "n_tokens": 10, "score/a": 0.5, "holdout_score": 0.5, "loss": 0.5}]
    assert refused == [(7, "step 2 has no perf/total_num_tokens (needed for FLOPs)")]
    with pytest.raises(RlscaleError, match="x.log: held-out source[(]s[)] b never scored"):
        run_records(run, {"a": 1.0, "b": 1.0})
    assert len(run_records(run, {"b": 1.0}, all_steps=True)) == 1
    with pytest.raises(RlscaleError, match="no usable validation metric [(]--val-metric m[)]"):
        run_records(run, {"a": 1.0}, val_metric="m")


def test_verl_logs_resolve_directories_and_count_skipped_lines(tmp_path):
    (tmp_path / "files").mkdir()
    log = tmp_path / "files" / "output.log"
    log.write_bytes(b"hello\nstep:1 - a:1\nstep:2 - b\nstep:3 - a:2")
    assert resolve_log(str(tmp_path)) == str(log)
    with pytest.raises(RecordError, match=f"{log}:3: step 2: cannot read metric 'b'"):
        list(VerlLogs([str(tmp_path)]))
    logs = VerlLogs([str(log)], skip_invalid=True)
    (run,) = logs
    assert (run.source, [s.step for s in run.steps], logs.n_skipped) == (str(log), [1], 2)
    (tmp_path / "empty").mkdir()
    with pytest.raises(RlscaleError, match="is a directory without output.log"):
        resolve_log(str(tmp_path / "empty"))
