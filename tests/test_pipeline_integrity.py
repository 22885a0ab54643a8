"""Pipelines are never silently wrong: end-of-stream records, whole batches, atomic -o files.

A stage that fails must not turn into a test loss or a training step downstream; files appear
whole (with the umask's mode, gzip for .gz) or not at all; integers of any size pass through.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rlscale.io.jsonl import (
    AtomicFile,
    RecordReader,
    RecordWriter,
    dumps,
    parse_line,
    records_since_end,
    remove_stale_temps,
)
from tests.conftest import jsonl, run_cli, run_inprocess


def _rollouts(n_prompts: int = 3, n: int = 2) -> list[dict]:
    """Records as `rlscale rollout` writes them (with the sampling settings they echo)."""
    return [{"prompt_id": f"p{i}", "sample_idx": j, "completion": f"\\boxed{{{i + j % 2}}}",
             "answer": str(i), "sampling": {"n": n, "seed": 0, "temperature": 1.0}}
            for i in range(n_prompts) for j in range(n)]


def _end(tool: str, count: int) -> str:
    return orjson.dumps({"rlscale_end": {"tool": tool, "records": count}}).decode() + "\n"


def _lines(text: str) -> list[str]:
    return [line for line in text.split("\n") if line.strip()]


# --- the end-of-stream record -------------------------------------------------------------------


def test_a_successful_stage_ends_with_an_end_record_counting_its_records():
    result = run_inprocess(["reward"], input=jsonl(_rollouts()) + _end("rollout", 6))
    assert result.exit_code == 0, result.stderr
    assert result.end_record == {"tool": "reward", "records": 6}
    assert len(result.records) == 6  # the end record is not data
    again = run_inprocess(["eval"], input=result.stdout)
    assert again.exit_code == 0, again.stderr
    assert again.end_record == {"tool": "eval", "records": 1}
    assert again.records[0]["n_prompts"] == 3


def test_a_cut_rollout_stream_gives_no_test_loss():
    # rollout failed after 4 of 6 samples: its output has no end record
    scored = run_inprocess(["reward"], input=jsonl(_rollouts()[:4]))
    assert scored.exit_code == 0 and len(scored.records) == 4
    assert scored.end_record is None  # reward does not vouch for more than it got
    result = run_inprocess(["eval"], input=scored.stdout)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith("rlscale eval: incomplete input: <stdin> ends after 4 "
                                    "record(s) without the end-of-stream record")
    assert result.stderr.rstrip().endswith("no test loss was computed")
    assert result.stderr.count("\n") == 1


def test_head_truncation_and_filters_are_detected(tmp_path):
    scored = run_inprocess(["reward"], input=jsonl(_rollouts()) + _end("rollout", 6))
    lines = _lines(scored.stdout)
    head = "\n".join(lines[:3]) + "\n"  # `| head -n 3`
    result = run_inprocess(["eval"], input=head)
    assert result.exit_code == 1 and "ends after 3 record(s)" in result.stderr
    # a filter that drops data lines but keeps the end record: the count does not match
    filtered = "\n".join(lines[:2] + lines[-1:]) + "\n"
    result = run_inprocess(["eval"], input=filtered)
    assert result.exit_code == 1
    assert "<stdin>:3: rlscale reward wrote 6 record(s) but 2 arrived" in result.stderr


def test_concatenated_complete_streams_are_complete():
    one = jsonl(_rollouts(2)) + _end("rollout", 4)
    two = jsonl([{**r, "prompt_id": "q" + r["prompt_id"]} for r in _rollouts(1)]) + _end("x", 2)
    result = run_inprocess(["eval"], input=run_inprocess(["reward"], input=one + two).stdout)
    assert result.exit_code == 0, result.stderr
    assert result.records[0]["n_prompts"] == 3


def test_plain_user_files_need_no_end_record():
    plain = [{k: v for k, v in r.items() if k != "sampling"} for r in _rollouts()]
    result = run_inprocess(["eval"], input=jsonl([{**r, "reward": 1.0} for r in plain]))
    assert result.exit_code == 0, result.stderr
    assert result.records[0]["n_samples"] == 6


def test_end_records_can_be_turned_off_for_jq_users():
    result = run_cli(["reward"], input=jsonl(_rollouts()[:4]), env={"RLSCALE_END_RECORD": "0"})
    assert result.exit_code == 0 and result.end_record is None
    result = run_cli(["eval"], input=result.stdout, env={"RLSCALE_END_RECORD": "0"})
    assert result.exit_code == 0, result.stderr  # the user took over checking completeness
    assert result.end_record is None


def test_reader_counts_segments_and_never_yields_end_records(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text(jsonl([{"x": 1}, {"x": 2}]) + _end("t", 2) + jsonl([{"x": 3}]) + _end("t", 1))
    reader = RecordReader([str(path)])
    assert [r["x"] for r in reader.records()] == [1, 2, 3]
    assert reader.complete and reader.n_end_records == 2
    path.write_text(jsonl([{"x": 1}]) + _end("t", 1) + jsonl([{"x": 2}]))
    reader = RecordReader([str(path)])
    assert [r["x"] for r in reader.records()] == [1, 2]
    assert not reader.complete  # data after an end record: a later stream was cut
    assert records_since_end(str(path)) == 1


def test_a_stage_fed_a_complete_plain_file_vouches_for_its_output():
    plain = [{"completion": "\\boxed{1}", "answer": "1"}]
    result = run_inprocess(["reward"], input=jsonl(plain))
    assert result.end_record == {"tool": "reward", "records": 1}


def test_empty_output_has_no_end_record():
    result = run_inprocess(["reward"], input="")
    assert (result.exit_code, result.stdout) == (0, "")


def test_grpo_step_refuses_an_incomplete_batch_before_loading(tmp_path, tiny_checkpoint):
    import shutil

    ckpt = tmp_path / "ckpt"
    shutil.copytree(tiny_checkpoint, ckpt)
    before = {name: os.path.getmtime(ckpt / name) for name in os.listdir(ckpt)}
    batch = [{**r, "prompt": "1+1=", "reward": float(r["sample_idx"])} for r in _rollouts(3)]
    result = run_cli(["grpo-step", "--policy", str(ckpt), "--out", str(ckpt), "--kl-coef", "0"],
                     input=jsonl(batch[:4]))
    assert result.exit_code == 1
    assert result.stderr.startswith("rlscale grpo-step: incomplete input: <stdin> ends after 4")
    assert result.stderr.rstrip().endswith("no step was taken")
    assert "loading" not in result.stderr  # refused before the model was loaded
    assert result.stdout == ""
    after = {name: os.path.getmtime(ckpt / name) for name in os.listdir(ckpt)}
    assert after == before


# --- -o files -------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["reward"], ["eval"], ["flops", "--n-params", "1"]])
def test_output_equal_to_an_input_is_refused(tmp_path, command):
    path = tmp_path / "data.jsonl"
    text = jsonl([{"completion": "1", "answer": "1", "prompt_id": "a", "reward": 1.0,
                   "n_tokens": 3}])
    path.write_text(text)
    result = run_inprocess([*command, str(path), "-o", str(path)])
    assert result.exit_code == 2
    assert result.stderr == (f"rlscale {command[0]}: -o {path} is also the input {path}: "
                             "write to another file\n")
    assert path.read_text() == text


def test_rejects_equal_to_output_is_refused(tmp_path):
    out = tmp_path / "o.jsonl"
    result = run_inprocess(["reward", "--skip-invalid", "--rejects", str(out), "-o", str(out)],
                           input="")
    assert result.exit_code == 2
    assert f"--rejects {out} is also the -o file" in result.stderr


def test_outputs_respect_the_umask(tmp_path):
    previous = os.umask(0o027)
    try:
        with RecordWriter(str(tmp_path / "a.jsonl")) as writer:
            writer.write({"x": 1})
        previous_inner = os.umask(0o002)
        with RecordWriter(str(tmp_path / "b.jsonl")) as writer:
            writer.write({"x": 1})
        os.umask(previous_inner)
    finally:
        os.umask(previous)
    assert os.stat(tmp_path / "a.jsonl").st_mode & 0o777 == 0o640
    assert os.stat(tmp_path / "b.jsonl").st_mode & 0o777 == 0o664


def test_gz_outputs_are_gzip_and_gzip_on_stdin_is_read(tmp_path):
    out = tmp_path / "scored.jsonl.gz"
    rows = _rollouts(2)
    result = run_inprocess(["reward", "-o", str(out)], input=jsonl(rows) + _end("rollout", 4))
    assert result.exit_code == 0, result.stderr
    with gzip.open(out, "rb") as handle:
        lines = handle.read().decode().splitlines()
    assert len(lines) == 5 and orjson.loads(lines[-1])["rlscale_end"]["records"] == 4
    again = run_inprocess(["eval", str(out)])  # .gz read back by name
    assert again.exit_code == 0, again.stderr
    piped = run_inprocess(["eval"], input=out.read_bytes())  # and on stdin
    assert piped.exit_code == 0, piped.stderr
    assert piped.records == again.records


def test_big_integers_survive_every_tool():
    big = 123456789012345678901234567890
    line = b'{"id":%d,"extra_info":{"index":%d},"x":1e21}\n' % (big, -big)
    record = parse_line(line)
    assert record["id"] == big and record["extra_info"]["index"] == -big
    assert record["x"] == 1e21 and isinstance(record["x"], float)
    assert orjson.loads(dumps({"a": 1.5}) ) == {"a": 1.5}
    assert dumps(record) == b'{"id":%d,"extra_info":{"index":%d},"x":1e+21}\n' % (big, -big)
    rows = [{**r, "id": big + i} for i, r in enumerate(_rollouts(1))]
    scored = run_inprocess(["reward"], input=jsonl_big(rows))
    assert scored.exit_code == 0, scored.stderr
    assert [f'"id":{big + i},' in line for i, line in enumerate(_lines(scored.stdout)[:2])] \
        == [True, True]


def test_big_integers_inside_arrays_survive():
    # token-id-like arrays, messages, nested arrays: a 30-digit integer anywhere stays exact
    big = 123456789012345678901234567890
    for value in ([big, 1, 2], ["x", -big], [[1, big]], [{"id": big}], [True, big],
                  [0.5, big]):
        line = dumps({"a": value})
        assert json.loads(line) == {"a": value}
        assert parse_line(line) == {"a": value}, value
    # floats that are legitimately large stay floats
    assert parse_line(b'{"a":[1e21,2]}') == {"a": [1e21, 2]}
    assert type(parse_line(b'{"a":[1e21,2]}')["a"][0]) is float


big_ints = st.integers(min_value=2**64, max_value=10**40) | st.integers(
    max_value=-(2**64), min_value=-(10**40))
json_leaves = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | big_ints | \
    st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=5)
json_trees = st.recursive(json_leaves, lambda children: st.lists(children, max_size=4)
                          | st.dictionaries(st.text(max_size=4), children, max_size=4),
                          max_leaves=12)


@given(st.dictionaries(st.text(max_size=4), json_trees, max_size=4))
def test_every_integer_survives_a_parse_at_any_depth(record):
    line = dumps(record)
    assert parse_line(line) == json.loads(line)


def jsonl_big(records: list[dict]) -> bytes:
    return b"".join(dumps(r) for r in records)


def test_sigterm_during_reward_o_leaves_no_temp_file(tmp_path):
    out = tmp_path / "scored.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "rlscale", "reward", "-o", str(out)],
                            stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdin.write(jsonl(_rollouts()).encode())
    proc.stdin.flush()
    # wait (without a clock) until the temp file exists: reward is then blocked reading stdin
    while not any(name.endswith(".tmp") for name in os.listdir(tmp_path)):
        assert proc.poll() is None, proc.stderr.read()
        os.sched_yield()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == -signal.SIGTERM
    proc.stdin.close()
    proc.stderr.close()
    assert os.listdir(tmp_path) == []


def test_stale_temp_files_of_dead_writers_are_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead_pid = int(dead.stdout)
    out = tmp_path / "o.jsonl"
    stale = tmp_path / f".o.jsonl.{dead_pid}-0123abcd.tmp"
    live = tmp_path / f".o.jsonl.{os.getpid()}-89abcdef.tmp"
    other = tmp_path / f".p.jsonl.{dead_pid}-0123abcd.tmp"
    for path in (stale, live, other):
        path.write_text("half")
    result = run_cli(["reward", "-o", str(out)], input=jsonl(_rollouts(1)))
    assert result.exit_code == 0, result.stderr
    assert sorted(os.listdir(tmp_path)) == sorted([live.name, other.name, "o.jsonl"])
    assert remove_stale_temps(str(tmp_path / "p.jsonl")) == [str(other)]


def test_atomic_file_leaves_nothing_on_failure(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError), AtomicFile(str(path)) as out:
        out.handle.write(b"new")
        raise RuntimeError("boom")
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["f.bin"]


def test_a_forked_child_terminated_by_its_pool_keeps_the_parents_temp_file(tmp_path):
    out = AtomicFile(str(tmp_path / "o.jsonl"))
    pid = os.fork()
    if pid == 0:  # a grading worker ended by its pool
        os.kill(os.getpid(), signal.SIGTERM)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTERM
    assert os.path.exists(out.tmp_path)
    out.handle.write(b"{}\n")
    out.commit()
    assert (tmp_path / "o.jsonl").read_bytes() == b"{}\n"


# --- curate: all outputs or none --------------------------------------------------------------


def _problems(n: int = 20) -> str:
    return jsonl([{"prompt": f"What is {i} + {i}?", "answer": str(2 * i)} for i in range(n)])


def test_curate_with_a_missing_holdout_folder_writes_nothing(tmp_path):
    train = tmp_path / "train.jsonl"
    result = run_inprocess(["curate", "--holdout", "5", "--holdout-out",
                            str(tmp_path / "no" / "test.jsonl"), "-o", str(train)],
                           input=_problems())
    assert result.exit_code == 1
    assert result.stderr == (f"rlscale curate: --holdout-out {tmp_path}/no/test.jsonl: "
                             f"directory {tmp_path}/no does not exist\n")
    assert os.listdir(tmp_path) == []


def test_curate_failing_split_leaves_no_output(tmp_path):
    train, dropped = tmp_path / "train.jsonl", tmp_path / "dropped.jsonl"
    result = run_inprocess(["curate", "--holdout", "50", "--holdout-out",
                            str(tmp_path / "test.jsonl"), "-o", str(train),
                            "--dropped", str(dropped)], input=_problems(20))
    assert result.exit_code == 1, result.stderr
    assert os.listdir(tmp_path) == []  # not even the --dropped file of the screening pass


@pytest.mark.parametrize("args, message", [
    (["--holdout", "5", "--holdout-out", "{d}/t.jsonl", "-o", "{d}/t.jsonl"],
     "--holdout-out {d}/t.jsonl is also the -o file: write to another file"),
    (["{d}/in.jsonl", "-o", "{d}/in.jsonl"],
     "-o {d}/in.jsonl is also the input {d}/in.jsonl: write to another file"),
    (["{d}/in.jsonl", "--dropped", "{d}/in.jsonl"],
     "--dropped {d}/in.jsonl is also the input {d}/in.jsonl: write to another file"),
])
def test_curate_refuses_overlapping_files(tmp_path, args, message):
    source = tmp_path / "in.jsonl"
    source.write_text(_problems())
    result = run_inprocess(["curate", *[a.format(d=tmp_path) for a in args]], input=_problems())
    assert result.exit_code == 2
    assert result.stderr == f"rlscale curate: {message.format(d=tmp_path)}\n"
    assert sorted(os.listdir(tmp_path)) == ["in.jsonl"] and source.read_text() == _problems()


def test_curate_split_refuses_a_cut_stream_but_not_a_complete_one(tmp_path):
    complete = run_inprocess(["curate", "--order", "keep", "--dedup", "none"],
                             input=_problems(20))
    assert complete.end_record == {"tool": "curate", "records": 20}
    cut = "\n".join(_lines(complete.stdout)[:10] + _lines(complete.stdout)[-1:]) + "\n"
    args = ["curate", "--holdout", "4", "--holdout-out", str(tmp_path / "t.jsonl"),
            "-o", str(tmp_path / "train.jsonl")]
    result = run_inprocess(args, input=cut)
    assert result.exit_code == 1
    assert "rlscale curate wrote 20 record(s) but 10 arrived" in result.stderr
    assert result.stderr.rstrip().endswith("nothing was written")
    assert os.listdir(tmp_path) == []
    result = run_inprocess(args, input=complete.stdout)
    assert result.exit_code == 0, result.stderr
    assert sorted(os.listdir(tmp_path)) == ["t.jsonl", "train.jsonl"]
    assert len(RecordReader([str(tmp_path / "t.jsonl")]).records().__next__()) > 0


# --- the README pipeline, verbatim ---------------------------------------------------------------


def _readme_pipeline() -> list[str]:
    """The commands of the README's first bash block (comments dropped, continuations joined)."""
    with open(os.path.join(os.path.dirname(os.path.dirname(__file__)), "README.md")) as handle:
        text = handle.read()
    start = text.index("```bash\nset -eo pipefail") + len("```bash\n")
    block = text[start:text.index("```", start)].replace("\\\n", "")
    return [line for line in block.split("\n") if line.strip() and not line.startswith("#")]


@pytest.mark.skipif(__import__("shutil").which("jq") is None, reason="the README pipeline uses jq")
def test_readme_pipeline_verbatim_gives_c_and_d(tmp_path, tiny_checkpoint):
    """Two cron steps of the README pipeline on a tiny model: D = prompts per step x step and
    C = 6 N T from grpo-step's own token counts (not eval's held-out set size)."""
    import shutil

    commands = _readme_pipeline()
    assert commands[0].startswith("set -eo pipefail") and "rlscale flops runs.jsonl" in commands[-1]
    # the only changes: a tiny model built in code, a held-out set it can sample quickly
    subs = [("Qwen2.5-0.5B", "base"), ("--holdout 500", "--holdout 5"),
            ("rlscale rollout --model", "rlscale rollout --max-tokens 8 --model")]
    for old, new in subs:
        assert any(old in command for command in commands), old
        commands = [command.replace(old, new) for command in commands]
    shutil.copytree(tiny_checkpoint, tmp_path / "base")
    (tmp_path / "raw.jsonl").write_text(jsonl(
        [{"prompt": f"What is {i} plus {i + 1}?", "answer": str(2 * i + 1)} for i in range(13)]))
    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]}

    def bash(lines: list[str]) -> None:
        done = subprocess.run(["bash", "-c", "\n".join(["set -eo pipefail", *lines])],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stderr[-3000:]

    setup, step, final = commands[1:3], commands[3:-1], commands[-1]
    bash(setup)
    train = _lines((tmp_path / "train.jsonl").read_text())
    assert len(train) == 8 + 1 and train[-1].startswith('{"rlscale_end"')
    for batch in (train[0:4], train[4:8]):  # what cron hands each step: 4 problems
        (tmp_path / "batch.jsonl").write_text("\n".join(batch) + "\n")
        bash(step)
    metrics = RecordReader([str(tmp_path / "metrics.jsonl")])
    steps = list(metrics.records())
    assert metrics.complete and [m["step"] for m in steps] == [1, 2]
    assert [m["n_groups"] for m in steps] == [4, 4]
    runs = list(RecordReader([str(tmp_path / "runs.jsonl")]).records())
    assert [r["n_prompts"] for r in runs] == [5, 5]  # eval's held-out set size
    flops = subprocess.run(["bash", "-c", final.split(" | rlscale fit")[0]], cwd=tmp_path,
                           env=env, capture_output=True, text=True, timeout=300)
    assert flops.returncode == 0, flops.stderr
    points = [r for r in map(orjson.loads, _lines(flops.stdout)) if "rlscale_end" not in r]
    assert [p["D"] for p in points] == [4, 8]  # prompts trained on, not 5 held-out x step
    tokens = [m["n_tokens"] for m in steps]
    assert [p["C"] for p in points] == [6 * 5e8 * tokens[0], 6 * 5e8 * (tokens[0] + tokens[1])]


def test_fit_and_rollout_refuse_overlapping_files(tmp_path):
    runs = tmp_path / "runs.jsonl"
    text = jsonl([{"C": c, "loss": 0.5 / c, "N": 1} for c in (1, 2, 3, 4)])
    runs.write_text(text)
    result = run_inprocess(["fit", str(runs), "--law", "loglinear", "-o", str(runs)])
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (f"rlscale fit: -o {runs} is also the input {runs}: write to "
                             "another file\n")
    assert runs.read_text() == text
    result = run_inprocess(["fit", str(runs), "--law", "loglinear", "-o", str(tmp_path / "a"),
                            "--save", str(tmp_path / "a")])
    assert result.exit_code == 2 and "--save" in result.stderr
    out = tmp_path / "samples.jsonl"
    result = run_inprocess(["rollout", "--model", str(tmp_path), str(runs), "-o", str(out),
                            "--skip-invalid", "--rejects", str(out)])
    assert result.exit_code == 2
    assert result.stderr == (f"rlscale rollout: --rejects {out} is also the -o file: write to "
                             "another file\n")
    assert sorted(os.listdir(tmp_path)) == ["runs.jsonl"]


def test_rollout_resume_ends_the_file_with_one_count_for_the_whole_batch(tmp_path,
                                                                        tiny_checkpoint):
    problems = tmp_path / "problems.jsonl"
    problems.write_text(jsonl([{"prompt_id": f"p{i}", "prompt": f"{i} plus {i} is",
                                "answer": str(2 * i)} for i in range(3)]))
    out = tmp_path / "samples.jsonl"
    args = ["rollout", str(problems), "--model", tiny_checkpoint, "-n", "2", "--max-tokens", "4",
            "--no-chat-template", "-o", str(out)]
    result = run_cli(args)
    assert result.exit_code == 0, result.stderr
    lines = _lines(out.read_text())
    assert len(lines) == 7 and orjson.loads(lines[-1]) == {
        "rlscale_end": {"tool": "rollout", "records": 6}}
    out.write_text("\n".join(lines[:3]) + "\n")  # a run killed after 3 samples: no end record
    reader = RecordReader([str(out)])
    list(reader)
    assert not reader.complete
    result = run_cli([*args, "--resume"])
    assert result.exit_code == 0, result.stderr
    reader = RecordReader([str(out)])
    samples = list(reader.records())
    assert reader.complete and len(samples) == 6
    assert orjson.loads(_lines(out.read_text())[-1])["rlscale_end"]["records"] == 6


def test_rejects_go_through_the_atomic_writer(tmp_path):
    rejects = tmp_path / "bad.jsonl.gz"
    result = run_inprocess(["reward", "--skip-invalid", "--rejects", str(rejects)],
                           input='{"completion": "1", "answer": "1"}\nnot json\n')
    assert result.exit_code == 0, result.stderr
    assert gzip.decompress(rejects.read_bytes()) == b"not json\n"
    assert os.listdir(tmp_path) == ["bad.jsonl.gz"]


def test_gzip_on_a_real_stdin_pipe_is_read():
    rows = [{"completion": "\\boxed{2}", "answer": "2"}]
    result = run_cli(["reward"], input=gzip.compress(jsonl(rows).encode()))
    assert result.exit_code == 0, result.stderr
    assert [r["reward"] for r in result.records] == [1.0]


def test_grpo_step_refuses_rejects_equal_to_its_output(tmp_path, tiny_checkpoint):
    out = tmp_path / "metrics.jsonl"
    result = run_inprocess(["grpo-step", "--policy", tiny_checkpoint, "--out",
                            str(tmp_path / "ck"), "--kl-coef", "0", "-o", str(out),
                            "--skip-invalid", "--rejects", str(out)], input="")
    assert result.exit_code == 2
    assert result.stderr == (f"rlscale grpo-step: --rejects {out} is also the -o file: write "
                             "to another file\n")
    assert os.listdir(tmp_path) == []
