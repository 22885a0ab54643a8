"""scripts/follow.sh, the shell side of ``--follow`` that scripts/demo.sh drives its loops
with: batches go to a real long-running stage through named pipes, and every answer is read
exactly, or the loop fails instead of waiting forever or going on with half an answer."""

from __future__ import annotations

import os
import subprocess
import sys

import orjson

from tests.conftest import REPO, jsonl, run_cli

HELPERS = os.path.join(REPO, "scripts", "follow.sh")
RECORDS = [{"completion": f"\\boxed{{{i}}}", "answer": "2"} for i in range(5)]


def bash(script: str, cwd) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]}
    return subprocess.run(["bash", "-c", f"set -euo pipefail\nsource {HELPERS}\n{script}"],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


# STAGE reads the named pipe in and writes the named pipe out; the loop sends two batches.
LOOP = """
mkfifo in out
{stage} < in > out &
stage=$!
exec {{to}}>in {{from}}<out
send_batch "$to" a.jsonl
one_answer {n_a} answer-a.jsonl <&"$from" || {{ echo "no answer to a"; exit 3; }}
send_batch "$to" b.jsonl
one_answer {n_b} answer-b.jsonl <&"$from" || {{ echo "no answer to b"; exit 4; }}
exec {{to}}>&-
wait "$stage"
"""


def test_a_real_stage_answers_each_batch_as_a_separate_call(tmp_path):
    (tmp_path / "a.jsonl").write_text(jsonl(RECORDS[:3]))
    (tmp_path / "b.jsonl").write_text(jsonl(RECORDS[3:]))
    done = bash(LOOP.format(stage="rlscale reward --follow -q", n_a=3, n_b=2), tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    for name, part in (("a", RECORDS[:3]), ("b", RECORDS[3:])):
        alone = run_cli(["reward", "-q"], input=jsonl(part) + orjson.dumps(
            {"rlscale_end": {"tool": "demo", "records": len(part)}}).decode() + "\n")
        assert (tmp_path / f"answer-{name}.jsonl").read_text() == alone.stdout


def test_a_stage_that_stops_mid_answer_fails_the_loop_at_once(tmp_path):
    """The stand-in stage echoes the first batch as its answer, then reads all of the second
    (so the loop's write is done: no race with its exit), writes half an answer and dies."""
    (tmp_path / "a.jsonl").write_text(jsonl(RECORDS[:2]))
    (tmp_path / "b.jsonl").write_text(jsonl(RECORDS[2:]))
    until_end = "sed -u '/^{\"rlscale_end\"/q'"
    stage = (f"{{ {until_end}; {until_end} > /dev/null; "
             "printf '%s\\n' '{\"half\":1}'; exit 1; }")
    done = bash(LOOP.format(stage=stage, n_a=2, n_b=3), tmp_path)
    assert done.returncode == 4 and done.stdout == "no answer to b\n", done.stderr
    assert (tmp_path / "answer-b.jsonl").read_text() == '{"half":1}\n'


def test_an_answer_with_the_wrong_count_is_refused(tmp_path):
    (tmp_path / "a.jsonl").write_text(jsonl(RECORDS[:2]))
    (tmp_path / "b.jsonl").write_text(jsonl(RECORDS[2:]))
    # a stand-in whose answer claims 2 records but holds 1 (a line lost on the way)
    stage = ("while IFS= read -r line; do case $line in '{\"rlscale_end\"'*) "
             "printf '%s\\n' '{\"x\":1}' '{\"rlscale_end\":{\"tool\":\"t\",\"records\":2}}';; "
             "esac; done")
    done = bash(LOOP.format(stage=stage, n_a=2, n_b=3), tmp_path)
    assert done.returncode == 3 and done.stdout == "no answer to a\n", done.stderr


def test_end_record_counts_the_batch(tmp_path):
    (tmp_path / "a.jsonl").write_text(jsonl(RECORDS[:3]))
    done = bash("send_batch 1 a.jsonl", tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == jsonl(RECORDS[:3]) + '{"rlscale_end":{"tool":"demo","records":3}}\n'
