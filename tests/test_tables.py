"""CSV, TSV and parquet input (rlscale.io.tables through the shared record reader)."""

from __future__ import annotations

import csv
import math

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rlscale.core.errors import RecordError
from rlscale.io.jsonl import RecordReader
from rlscale.io.tables import table_format, typed_cell
from tests.conftest import jsonl, run_inprocess


def _curves(steps: int = 12) -> list[dict]:
    """Two sizes, one run each, from a saturating law with K_max 0.13, N_0 13.8B."""
    rows = []
    for n, e in ((1.5e9, 0.21), (7e9, 0.70), (32e9, 1.54)):
        k = 0.13 / (1 + 13.8e9 / n)
        for s in range(1, steps + 1):
            c = 1e17 * s * n / 1e9
            rows.append({"run_id": f"r{int(n)}", "N": n, "step": s, "C": c,
                         "loss": 10 ** (e - k * math.log10(c))})
    return rows


def _write_csv(path, rows, delimiter=","):
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), delimiter=delimiter)
        writer.writeheader()
        writer.writerows(rows)


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_finite_floats_round_trip_through_their_text(value):
    assert typed_cell(repr(value)) == value


@given(st.integers(min_value=-(10 ** 30), max_value=10 ** 30))
def test_integers_stay_exact_ints(value):
    cell = typed_cell(str(value))
    assert type(cell) is int and cell == value


@given(st.text(alphabet="abcxyzBM_-/ ", min_size=1))
def test_text_cells_stay_text_and_blank_is_null(text):
    expected = None if not text.strip() else text
    assert typed_cell(text) == expected


def test_format_by_extension_or_given():
    assert [table_format(p) for p in ("a.csv", "a.tsv", "a.parquet", "a.csv.gz", "a.jsonl")] == [
        "csv", "tsv", "parquet", "csv", None]
    assert table_format("a.jsonl", "csv") == "csv" and table_format("a.csv", "jsonl") is None
    with pytest.raises(ValueError, match="unknown input format 'xls'"):
        table_format("a", "xls")


def test_csv_rows_are_typed_records_with_line_numbers(tmp_path):
    path = tmp_path / "runs.csv"
    path.write_text('model,N,step,L,note\n7B,7e9,1,0.9,"a, quoted"\n7B,7e9,2,0.85,\n')
    got = [(rec, str(where)) for rec, where in RecordReader([str(path)])]
    assert got == [({"model": "7B", "N": 7e9, "step": 1, "L": 0.9, "note": "a, quoted"},
                    f"{path}:2"),
                   ({"model": "7B", "N": 7e9, "step": 2, "L": 0.85, "note": None}, f"{path}:3")]


def test_ragged_row_is_an_error_at_its_line_or_skipped(tmp_path):
    path = tmp_path / "runs.csv"
    path.write_text("N,step,L\n7e9,1,0.9\n7e9,2\n7e9,3,0.8\n")
    with pytest.raises(RecordError) as info:
        list(RecordReader([str(path)]))
    assert str(info.value) == f"{path}:3: ragged CSV row: the number of cells differs from the header's"
    reader = RecordReader([str(path)], skip_invalid=True)
    assert [r["step"] for r in reader.records()] == [1, 3] and reader.n_skipped == 1


def test_fit_reads_csv_tsv_and_parquet_like_jsonl(tmp_path):
    rows = _curves()
    (tmp_path / "runs.jsonl").write_text(jsonl(rows))
    _write_csv(tmp_path / "runs.csv", rows)
    _write_csv(tmp_path / "runs.tsv", rows, delimiter="\t")
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "runs.parquet")
    fits = {}
    for name in ("runs.jsonl", "runs.csv", "runs.tsv", "runs.parquet"):
        result = run_inprocess(["fit", str(tmp_path / name), "-q"])
        assert result.exit_code == 0, result.stderr
        fits[name] = result.records[0]["params"]
    assert fits["runs.jsonl"]["K_max"] == pytest.approx(0.13, abs=1e-6)
    for name in ("runs.csv", "runs.tsv", "runs.parquet"):
        assert fits[name]["K_max"] == pytest.approx(fits["runs.jsonl"]["K_max"], rel=1e-9)
        assert fits[name]["N_0"] == pytest.approx(fits["runs.jsonl"]["N_0"], rel=1e-9)
        assert fits[name]["E"] == pytest.approx(fits["runs.jsonl"]["E"], rel=1e-9)


def test_input_format_option_reads_a_csv_from_stdin(tmp_path):
    rows = _curves()
    _write_csv(tmp_path / "runs.csv", rows)
    text = (tmp_path / "runs.csv").read_text()
    result = run_inprocess(["fit", "--input-format", "csv", "-q"], input=text)
    assert result.exit_code == 0, result.stderr
    assert result.records[0]["params"]["K_max"] == pytest.approx(0.13, abs=1e-6)
    bad = run_inprocess(["fit", "--input-format", "xls"], input=text)
    assert bad.exit_code == 2 and "--input-format" in bad.stderr


def test_text_cell_in_a_numeric_field_names_file_and_line(tmp_path):
    path = tmp_path / "runs.csv"
    rows = _curves(4)
    _write_csv(path, rows)
    lines = path.read_text().splitlines()
    lines[3] = lines[3].rsplit(",", 1)[0] + ",oops"
    path.write_text("\n".join(lines) + "\n")
    result = run_inprocess(["fit", str(path)])
    assert result.exit_code == 1
    assert result.stderr.strip() == (f'rlscale fit: {path}:4: field \'loss\' must be a number, '
                                     f'got string "oops"')


def test_ragged_csv_row_stops_fit_with_one_line(tmp_path):
    path = tmp_path / "runs.csv"
    _write_csv(path, _curves(4))
    with open(path, "a") as handle:
        handle.write("r1,7e9\n")
    result = run_inprocess(["fit", str(path)])
    assert result.exit_code == 1
    assert result.stderr.strip() == (f"rlscale fit: {path}:14: ragged CSV row: the number of "
                                     f"cells differs from the header's")


def test_wide_table_becomes_one_record_per_cell(tmp_path):
    # the wandb export shape: one step column and one loss column per run
    rows = _curves()
    by_run: dict[str, dict[int, float]] = {}
    for r in rows:
        by_run.setdefault(f"Qwen2.5-{r['N'] / 1e9:g}B", {})[r["step"]] = r["loss"]
    path = tmp_path / "wide.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["step", *by_run])
        for s in range(1, 13):
            writer.writerow([s, *(by_run[name][s] if s != 5 or name != "Qwen2.5-7B" else ""
                                  for name in by_run)])
    records = list(RecordReader([str(path)], wide="step").records())
    assert len(records) == 3 * 12 - 1  # the empty cell is no record
    assert records[0] == {"step": 1, "series": "Qwen2.5-1.5B", "value": by_run["Qwen2.5-1.5B"][1]}
    # fitted against step with the size read from the column name
    result = run_inprocess(["fit", str(path), "--wide", "step", "--x", "step", "--y", "value",
                            "--group", "series", "-q"])
    assert result.exit_code == 0, result.stderr
    assert list(result.records[0]["params"]["E"]) == ["Qwen2.5-1.5B", "Qwen2.5-7B", "Qwen2.5-32B"]


def test_other_commands_read_csv_too(tmp_path):
    path = tmp_path / "steps.csv"
    path.write_text("run_id,N,step,n_tokens,n_prompts\na,7e9,1,1000,4\na,7e9,2,3000,4\n")
    result = run_inprocess(["flops", str(path)])
    assert result.exit_code == 0, result.stderr
    assert [r["C"] for r in result.records] == [6 * 7e9 * 1000, 6 * 7e9 * 4000]


def test_parquet_that_is_not_parquet_is_one_line(tmp_path):
    path = tmp_path / "runs.parquet"
    path.write_text("not parquet\n")
    result = run_inprocess(["fit", str(path)])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"rlscale fit: {path}: not a readable parquet file")
    assert len(result.stderr.strip().splitlines()) == 1


_cell = st.one_of(st.integers(min_value=-(10 ** 20), max_value=10 ** 20),
                  st.floats(allow_nan=False, allow_infinity=False),
                  st.text(alphabet="abc ,\"'\t;xyz", min_size=1).filter(
                      lambda t: t.strip() and typed_cell(t) == t), st.none())


@given(st.lists(st.fixed_dictionaries({"a": _cell, "b": _cell, "c": _cell}), min_size=1,
                max_size=20), st.sampled_from([",", "\t"]))
def test_any_table_written_by_the_csv_module_reads_back_as_its_values(tmp_path_factory, rows,
                                                                         delimiter):
    path = tmp_path_factory.mktemp("rt") / ("t.csv" if delimiter == "," else "t.tsv")
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle, delimiter=delimiter)
        writer.writerow(["a", "b", "c"])
        for row in rows:
            writer.writerow(["" if v is None else repr(v) if isinstance(v, float) else v
                             for v in (row["a"], row["b"], row["c"])])
    got = list(RecordReader([str(path)]).records())
    assert got == [{"a": r["a"], "b": r["b"], "c": r["c"]} for r in rows]


def test_parquet_on_stdin_and_gzipped_csv(tmp_path):
    import gzip
    import subprocess
    import sys

    rows = _curves()
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "runs.parquet")
    _write_csv(tmp_path / "runs.csv", rows)
    with open(tmp_path / "runs.csv", "rb") as src, gzip.open(tmp_path / "runs.csv.gz", "wb") as dst:
        dst.write(src.read())
    proc = subprocess.run([sys.executable, "-m", "rlscale", "fit", "--input-format", "parquet",
                           "-q"], input=(tmp_path / "runs.parquet").read_bytes(),
                          capture_output=True)
    assert proc.returncode == 0, proc.stderr
    gz = run_inprocess(["fit", str(tmp_path / "runs.csv.gz"), "-q"])
    assert gz.exit_code == 0, gz.stderr
    import orjson

    assert orjson.loads(proc.stdout.split(b"\n")[0])["params"]["K_max"] == pytest.approx(
        gz.records[0]["params"]["K_max"], rel=1e-12)


def test_duplicated_run_step_rows_in_a_csv_name_both_lines(tmp_path):
    path = tmp_path / "runs.csv"
    rows = _curves(4)
    _write_csv(path, rows + [rows[1]])
    result = run_inprocess(["fit", str(path)])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"rlscale fit: {path}:14: duplicate record: run "
                                    f"'r1500000000' already has step 2 (at {path}:3)")
