"""``--follow``: one long-running stage answers a stream of batches, each exactly as a separate
call of the command on that batch would, and refuses what arrives incomplete."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import threading

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rlscale.core.errors import RlscaleError
from rlscale.io.jsonl import Batches, RecordReader
from tests.conftest import REPO, jsonl, run_cli, run_inprocess
from tests.test_grpo_step import load_weights, make_records


def end(n: int, tool: str = "test") -> str:
    return orjson.dumps({"rlscale_end": {"tool": tool, "records": n}}).decode() + "\n"


def batch(records: list[dict]) -> str:
    # json, not orjson: it writes integers beyond 64 bits, which the property test draws
    return "".join(json.dumps(r) + "\n" for r in records) + end(len(records))


def answers(stdout: str) -> list[list[str]]:
    """stdout cut into answers: the lines up to and including each end record."""
    out, current = [], []
    for line in stdout.split("\n"):
        if line.strip():
            current.append(line)
            if line.startswith('{"rlscale_end"'):
                out.append(current)
                current = []
    assert current == [], f"lines after the last end record: {current}"
    return out


SCORED = [{"prompt_id": f"p{i // 2}", "sample_idx": i % 2, "completion": f"\\boxed{{{i % 3}}}",
           "answer": "1", "reward": float(i % 3 == 1)} for i in range(6)]


# --- the batch reader -------------------------------------------------------------------------


def read_batches(data: bytes) -> list[list[tuple[dict, int]]]:
    batches = Batches(io.BytesIO(data))
    out = []
    while batches.wait():
        reader = RecordReader(None, batch=batches)
        out.append([(record, where.line) for record, where in reader])
        assert reader.complete, reader.problems
    return out


@given(st.lists(st.lists(st.integers(0, 2**70), max_size=4), max_size=5),
       st.integers(0, 2))
def test_batches_are_the_records_between_end_records(groups, blank_lines):
    text = "".join("\n" * blank_lines + batch([{"v": v} for v in group]) for group in groups)
    got = read_batches(text.encode())
    assert [[record["v"] for record, _ in b] for b in got] == groups
    # line numbers count from the start of the stream, as a one-shot reader's would
    lines = text.split("\n")
    for b in got:
        for record, line in b:
            assert json.loads(lines[line - 1]) == record


def test_a_batch_the_stream_ends_inside_of_is_incomplete():
    batches = Batches(io.BytesIO((batch([{"v": 1}]) + jsonl([{"v": 2}, {"v": 3}])).encode()))
    assert batches.wait()
    first = RecordReader(None, batch=batches)
    assert [r["v"] for r in first.records()] == [1] and first.complete
    assert batches.wait()
    reader = RecordReader(None, batch=batches)
    assert [r["v"] for r in reader.records()] == [2, 3]
    assert reader.problems == [
        "<stdin> ends after 2 record(s) of a batch without the end-of-stream record that "
        "closes each batch of --follow (the writer failed or was stopped, or the stream was "
        "cut)"]
    assert not batches.wait()


def test_the_next_batch_waits_for_the_current_one_to_be_read():
    batches = Batches(io.BytesIO(batch([{"v": 1}]).encode()))
    assert batches.wait()
    with pytest.raises(RlscaleError, match="batch 1 was not read to its end"):
        batches.wait()


# --- answers equal separate calls ---------------------------------------------------------------


@pytest.mark.parametrize("command", [["reward", "--fallbacks", "none"],
                                     ["eval", "--by", "prompt_id", "--k", "1,2"]])
def test_each_answer_is_what_a_separate_call_gives(command):
    parts = [SCORED[:4], SCORED[4:], SCORED[1:3]]
    followed = run_inprocess([*command, "--follow", "-q"], "".join(batch(p) for p in parts))
    assert followed.exit_code == 0, followed.stderr
    got = answers(followed.stdout)
    assert len(got) == 3
    for part, answer in zip(parts, got, strict=True):
        alone = run_inprocess([*command, "-q"], batch(part))
        assert alone.exit_code == 0, alone.stderr
        assert "\n".join(answer) + "\n" == alone.stdout


def test_an_empty_batch_gets_an_empty_ended_answer():
    result = run_inprocess(["reward", "--follow", "-q"], end(0) + batch(SCORED[:2]))
    assert result.exit_code == 0, result.stderr
    got = answers(result.stdout)
    assert got[0] == ['{"rlscale_end":{"tool":"reward","records":0}}']
    assert got[1][-1] == '{"rlscale_end":{"tool":"reward","records":2}}'


# --- what arrives incomplete or bad stops the stage -------------------------------------------


def test_a_cut_last_batch_stops_with_exit_1_and_no_end_record_for_it():
    result = run_inprocess(["reward", "--follow", "-q"],
                           batch(SCORED[:2]) + jsonl(SCORED[2:5]))
    assert result.exit_code == 1
    assert result.stderr == (
        "rlscale reward: incomplete input: <stdin> ends after 3 record(s) of a batch without "
        "the end-of-stream record that closes each batch of --follow (the writer failed or was "
        "stopped, or the stream was cut): stopping after 1 complete batch(es)\n")
    lines = [line for line in result.stdout.split("\n") if line]
    assert lines[2] == '{"rlscale_end":{"tool":"reward","records":2}}'
    assert len(lines) == 6 and not lines[-1].startswith('{"rlscale_end"')  # downstream refuses


def test_a_batch_whose_count_is_wrong_stops_the_stage():
    text = batch(SCORED[:2]) + jsonl(SCORED[2:4]) + end(3)
    result = run_inprocess(["reward", "--follow", "-q"], text)
    assert result.exit_code == 1
    assert result.stderr.startswith(
        "rlscale reward: incomplete input: <stdin>:6: rlscale test wrote 3 record(s) but 2 "
        "arrived")
    assert result.stdout.count('"rlscale_end"') == 1


def test_a_bad_record_names_its_line_in_the_whole_stream():
    text = batch(SCORED[:2]) + '{"completion": "1"}\n' + end(1)
    result = run_inprocess(["reward", "--follow", "-q"], text)
    assert result.exit_code == 1
    assert result.stderr == "rlscale reward: <stdin>:4: missing required field 'answer'\n"


@pytest.mark.parametrize("args, message", [
    (["reward", "--follow", "in.jsonl"], "--follow reads its batches from stdin, not from files"),
    (["reward", "--follow", "-o", "out.jsonl"],
     "--follow answers each batch on stdout; -o is for one batch"),
    (["eval", "--follow", "--input-format", "csv"],
     "--follow reads JSONL batches (no --input-format or --wide)"),
    (["grpo-step", "--follow", "--emit", "advantages"],
     "--follow trains on each batch (--emit metrics), not --emit advantages"),
])
def test_follow_usage_errors_exit_2(tmp_path, args, message):
    result = run_cli(args, input=batch(SCORED[:1]), cwd=tmp_path)
    assert result.exit_code == 2
    assert result.stderr.endswith(f": {message}\n")
    assert result.stdout == "" and os.listdir(tmp_path) == []


def test_follow_needs_end_records():
    result = run_cli(["reward", "--follow"], input=batch(SCORED[:1]),
                     env={"RLSCALE_END_RECORD": "0"})
    assert result.exit_code == 2
    assert result.stderr == ("rlscale reward: --follow needs end-of-stream records to tell "
                             "batches apart (RLSCALE_END_RECORD=0 is set)\n")


# --- a real request/response loop: rollout and grpo-step -------------------------------------


class Stage:
    """A ``--follow`` subprocess driven one batch at a time over real pipes."""

    def __init__(self, args: list[str]):
        self.proc = subprocess.Popen([sys.executable, "-m", "rlscale", *args, "--follow", "-q"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, cwd=REPO)

    def ask(self, text: str) -> list[str]:
        """Send one batch and read its answer; the stage must answer before the next batch
        exists (a stage that read ahead would block here and the timer would end the test)."""
        timer = threading.Timer(300, self.proc.kill)  # a hang fails the test, it never waits
        timer.start()
        try:
            self.proc.stdin.write(text.encode())
            self.proc.stdin.flush()
            lines = []
            while True:
                line = self.proc.stdout.readline().decode()
                assert line, f"the stage ended: {self.proc.stderr.read().decode()}"
                lines.append(line)
                if line.startswith('{"rlscale_end"'):
                    return lines
        finally:
            timer.cancel()

    def finish(self) -> str:
        self.proc.stdin.close()
        assert self.proc.wait(timeout=300) == 0, self.proc.stderr.read().decode()
        assert self.proc.stdout.read() == b""
        return self.proc.stderr.read().decode()


def test_rollout_follow_samples_each_batch_from_the_checkpoint_as_it_is_then(tmp_path,
                                                                          tiny_checkpoint):
    from rlscale.engines.tiny import build_tiny_checkpoint

    other = build_tiny_checkpoint(str(tmp_path / "other"), seed=1)
    policy = tmp_path / "policy"
    shutil.copytree(tiny_checkpoint, policy)
    args = ["rollout", "--model", str(policy), "-n", "2", "--max-tokens", "6",
            "--no-chat-template", "--seed", "5"]
    problems = [[{"prompt_id": f"a{i}", "prompt": f"{i} plus {i}"} for i in range(3)],
                [{"prompt_id": f"b{i}", "prompt": f"{i} times {i}"} for i in range(2)]]
    stage = Stage(args)
    first = stage.ask(batch(problems[0]))
    shutil.copytree(other, policy, dirs_exist_ok=True)  # a new checkpoint in place
    second = stage.ask(batch(problems[1]))
    stage.finish()
    for answer, checkpoint, part in ((first, tiny_checkpoint, problems[0]),
                                     (second, other, problems[1])):
        alone = run_cli([*args[:2], checkpoint, *args[3:]], input=batch(part))
        expected = [orjson.loads(line) for line in alone.stdout.splitlines()]
        for record in expected[:-1]:  # the same samples; only the checkpoint's path differs
            record["model"] = str(policy)
        assert [orjson.loads(line) for line in answer] == expected
    assert first[-1] == end(6, "rollout") and second[-1] == end(4, "rollout")
    weights = {json.loads(line)["sampling"]["weights"] for line in first[:-1] + second[:-1]}
    assert len(weights) == 2  # each batch names the weights it was drawn from


def test_grpo_step_follow_takes_the_steps_separate_calls_take(tmp_path, tiny_checkpoint):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_checkpoint)
    batches = [make_records(tokenizer, seed=s) for s in (0, 1)]
    metrics = {}
    for mode in ("follow", "separate"):
        policy = str(tmp_path / mode)
        shutil.copytree(tiny_checkpoint, policy)
        args = ["grpo-step", "--policy", policy, "--ref", tiny_checkpoint, "--out", policy,
                "--lr", "1e-3", "--kl-coef", "0.01", "--mini-batches", "2",
                "--micro-batch-size", "3", "--seed", "3"]
        if mode == "follow":
            stage = Stage(args)
            got = [stage.ask(batch(b)) for b in batches]
            stage.finish()
            assert [answer[-1] for answer in got] == [end(1, "grpo-step")] * 2
            metrics[mode] = [orjson.loads(answer[0]) for answer in got]
        else:
            metrics[mode] = [run_cli(args, input=batch(b)).records[0] for b in batches]
    for mode, steps in metrics.items():  # the one field that is a clock, and the directories
        for i, m in enumerate(steps):
            m.pop("wall_s")
            steps[i] = orjson.loads(orjson.dumps(m).replace(str(tmp_path / mode).encode(), b"P"))
    assert [m["step"] for m in metrics["follow"]] == [1, 2]
    assert metrics["follow"] == metrics["separate"]
    follow, separate = load_weights(tmp_path / "follow"), load_weights(tmp_path / "separate")
    assert follow.keys() == separate.keys()
    assert all(follow[name].equal(separate[name]) for name in follow)


def test_grpo_step_follow_answers_an_empty_batch_without_a_step(tmp_path, tiny_checkpoint):
    policy = tmp_path / "policy"
    shutil.copytree(tiny_checkpoint, policy)
    result = run_cli(["grpo-step", "--follow", "--policy", str(policy), "--out", str(policy),
                      "--kl-coef", "0"], input=end(0))
    assert result.exit_code == 0, result.stderr
    assert result.stdout == end(0, "grpo-step")
    assert "no records on input: no step taken" in result.stderr
