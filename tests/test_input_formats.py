"""Every record-reading command reads CSV/TSV and parquet like JSONL, by extension or with
--input-format (the shared option bundle of rlscale/cli/_shared.py), and wide tables with
--wide STEP."""

from __future__ import annotations

import csv
import io

import pytest

from tests.conftest import jsonl, run_inprocess

# Records whose values read back from CSV exactly (no numeric-looking strings, no nulls) and
# whose columns have one type (parquet), so every format gives the same records and stdout.
CASES = {
    "reward": (["--workers", "0"], [
        {"prompt_id": "p1", "completion": "So the answer is \\boxed{2y}.", "answer": "2y"},
        {"prompt_id": "p1", "completion": "I think \\boxed{3y}, with a comma", "answer": "2y"},
        {"prompt_id": "p2", "completion": "It is \\boxed{x+1}", "answer": "x+1"},
    ]),
    "eval": (["--by", "step", "--k", "1,2", "--bootstrap", "20", "--seed", "3"], [
        {"step": 1, "prompt_id": "p1", "sample_idx": 0, "reward": 1.0},
        {"step": 1, "prompt_id": "p1", "sample_idx": 1, "reward": 0.0},
        {"step": 1, "prompt_id": "p2", "sample_idx": 0, "reward": 0.0},
        {"step": 1, "prompt_id": "p2", "sample_idx": 1, "reward": 0.0},
        {"step": 2, "prompt_id": "p1", "sample_idx": 0, "reward": 1.0},
        {"step": 2, "prompt_id": "p1", "sample_idx": 1, "reward": 1.0},
    ]),
    "flops": (["--n-params", "5e8"], [
        {"run_id": "a", "step": 1, "n_tokens": 1000, "n_groups": 4},
        {"run_id": "a", "step": 2, "n_tokens": 1500, "n_groups": 4},
        {"run_id": "b", "step": 1, "n_tokens": 800, "n_groups": 2},
    ]),
    "grpo-step": (["--emit", "advantages"], [
        {"prompt_id": "p1", "sample_idx": 0, "reward": 1.0},
        {"prompt_id": "p1", "sample_idx": 1, "reward": 0.0},
        {"prompt_id": "p2", "sample_idx": 0, "reward": 0.5},
        {"prompt_id": "p2", "sample_idx": 1, "reward": 0.25},
    ]),
    "curate": (["--order", "curriculum", "--seed", "1", "--data-source", "math__t"], [
        {"prompt_id": "p1", "prompt": "What is two plus two?", "answer": "2y", "pass_rate": 0.75},
        {"prompt_id": "p2", "prompt": "Solve x, then add one.", "answer": "x+1",
         "pass_rate": 0.125},
        {"prompt_id": "p3", "prompt": "What is three times three?", "answer": "\\pi",
         "pass_rate": 0.5},
    ]),
}
COMMANDS = sorted(CASES)


def _table(records: list[dict], delimiter: str = ",") -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(records[0]), delimiter=delimiter,
                            lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    return out.getvalue()


def _parquet(records: list[dict]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(records), sink)
    return sink.getvalue()


def _jsonl_result(command: str):
    args, records = CASES[command]
    result = run_inprocess([command, *args, "-q"], input=jsonl(records))
    assert result.exit_code == 0, result.stderr
    assert result.records, "the case must produce output to compare"
    return result


@pytest.mark.parametrize("command", COMMANDS)
def test_csv_and_tsv_on_stdin_give_the_jsonl_output(command):
    args, records = CASES[command]
    expected = _jsonl_result(command)
    for fmt, delimiter in (("csv", ","), ("tsv", "\t")):
        result = run_inprocess([command, *args, "--input-format", fmt, "-q"],
                               input=_table(records, delimiter))
        assert result.exit_code == 0, result.stderr
        assert result.stdout == expected.stdout, fmt


@pytest.mark.parametrize("command", COMMANDS)
def test_parquet_on_stdin_gives_the_jsonl_output(command):
    args, records = CASES[command]
    result = run_inprocess([command, *args, "--input-format", "parquet", "-q"],
                           input=_parquet(records))
    assert result.exit_code == 0, result.stderr
    assert result.stdout == _jsonl_result(command).stdout


@pytest.mark.parametrize("command", ["curate", "eval"])
def test_input_format_names_the_format_of_a_file_without_its_extension(command, tmp_path):
    args, records = CASES[command]
    path = tmp_path / "records.dat"
    path.write_bytes(_parquet(records))
    result = run_inprocess([command, str(path), *args, "--input-format", "parquet", "-q"])
    assert result.exit_code == 0, result.stderr
    assert result.records == _jsonl_result(command).records


@pytest.mark.parametrize("command", COMMANDS)
def test_csv_files_are_read_by_extension(command, tmp_path):
    args, records = CASES[command]
    path = tmp_path / "records.csv"
    path.write_text(_table(records))
    result = run_inprocess([command, str(path), *args, "-q"])
    assert result.exit_code == 0, result.stderr
    assert result.records == _jsonl_result(command).records


@pytest.mark.parametrize("command", COMMANDS)
def test_a_ragged_csv_row_is_an_error_at_its_line(command):
    args, records = CASES[command]
    lines = _table(records).splitlines()
    lines[2] += ",extra"  # the second data row, line 3
    result = run_inprocess([command, *args, "--input-format", "csv", "-q"],
                           input="\n".join(lines) + "\n")
    assert result.exit_code == 1
    assert f"rlscale {command}: <stdin>:3: ragged CSV row" in result.stderr


@pytest.mark.parametrize("command", [*COMMANDS, "fit"])
def test_an_unknown_input_format_is_a_usage_error(command):
    args, records = CASES.get(command, ([], [{"x": 1}]))
    result = run_inprocess([command, *args, "--input-format", "xls"], input=jsonl(records))
    assert result.exit_code == 2
    assert ("--input-format 'xls': expected one of jsonl, csv, tsv, parquet"
            in result.stderr)
    assert result.stdout == ""


@pytest.mark.parametrize("command", [*COMMANDS, "fit"])
def test_every_record_command_documents_both_options(command):
    result = run_inprocess([command, "--help"])
    assert result.exit_code == 0
    assert "--input-format" in result.stdout and "--wide" in result.stdout


def test_wide_table_becomes_records():
    # a wandb-style export: one step column, one column per prompt holding its reward
    text = "step,p1,p2\n1,1,0\n2,1,1\n3,,0\n"
    result = run_inprocess(["eval", "--wide", "step", "--prompt-field", "series",
                            "--reward-field", "value", "--by", "step", "--bootstrap", "0",
                            "--input-format", "csv", "-q"], input=text)
    assert result.exit_code == 0, result.stderr
    assert [(r["step"], r["n_prompts"], r["pass@1"]) for r in result.records] == [
        (1, 2, 0.5), (2, 2, 1.0), (3, 1, 0.0)]


def test_wide_row_without_the_step_cell_is_an_error_at_its_line():
    text = "step,p1\n1,1\n,0\n"
    result = run_inprocess(["eval", "--wide", "step", "--prompt-field", "series",
                            "--reward-field", "value", "--input-format", "csv", "-q"],
                           input=text)
    assert result.exit_code == 1
    assert "<stdin>:3: --wide step: no 'step' cell" in result.stderr


def test_flops_refuses_the_table_options_with_a_verl_log(tmp_path):
    log = tmp_path / "train.log"
    log.write_text("step:1 - response_length/mean:10\n")
    result = run_inprocess(["flops", "--from-verl-log", str(log), "--n-params", "5e8",
                            "--input-format", "csv"])
    assert result.exit_code == 2
    assert "--from-verl-log" in result.stderr


def test_rollout_reads_csv_on_stdin_like_jsonl(tiny_checkpoint):
    problems = [{"prompt_id": "p1", "prompt": "What is two plus two?"},
                {"prompt_id": "p2", "prompt": "Add one to x."}]
    args = ["rollout", "--model", tiny_checkpoint, "-n", "2", "--max-tokens", "4", "--seed", "5",
            "-q"]
    as_jsonl = run_inprocess(args, input=jsonl(problems))
    as_csv = run_inprocess([*args, "--input-format", "csv"], input=_table(problems))
    assert as_jsonl.exit_code == 0, as_jsonl.stderr
    assert as_csv.exit_code == 0, as_csv.stderr
    assert len(as_jsonl.records) == 4
    assert as_csv.stdout == as_jsonl.stdout


def test_rollout_refuses_an_unknown_input_format_before_loading_a_model(tmp_path):
    result = run_inprocess(["rollout", "--model", str(tmp_path / "no-such-model"),
                            "--input-format", "xls"], input="")
    assert result.exit_code == 2
    assert "--input-format 'xls': expected one of" in result.stderr
