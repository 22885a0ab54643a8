"""VeRL 0.9.1's own log formatting read back by `flops --from-verl-log`, and bad logs."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import run_cli
from tests.verl_support import needs_verl, oracle

DAPO, DEEPSCALER = "math__merged_deduped_dapo_or1_dataset", "math__deepscaler_preview"


def _validation(rng, n_samples):
    """Per-sample validation results as VeRL's trainer collects them (plug-in's acc/score)."""
    sources, uids, acc = [], [], []
    for source, problems in ((DAPO, 6), (DEEPSCALER, 4)):
        for p in range(problems):
            for _ in range(n_samples):
                sources.append(source)
                uids.append(f"{source}-{p}")
                acc.append(rng.random() < 0.4)
    score = [float(a) for a in acc]
    return {"data_sources": sources, "uids": uids,
            "infos": {"acc": acc, "score": score, "reward": score}}


def _expected_loss(val):
    means = {}
    for source in (DAPO, DEEPSCALER):
        picked = [a for s, a in zip(val["data_sources"], val["infos"]["acc"], strict=True)
                  if s == source]
        means[source] = sum(picked) / len(picked)
    return 1 - (335 * means[DAPO] + 165 * means[DEEPSCALER]) / 500


@needs_verl
@pytest.mark.parametrize("n_samples", [1, 4])
def test_console_lines_from_verls_formatting_read_back(tmp_path, n_samples):
    rng = random.Random(n_samples)
    steps = []
    for step in range(4):
        metrics = {"actor/pg_loss": rng.uniform(-1, 1), "perf/total_num_tokens": 1000 + step}
        entry = {"step": step, "metrics": metrics}
        if step % 2 == 0:
            entry["validation"] = _validation(rng, n_samples)
        steps.append(entry)
    lines = oracle({"log": {"steps": steps}})["log"]
    assert any(f"val-core/{DAPO}/acc/mean@{n_samples}:" in line for line in lines)
    # as a Ray worker prints them, with colour codes, and a restart that re-logs step 2
    text = "".join(f"\x1b[36m(TaskRunner pid=7)\x1b[0m {line}\n" for line in lines)
    text += "restarting from checkpoint\n" + lines[2] + "\n"
    log = tmp_path / "output.log"
    log.write_text(text)
    result = run_cli(["flops", "--from-verl-log", str(log), "--n-params", "1e9"])
    assert result.exit_code == 0, result.stderr
    assert [r["step"] for r in result.records] == [0, 2]
    for record, entry in zip(result.records, (steps[0], steps[2]), strict=True):
        assert record["loss"] == pytest.approx(_expected_loss(entry["validation"]), abs=1e-12)
    if n_samples == 4:
        chosen = run_cli(["flops", "--from-verl-log", str(log), "--n-params", "1e9",
                          "--val-metric", "best@4/mean"])
        assert chosen.exit_code == 0, chosen.stderr
        assert [r["step"] for r in chosen.records] == [0, 2]
        assert chosen.records[0]["loss"] != result.records[0]["loss"]  # another metric


@needs_verl
def test_file_logger_jsonl_from_verls_own_logger(tmp_path):
    rng = random.Random(0)
    acc = {DAPO: 0.25, DEEPSCALER: 0.5}
    steps = [{"step": s, "metrics": {"perf/total_num_tokens": 100 * s,
                                     **{f"val-core/{k}/acc/mean@1": v + s / 10
                                        for k, v in acc.items()},
                                     "actor/entropy": rng.random()}} for s in range(1, 4)]
    path = oracle({"file_log": {"path": str(tmp_path / "e.jsonl"), "steps": steps}})["file_log"]
    result = run_cli(["flops", "--from-verl-log", path, "--n-params", "2"])
    assert result.exit_code == 0, result.stderr
    assert [r["step"] for r in result.records] == [1, 2, 3]
    for record in result.records:
        s = record["step"]
        assert record["loss"] == pytest.approx(1 - (335 * (0.25 + s / 10)
                                                    + 165 * (0.5 + s / 10)) / 500)
        assert record["n_tokens"] == 100 * s


def _flops(path, *extra):
    return run_cli(["flops", "--from-verl-log", str(path), "--n-params", "1", *extra])


def test_a_log_with_steps_but_no_usable_metric_names_what_it_found(tmp_path):
    log = tmp_path / "output.log"
    log.write_text(f"step:1 - perf/total_num_tokens:10 - val-aux/{DAPO}/reward/std@4:0.1\n")
    result = _flops(log)
    assert result.exit_code == 1
    assert result.stderr == (
        f"rlscale flops: {log}: 1 step(s) but no usable validation metric (a mean@N score); "
        f"validation keys found: val-aux/{DAPO}/reward/std@4; choose one with --val-metric or "
        "use --all-steps\n")
    result = _flops(log, "--val-metric", "maj@8/mean")
    assert result.exit_code == 1 and "(--val-metric maj@8/mean)" in result.stderr


@pytest.mark.parametrize("content, message", [
    (b"step:1 - perf/total_num_tokens:100\nstep:2 - perf/total_num_tokens:32",
     ":2: truncated last line (no newline at the end; is the run still writing?)"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\n", ":3: binary data (NUL byte), not a text log"),
    (b'{"step": 1, "data": {"a": 1}}\n{"step": "two", "data": {"a": 2}}\n',
     ":2: 'step' must be an integer >= 0, got 'two'"),
    (b'{"step": 1, "data": {"a": 1}}\n{"step": 2, "data": \n',
     ":2: invalid JSON: "),
    (b"step:1 - perf/total_num_tokens:1\xff0\n", ":1: invalid UTF-8 in a step line"),
])
def test_bad_logs_are_one_line_with_file_and_line(tmp_path, content, message):
    log = tmp_path / "output.log"
    log.write_bytes(content)
    result = _flops(log, "--all-steps")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"rlscale flops: {log}{message}"), result.stderr
    assert result.stderr.count("\n") == 1 and result.stdout == ""


def test_no_step_lines_is_an_error(tmp_path):
    log = tmp_path / "output.log"
    log.write_bytes(b"Training Progress: 0%\n")
    result = _flops(log)
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr.startswith(f"rlscale flops: {log}: no step lines in 1 line(s)")


@given(st.integers(0, 10**9), st.dictionaries(
    st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=20),
    st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(-2**53, 2**53),
              st.text(max_size=5), st.booleans()), max_size=8))
def test_file_logger_lines_read_back_exactly(step, data):
    import orjson

    from rlscale.io.verl_log import parse_file_logger_line

    line = orjson.dumps({"step": step, "data": data}).decode()
    numbers = {k: v for k, v in data.items()
               if isinstance(v, (int, float)) and not isinstance(v, bool)}
    assert parse_file_logger_line(line) == (step, numbers)
