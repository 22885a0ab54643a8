"""End-to-end tests of `rlscale curate` (subprocess): formats, splits, errors, determinism."""

from __future__ import annotations

import os
import select
import subprocess
import sys
from itertools import pairwise

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rlscale.core.curation import PAPER_PREFIX, hashed_prompt_id
from tests.conftest import DATA, jsonl, run_cli

CURATE_DATA = os.path.join(DATA, "curate")
POOL_12800 = os.path.join(CURATE_DATA, "math__sampled_1_4_12800.parquet")
SUBSET_512 = os.path.join(CURATE_DATA, "math__sampled_1_100_512.parquet")
TEST_500 = os.path.join(CURATE_DATA, "math__full_difficulty_ordered_test_500.parquet")
AIME = os.path.join(CURATE_DATA, "aime2024.parquet")


def read_jsonl(path):
    """The records of an output file, as any rlscale reader sees them (no end record)."""
    with open(path, "rb") as handle:
        return [orjson.loads(line) for line in handle
                if line.strip() and not line.startswith(b'{"rlscale_end"')]


def released(path):
    return pq.read_table(path).drop_columns(["__index_level_0__"])


# --- VeRL parquet round trip ---------------------------------------------------------------

def test_parquet_to_jsonl_to_parquet_round_trip_is_exact(tmp_path):
    out_jsonl = tmp_path / "rt.jsonl"
    out_parquet = tmp_path / "rt.parquet"
    first = run_cli(["curate", SUBSET_512, "--dedup", "none", "--order", "keep",
                     "-o", str(out_jsonl)])
    assert first.exit_code == 0, first.stderr
    records = read_jsonl(out_jsonl)
    assert len(records) == 512
    row100 = records[100]
    assert row100["prompt_id"] == "math__merged_deduped_dapo_or1_dataset#10888"
    assert row100["answer"] == "1024" and row100["pass_rate"] == 0.3125
    assert row100["difficulty"] == "easy" and row100["split"] == "train"
    assert row100["prompt"].startswith(PAPER_PREFIX)
    second = run_cli(["curate", str(out_jsonl), "--dedup", "none", "--order", "keep",
                      "--to-verl", str(out_parquet)])
    assert second.exit_code == 0, second.stderr
    assert second.stdout == ""  # --to-verl without -o: no JSONL
    assert "wrote 512 training row(s) (115 easy, 397 hard" in second.stderr
    written, original = pq.read_table(out_parquet), released(SUBSET_512)
    assert written.schema.remove_metadata().equals(original.schema.remove_metadata())
    assert written.to_pylist() == original.to_pylist()
    meta = orjson.loads(written.schema.metadata[b"rlscale"])
    assert meta["seed"] == 42 and meta["command"] == "curate"


def test_verl_output_loads_with_hf_datasets_like_verl_does(tmp_path):
    import datasets  # installed with the dev extras (trl depends on it)
    raw = tmp_path / "raw.jsonl"
    raw.write_text(jsonl([{"problem": "What is 2+3?", "answer": 5, "level": "1"},
                          {"problem": "What is 7*6?", "answer": "42", "level": "2"}]))
    out = tmp_path / "train.parquet"
    result = run_cli(["curate", str(raw), "--template", "paper", "--to-verl", str(out)])
    assert result.exit_code == 0, result.stderr
    dataset = datasets.load_dataset("parquet", data_files=str(out))["train"]
    assert dataset.column_names == ["data_source", "prompt", "ability", "reward_model",
                                    "extra_info"]
    row = dataset[0]
    assert row["data_source"] == "math__raw"
    assert row["prompt"][0]["role"] == "user"
    assert row["prompt"][0]["content"].startswith(PAPER_PREFIX)
    assert row["reward_model"]["style"] == "rule"
    assert set(row["extra_info"]) >= {"index", "split", "prompt_id", "level"}
    assert {r["reward_model"]["ground_truth"] for r in dataset} == {"5", "42"}


# --- the check on the released pool ------------------------------------------------

def test_reuse_cli_on_released_pool(tmp_path):
    """Issue check through the CLI for one tau (all taus: tests/test_curate_core.py)."""
    out = tmp_path / "a.jsonl"
    result = run_cli(["curate", POOL_12800, "--dedup", "none", "--reuse", "20", "--budget",
                      "12800", "--order", "curriculum", "-q", "-o", str(out)])
    assert result.exit_code == 0, result.stderr
    records = read_jsonl(out)
    assert len(records) == 640
    rates = [r["pass_rate"] for r in records]
    assert all(a >= b for a, b in pairwise(rates))
    assert abs(sum(r["difficulty"] == "easy" for r in records) - 640 * 2888 / 12800) <= 1
    held_out = {row[0]["content"] for row in
                pq.read_table(TEST_500, columns=["prompt"]).column("prompt").to_pylist()}
    assert not held_out & {r["prompt"] for r in records}


def test_same_seed_same_bytes_other_seed_other_output(tmp_path):
    raw = jsonl([{"prompt": f"Problem {i}: what is {i} squared?", "answer": str(i * i),
                  "pass_rate": (i % 5) / 4} for i in range(60)])
    args = ["curate", "--near-dup", "0.9", "--holdout", "10", "--reuse", "5", "-q"]
    runs = []
    for seed, name in (("1", "a"), ("1", "b"), ("2", "c")):
        out = tmp_path / f"{name}.parquet"
        result = run_cli([*args, "--seed", seed, "--holdout-out", str(tmp_path / f"{name}.t"),
                          "--to-verl", str(out), "-o", str(tmp_path / f"{name}.jsonl")],
                         input=raw)
        assert result.exit_code == 0, result.stderr
        runs.append([(tmp_path / f"{name}{ext}").read_bytes()
                     for ext in (".parquet", ".jsonl", ".t")])
    assert runs[0] == runs[1]
    assert all(a != c for a, c in zip(runs[0], runs[2], strict=True))


def test_nested_reuse_with_expand_and_verl_output(tmp_path):
    out = tmp_path / "r100.parquet"
    result = run_cli(["curate", SUBSET_512, "--dedup", "none", "--reuse", "4", "--nested",
                      "--expand", "--order", "keep", "--to-verl", str(out), "-o",
                      str(tmp_path / "r100.jsonl")])
    assert result.exit_code == 0, result.stderr
    records = read_jsonl(tmp_path / "r100.jsonl")
    assert len(records) == 4 * 128
    assert [r["epoch"] for r in records] == [e for e in range(4) for _ in range(128)]
    first_epoch = [r["prompt_id"] for r in records[:128]]
    assert all([r["prompt_id"] for r in records[128 * e:128 * (e + 1)]] == first_epoch
               for e in range(4))
    assert sum(r["difficulty"] == "easy" for r in records[:128]) == 128 * 115 // 512
    rows = pq.read_table(out).to_pylist()
    assert len(rows) == 512
    assert [row["extra_info"]["epoch"] for row in rows[::128]] == [0, 1, 2, 3]
    assert rows[0]["extra_info"]["reuse_tau"] == 4


def test_order_keep_streams_records_before_input_ends():
    proc = subprocess.Popen([sys.executable, "-m", "rlscale", "curate", "--order", "keep"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        proc.stdin.write(jsonl([{"prompt": "First?", "answer": "1"}]).encode())
        proc.stdin.flush()
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        assert ready, "no output while stdin is still open"
        first = orjson.loads(proc.stdout.readline())
        assert first["prompt"] == "First?" and first["split"] == "train"
        proc.stdin.write(jsonl([{"prompt": "Second?", "answer": "2"}]).encode())
        proc.stdin.close()
        assert orjson.loads(proc.stdout.readline())["prompt"] == "Second?"
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            stream.close()


def test_dotted_pass_rate_field():
    raw = jsonl([{"prompt": "A?", "answer": "1", "extra_info": {"qwen3_30b_pass_rate": 0.75}},
                 {"prompt": "B?", "answer": "2", "extra_info": {"qwen3_30b_pass_rate": 0.125}}])
    result = run_cli(["curate", "--pass-rate-field", "extra_info.qwen3_30b_pass_rate"],
                     input=raw)
    assert [(r["prompt"], r["pass_rate"], r["difficulty"]) for r in result.records] == [
        ("A?", 0.75, "easy"), ("B?", 0.125, "hard")]


def test_batch_size_reports_the_training_schedule():
    raw = jsonl([{"prompt": f"Problem {i}?", "answer": str(i)} for i in range(1100)])
    result = run_cli(["curate", "--order", "keep", "--batch-size", "512", "--reuse", "2"],
                     input=raw)
    assert result.exit_code == 0, result.stderr
    assert len(result.records) == 550
    assert ("at 512 prompts/step (unshuffled, drop_last): 1 step(s) per epoch x 2 epoch(s) = "
            "2 steps, 1024 prompts; 38 row(s) never seen") in result.stderr


# --- held-out split ------------------------------------------------------------------------

def test_holdout_easy_hard_split_with_paper_template(tmp_path):
    raw = tmp_path / "raw.jsonl"
    problems = [{"question": f"Problem {i}: compute {i} + {i}.", "answer": str(2 * i),
                 "pass_rate": (i % 16) / 16} for i in range(200)]
    raw.write_text(jsonl(problems))
    test_out, train_out = tmp_path / "test.parquet", tmp_path / "train.jsonl"
    result = run_cli(["curate", str(raw), "--holdout", "40", "--holdout-out", str(test_out),
                      "--template", "paper", "-o", str(train_out)])
    assert result.exit_code == 0, result.stderr
    assert "40 held out" in result.stderr and "(20 easy, 20 hard)" in result.stderr
    train = read_jsonl(train_out)
    test = pq.read_table(test_out).to_pylist()
    assert len(train) == 160 and len(test) == 40
    assert sum(row["extra_info"]["pass_rate"] >= 0.3 for row in test) == 20
    assert {row["extra_info"]["split"] for row in test} == {"test"}
    assert not {r["prompt_id"] for r in train} & {row["extra_info"]["prompt_id"] for row in test}
    rates = [r["pass_rate"] for r in train]
    assert rates == sorted(rates, reverse=True)
    assert all(r["prompt"].startswith(PAPER_PREFIX) and r["prompt"].endswith("\\boxed{}.")
               for r in train)
    assert all(r["prompt_id"] == hashed_prompt_id(r["prompt"]) for r in train)


def test_holdout_proportional_and_random_order(tmp_path):
    raw = tmp_path / "raw.jsonl"
    raw.write_text(jsonl([{"prompt": f"Q{i}: {i}*3?", "answer": str(3 * i),
                           "pass_rate": 0.5 if i % 4 == 0 else 0.1} for i in range(100)]))
    result = run_cli(["curate", str(raw), "--holdout", "20", "--holdout-out",
                      str(tmp_path / "t.jsonl"), "--stratify", "proportional", "--order",
                      "random", "--seed", "3"])
    assert result.exit_code == 0, result.stderr
    test = read_jsonl(tmp_path / "t.jsonl")
    assert sum(r["difficulty"] == "easy" for r in test) == 5
    assert len(result.records) == 80
    assert [r["pass_rate"] for r in result.records] != sorted(
        [r["pass_rate"] for r in result.records], reverse=True)


# --- dedup, decontamination, pass rates ----------------------------------------------------

def test_dedup_and_decontamination_with_dropped_file(tmp_path):
    aime_first = pq.read_table(AIME).slice(0, 1).to_pylist()[0]["prompt"][0]["content"]
    bare = aime_first[len(PAPER_PREFIX):].split(" Please solve")[0]
    raw = [
        {"problem": "Compute 1+1.", "answer": "2"},
        {"problem": "Compute 1+1.", "answer": "2"},             # exact copy
        {"problem": "compute   1 + 1 .", "answer": "3"},        # normalised copy
        {"problem": bare.replace(" ", "  "), "answer": "204"},  # AIME 2024 problem, retyped
        {"problem": "Compute 2+2.", "answer": "4"},
    ]
    path = tmp_path / "raw.jsonl"
    path.write_text(jsonl(raw))
    dropped = tmp_path / "dropped.jsonl"
    result = run_cli(["curate", str(path), "--exclude", AIME, "--order", "keep",
                      "--dropped", str(dropped)])
    assert result.exit_code == 0, result.stderr
    assert [r["answer"] for r in result.records] == ["2", "4"]
    assert ("dropped 1 exact + 1 normalised + 0 near duplicate(s) (1 with a different answer); "
            "1 contaminated") in result.stderr
    reasons = [(r["drop_reason"], r["drop_detail"]) for r in read_jsonl(dropped)]
    first_id = result.records[0]["prompt_id"]
    assert reasons[:2] == [("exact-duplicate", first_id), ("normalised-duplicate", first_id)]
    assert reasons[2] == ("contaminated", f"{AIME}:1 (overlap 1.00)")


def test_near_dup_flag(tmp_path):
    text = ("Let $ABC$ be a triangle with $AB=13$, $BC=14$ and $CA=15$. Find the radius of the "
            "circle inscribed in triangle $ABC$ and the area of the triangle.")
    raw = [{"prompt": text, "answer": "4"}, {"prompt": text.replace("Find", "Determine"),
                                             "answer": "4"}]
    assert len(run_cli(["curate", "--order", "keep"], input=jsonl(raw)).records) == 2
    result = run_cli(["curate", "--order", "keep", "--near-dup", "0.8"], input=jsonl(raw))
    assert len(result.records) == 1 and "1 near duplicate" in result.stderr


def test_pass_rates_from_scored_rollouts(tmp_path):
    raw = tmp_path / "raw.jsonl"
    raw.write_text(jsonl([{"prompt_id": "a", "prompt": "A?", "answer": "1"},
                          {"prompt_id": "b", "prompt": "B?", "answer": "2"},
                          {"prompt_id": "c", "prompt": "C?", "answer": "3"}]))
    scored = tmp_path / "scored.jsonl"
    scored.write_text(jsonl([{"prompt_id": "a", "reward": 1.0}, {"prompt_id": "a", "reward": 0},
                             {"prompt_id": "b", "reward": 1}, {"prompt_id": "b", "reward": 0},
                             {"prompt_id": "b", "reward": 0}, {"prompt_id": "b", "reward": 0}]))
    result = run_cli(["curate", str(raw), "--pass-rates", str(scored), "--max-pass-rate", "0.4"])
    assert result.exit_code == 0, result.stderr
    got = {r["prompt_id"]: (r["pass_rate"], r["difficulty"]) for r in result.records}
    assert got == {"b": (0.25, "hard"), "c": (None, "hard")}  # a (0.5) is above the maximum
    assert [r["prompt_id"] for r in result.records] == ["b", "c"]
    assert result.records[0]["pass_rate_n"] == 4
    assert "1 problem(s) have no scored rollouts" in result.stderr


def test_template_file_and_bare(tmp_path):
    template = tmp_path / "t.txt"
    template.write_text("Solve: {prompt}\nAnswer in \\boxed{}.")
    record = {"prompt": PAPER_PREFIX + "What is 3^2? Please output the final answer within "
                                       "\\boxed{}.", "answer": "9"}
    result = run_cli(["curate", "--template", str(template)], input=jsonl([record]))
    assert result.records[0]["prompt"] == "Solve: What is 3^2?\nAnswer in \\boxed{}."
    bare = run_cli(["curate", "--template", "bare"], input=jsonl([record]))
    assert bare.records[0]["prompt"] == "What is 3^2?"


# --- errors --------------------------------------------------------------------------------

def test_missing_field_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(jsonl([{"prompt": "ok?", "answer": "1"}, {"text": "no prompt", "answer": 2}]))
    result = run_cli(["curate", str(path)])
    assert result.exit_code == 1
    assert result.stderr == (f"rlscale curate: {path}:2: missing prompt field (looked for "
                             "prompt, problem, question); name it with --prompt-field\n")
    skipped = run_cli(["curate", str(path), "--skip-invalid"])
    assert skipped.exit_code == 0 and len(skipped.records) == 1
    assert "skipped 1 invalid line(s)" in skipped.stderr


def test_bad_parquet_row_names_the_row(tmp_path):
    table = pq.read_table(SUBSET_512).slice(0, 3).to_pylist()
    table[2]["reward_model"] = None
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.Table.from_pylist(table), path)
    result = run_cli(["curate", str(path)])
    assert result.exit_code == 1
    assert result.stderr == (f"rlscale curate: {path}:3: missing answer field (looked for answer, "
                             "ground_truth, reward_model.ground_truth, solution); name it with "
                             "--answer-field\n")


def test_skip_invalid_parquet_row_goes_to_rejects(tmp_path):
    table = pq.read_table(SUBSET_512).slice(0, 3).to_pylist()
    table[1]["prompt"] = []
    path, rejects = tmp_path / "bad.parquet", tmp_path / "rejects.jsonl"
    pq.write_table(pa.Table.from_pylist(table), path)
    result = run_cli(["curate", str(path), "--order", "keep", "--skip-invalid", "--rejects",
                      str(rejects)])
    assert result.exit_code == 0, result.stderr
    assert len(result.records) == 2
    assert f"skipped 1 invalid line(s) (written to {rejects})" in result.stderr
    rejected = read_jsonl(rejects)
    assert len(rejected) == 1 and rejected[0]["prompt"] == []
    assert rejected[0]["extra_info"] == table[1]["extra_info"]


@pytest.mark.parametrize("args, message", [
    (["--holdout", "5"], "--holdout needs --holdout-out FILE"),
    (["--expand"], "--budget, --expand and --nested need --reuse TAU"),
    (["--order", "sorted"], "--order must be one of curriculum, random, keep, got 'sorted'"),
    (["--near-dup", "1.5"], "--near-dup must be in (0, 1]; got 1.5"),
    (["--pass-rates", "x.jsonl", "--pass-rate-field", "p"],
     "use either --pass-rates or --pass-rate-field, not both"),
    (["--template", "nope.txt"],
     "--template must be none, paper, bare or a template file; 'nope.txt' is not a file"),
])
def test_usage_errors_exit_2(args, message):
    result = run_cli(["curate", *args], input="")
    assert result.exit_code == 2
    assert result.stderr == f"rlscale curate: {message}\n"


def test_mixed_type_pass_through_field_cannot_go_to_parquet(tmp_path):
    raw = jsonl([{"prompt": "A?", "answer": "1", "level": 3},
                 {"prompt": "B?", "answer": "2", "level": "hard"}])
    result = run_cli(["curate", "--order", "keep", "--to-verl", str(tmp_path / "x.parquet")],
                     input=raw)
    assert result.exit_code == 1
    assert result.stderr.startswith("rlscale curate: cannot store extra_info field 'level' in "
                                    "parquet: its values have mixed or unsupported types")
    assert not (tmp_path / "x.parquet").exists()


def test_budget_larger_than_pool_is_an_error(tmp_path):
    raw = jsonl([{"prompt": f"P{i}?", "answer": "1"} for i in range(10)])
    result = run_cli(["curate", "--order", "keep", "--reuse", "2", "--budget", "20"], input=raw)
    assert result.exit_code == 1
    assert result.stderr == ("rlscale curate: --budget 20 is larger than the 10 training "
                             "problems left after dedup, filters and the held-out split\n")


def test_bad_reward_in_pass_rates_file(tmp_path):
    scored = tmp_path / "scored.jsonl"
    scored.write_text(jsonl([{"prompt_id": "a", "reward": 2.0}]))
    result = run_cli(["curate", "--pass-rates", str(scored)],
                     input=jsonl([{"prompt": "x", "answer": "1"}]))
    assert result.exit_code == 1
    assert result.stderr == (f"rlscale curate: {scored}:1: field 'reward' must be in [0, 1] to "
                             "average into a pass rate, got 2.0\n")


def test_help_does_not_import_heavy_libraries():
    code = ("import sys, contextlib, io\n"
            "from rlscale.cli.app import main\n"
            "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
            "    code = main(['curate', '--help'])\n"
            "heavy = [m for m in ('torch', 'transformers', 'pyarrow')\n"
            "         if m in sys.modules]\n"
            "print(code, 'Examples' in out.getvalue(), heavy)\n")
    probe = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert probe.stdout.strip() == "0 True []", probe.stderr
