"""Tests of rlscale.curate, the Python API behind `rlscale curate`: the same records as the
command, errors that name records and parameters, streaming, splits and side inputs."""

from __future__ import annotations

import inspect
import os

import orjson
import pyarrow.parquet as pq
import pytest

import rlscale
from rlscale.api.curate import curate
from rlscale.core.errors import OptionError, RecordError, RlscaleError
from rlscale.io.verl_parquet import iter_parquet_rows
from tests.conftest import DATA, jsonl, run_inprocess

SUBSET_512 = os.path.join(DATA, "curate", "math__sampled_1_100_512.parquet")
AIME = os.path.join(DATA, "curate", "aime2024.parquet")


def problems(n: int = 40) -> list[dict]:
    records = [{"prompt": f"Problem {i}: what is {i} squared?", "answer": str(i * i),
                "pass_rate": (i % 5) / 4, "level": i % 3} for i in range(n)]
    records += [{"prompt": "Problem 3: what is 3 squared?", "answer": "9"},  # exact copy
                {"problem": "problem 4 : what is 4 squared ?", "answer": "17"}]  # normalised
    return records


def read_jsonl(path) -> list[dict]:
    with open(path, "rb") as handle:
        return [orjson.loads(line) for line in handle
                if line.strip() and not line.startswith(b'{"rlscale_end"')]


def cli_flags(options: dict) -> list[str]:
    flags = []
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        if value is True:
            flags.append(flag)
        else:
            flags += [flag, str(value)]
    return flags


@pytest.mark.parametrize("options", [
    {},
    {"order": "keep"},
    {"order": "random", "seed": 3},
    {"near_dup": 0.7, "min_pass_rate": 0.2, "max_pass_rate": 0.8, "template": "paper"},
    {"reuse": 4, "expand": True, "order": "keep"},
    {"reuse": 3, "nested": True, "budget": 30, "dedup": "exact"},
    {"dedup": "none", "template": "bare", "data_source": "math__x", "easy_threshold": 0.5},
])
def test_the_api_gives_the_records_the_command_writes(options):
    records = problems()
    cli = run_inprocess(["curate", *cli_flags(options), "-q"], input=jsonl(records))
    assert cli.exit_code == 0, cli.stderr
    assert list(curate(records, **options)) == cli.records


def test_the_splits_are_the_commands_files(tmp_path):
    records = problems(60)
    train, test = tmp_path / "train.jsonl", tmp_path / "test.jsonl"
    cli = run_inprocess(["curate", "--holdout", "10", "--holdout-out", str(test), "--reuse", "5",
                         "--seed", "7", "-o", str(train), "-q"], input=jsonl(records))
    assert cli.exit_code == 0, cli.stderr
    result = curate(records, holdout=10, reuse=5, seed=7)
    assert result.train == read_jsonl(train) and result.holdout == read_jsonl(test)
    assert {r["split"] for r in result.holdout} == {"test"} and len(result.holdout) == 10
    assert list(result) == result.train  # iterating gives the same training records


def test_verl_rows_are_the_commands_parquet(tmp_path):
    out = tmp_path / "v.parquet"
    cli = run_inprocess(["curate", SUBSET_512, "--dedup", "none", "--order", "keep",
                         "--to-verl", str(out), "-q"])
    assert cli.exit_code == 0, cli.stderr
    rows = [row for _, row in iter_parquet_rows(SUBSET_512)]
    assert curate(rows, dedup="none", order="keep",
                  data_source="math__sampled_1_100_512").verl() == pq.read_table(out).to_pylist()


def test_side_inputs_as_records_or_paths_match_the_command(tmp_path):
    records = [{"prompt_id": "a", "prompt": "A?", "answer": "1"},
               {"prompt_id": "b", "prompt": "B?", "answer": "2"},
               {"prompt_id": "c", "prompt": "C?", "answer": "3"}]
    scored = [{"prompt_id": "a", "reward": 1.0}, {"prompt_id": "a", "reward": 0},
              {"prompt_id": "b", "reward": 1}, {"prompt_id": "b", "reward": 0},
              {"prompt_id": "b", "reward": 0}, {"prompt_id": "b", "reward": 0}]
    benchmark = [{"prompt": "c ?"}]
    (tmp_path / "scored.jsonl").write_text(jsonl(scored))
    (tmp_path / "bench.jsonl").write_text(jsonl(benchmark))
    cli = run_inprocess(["curate", "--pass-rates", str(tmp_path / "scored.jsonl"), "--exclude",
                         str(tmp_path / "bench.jsonl"), "-q"], input=jsonl(records))
    assert cli.exit_code == 0, cli.stderr
    assert [r["prompt_id"] for r in cli.records] == ["a", "b"]
    assert list(curate(records, pass_rates=scored, exclude=benchmark)) == cli.records
    assert list(curate(records, pass_rates=str(tmp_path / "scored.jsonl"),
                       exclude=[str(tmp_path / "bench.jsonl")])) == cli.records


def test_dropped_problems_go_to_the_callback_with_the_reason():
    removed = []
    aime = pq.read_table(AIME).slice(0, 1).to_pylist()
    kept = list(curate([{"prompt": "Compute 1+1.", "answer": "2"},
                        {"prompt": "compute 1 + 1 .", "answer": "3"}, aime[0]],
                       exclude=AIME, dropped=removed.append, order="keep"))
    assert len(kept) == 1
    assert [(r["drop_reason"], r["split"]) for r in removed] == [
        ("normalised-duplicate", "dropped"), ("contaminated", "dropped")]
    assert removed[0]["drop_detail"] == kept[0]["prompt_id"]
    assert removed[1]["drop_detail"] == f"{AIME}:1 (overlap 1.00)"


def test_keep_order_streams_one_record_out_per_record_in():
    taken = []

    def source():
        for i in range(3):
            taken.append(i)
            yield {"prompt": f"Q{i}?", "answer": str(i)}

    stream = curate(source(), order="keep")
    assert stream.streams and taken == []
    assert next(stream)["prompt"] == "Q0?" and taken == [0]
    assert [r["prompt"] for r in stream] == ["Q1?", "Q2?"]
    assert "wrote 3 training row(s)" in stream.summary()
    with pytest.raises(RlscaleError, match="streamed by"):
        stream.train  # noqa: B018 - the records that streamed by are not kept


def test_pass_rates_follow_record_identity():
    records = [{"prompt_id": 1, "prompt": "One?", "answer": "1"},
               {"prompt_id": "1", "prompt": "Text one?", "answer": "1"}]
    scored = [{"prompt_id": 1.0, "reward": 1}, {"prompt_id": "1", "reward": 0}]
    got = {r["prompt"]: (r["prompt_id"], r["pass_rate"])
           for r in curate(records, pass_rates=scored, order="keep")}
    # 1 and 1.0 are one id, "1" another (rlscale.core.identity); ids are written as strings
    assert got == {"One?": ("1", 1.0), "Text one?": ("1~2", 0.0)}


def test_a_bad_record_names_its_position():
    with pytest.raises(RecordError) as info:
        list(curate([{"prompt": "ok?", "answer": "1"}, {"text": "no prompt", "answer": "2"}]))
    assert str(info.value).startswith("<records>:2: missing prompt field")
    with pytest.raises(RecordError, match=r"^<pass_rates>:1: field 'reward' must be in \[0, 1\]"):
        curate([], pass_rates=[{"prompt_id": "a", "reward": 2.0}])
    with pytest.raises(RecordError, match=r"^<exclude>:1: expected a dict"):
        curate([], exclude=[["not", "a", "dict"]])


@pytest.mark.parametrize("options, name, message", [
    ({"near_dup": 1.5}, "near_dup", "near_dup must be in (0, 1]; got 1.5"),
    ({"order": "sorted"}, "order", "order must be one of curriculum, random, keep, got 'sorted'"),
    ({"holdout": -1}, "holdout", "holdout must be >= 0; got -1"),
    ({"expand": True}, "reuse", "reuse is needed by budget, expand and nested"),
    ({"min_pass_rate": 0.8, "max_pass_rate": 0.2}, "min_pass_rate",
     "min_pass_rate is larger than max_pass_rate"),
    ({"pass_rates": [], "pass_rate_field": "p"}, "pass_rates",
     "pass_rates and pass_rate_field exclude each other: give one"),
    ({"template": "nope.txt"}, "template",
     "template must be none, paper, bare or a template file; 'nope.txt' is not a file"),
])
def test_a_bad_option_names_the_parameter(options, name, message):
    with pytest.raises(OptionError) as info:
        curate([], **options)
    assert info.value.option == name and str(info.value) == message


def test_a_budget_the_data_cannot_meet_names_the_parameter():
    result = curate([{"prompt": f"P{i}?", "answer": "1"} for i in range(10)], reuse=2,
                    budget=20)
    with pytest.raises(OptionError) as info:
        result.train  # noqa: B018 - known only once the input is read
    assert info.value.option == "budget"
    assert str(info.value) == ("budget 20 is larger than the 10 training problems left after "
                               "dedup, filters and the held-out split")


def test_the_command_defaults_are_the_api_defaults():
    from rlscale.cli.curate import command

    cli = inspect.signature(command).parameters
    api = inspect.signature(rlscale.curate).parameters
    common = set(cli) & set(api)
    assert set(cli) - common == {"inputs", "output", "to_verl", "holdout_out", "batch_size",
                                 "input_format", "wide", "skip_invalid", "rejects", "quiet",
                                 "debug"}  # where output goes, and the shared reader options
    assert set(api) - common == {"records", "progress"}
    assert {name: cli[name].default for name in common} == {
        name: api[name].default for name in common}
