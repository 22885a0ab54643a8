"""The JSONL contract: one reader, one writer, line-numbered errors, atomic files."""

from __future__ import annotations

import io
import json
import os
import sys

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rlscale.core.errors import RecordError, RlscaleError
from rlscale.io.jsonl import RecordReader, RecordWriter, check_fields, read_records


def write(tmp_path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def test_reads_records_with_locations_and_skips_blank_lines(tmp_path):
    path = write(tmp_path, "a.jsonl", b'{"a": 1}\n\n   \n{"a": 2}\r\n{"a": 3}')  # CRLF, no EOL at EOF
    got = [(rec["a"], where.line) for rec, where in RecordReader([path])]
    assert got == [(1, 1), (2, 4), (3, 5)]


def test_reads_several_files_in_order_and_gzip(tmp_path):
    import gzip

    first = write(tmp_path, "a.jsonl", b'{"i": 1}\n')
    second = str(tmp_path / "b.jsonl.gz")
    with gzip.open(second, "wb") as handle:
        handle.write(b'{"i": 2}\n{"i": 3}\n')
    assert [r["i"] for r in read_records([first, second])] == [1, 2, 3]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"{not json}", "invalid JSON: unexpected character, expected a string key"),
        (b"[1, 2]", "expected a JSON object, got array"),
        (b"42", "expected a JSON object, got integer"),
        (b"null", "expected a JSON object, got null"),
        (b'{"x": NaN}', "invalid JSON: NaN/Infinity are not JSON numbers (write null or drop the record)"),
        (b'{"x": -Infinity}', "invalid JSON: NaN/Infinity are not JSON numbers (write null or drop the record)"),
        (b'{"x": 1e999}', "invalid JSON: number is infinity when parsed as double"),
        (b'\xff\xfe{"x": 1}', "invalid JSON: str is not valid UTF-8"),
    ],
)
def test_bad_lines_name_file_and_line(tmp_path, line, message):
    path = write(tmp_path, "bad.jsonl", b'{"x": 1}\n' + line + b"\n")
    with pytest.raises(RecordError) as info:
        list(RecordReader([path], required={"x": "number"}))
    assert info.value.line == 2
    assert str(info.value).startswith(f"{path}:2: ")
    assert info.value.message.startswith(message)


@pytest.mark.parametrize(
    ("record", "required", "message"),
    [
        ({}, {"x": "number"}, "missing required field 'x'"),
        ({"x": "1"}, {"x": "number"}, 'field \'x\' must be a number, got string "1"'),
        ({"x": True}, {"x": "number"}, "field 'x' must be a number, got boolean true"),
        ({"x": 1.5}, {"x": "int"}, "field 'x' must be an int, got number 1.5"),
        ({"x": 1}, {"x": "str"}, "field 'x' must be a string, got integer 1"),
        ({"x": [1]}, {"x": "dict"}, "field 'x' must be a dict, got array [1]"),
    ],
)
def test_field_checks_give_clear_messages(record, required, message):
    with pytest.raises(ValueError) as info:
        check_fields(record, required)
    assert str(info.value) == message


def test_non_finite_numbers_are_rejected():
    with pytest.raises(ValueError, match="field 'x' must be finite, got nan"):
        check_fields({"x": float("nan")}, {"x": "number"})
    with pytest.raises(ValueError, match="field 'x' must be finite, got inf"):
        check_fields({"x": float("inf")}, {}, {"x": "number"})


def test_optional_fields_may_be_missing_or_null():
    check_fields({"y": None}, {}, {"x": "number", "y": "number"})


def test_skip_invalid_counts_and_writes_rejects(tmp_path):
    path = write(tmp_path, "mixed.jsonl", b'{"x": 1}\nnope\n{"y": 2}\n{"x": 3}\n')
    rejects = io.BytesIO()
    reader = RecordReader([path], required={"x": "number"}, skip_invalid=True, rejects=rejects)
    assert [r["x"] for r in reader.records()] == [1, 3]
    assert reader.n_skipped == 2
    assert rejects.getvalue() == b'nope\n{"y": 2}\n'


def test_missing_file_is_a_one_line_error(tmp_path):
    with pytest.raises(RlscaleError, match=r"nope\.jsonl: no such file"):
        list(RecordReader([str(tmp_path / "nope.jsonl")]))


def test_empty_input_yields_nothing(tmp_path):
    assert read_records([write(tmp_path, "empty.jsonl", b"")]) == []


@given(st.binary(max_size=200))
def test_any_bytes_give_records_or_a_record_error(data):
    """Whatever bytes arrive, the reader either yields dicts or raises RecordError, nothing else."""
    reader = RecordReader(["-"])
    old = sys.stdin
    sys.stdin = io.TextIOWrapper(io.BytesIO(data))
    try:
        for record, where in reader:
            assert isinstance(record, dict)
            assert where.line >= 1
    except RecordError as exc:
        assert exc.line >= 1 and exc.source == "<stdin>"
    finally:
        sys.stdin = old


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text()
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


@given(st.lists(st.dictionaries(st.text(max_size=8), json_values, max_size=5), max_size=5))
def test_writer_then_reader_round_trips(records):
    buffer = io.BytesIO()
    writer = RecordWriter.__new__(RecordWriter)
    writer.output, writer.n_written, writer._tmp_path = None, 0, None
    writer._handle, writer.flush_each = buffer, False
    writer.write_all(records)
    lines = [line for line in buffer.getvalue().split(b"\n") if line]
    assert len(lines) == len(records)
    assert [orjson.loads(line) for line in lines] == [json.loads(line) for line in lines] == records


def test_file_output_is_atomic(tmp_path):
    target = tmp_path / "out.jsonl"
    target.write_bytes(b'{"old": true}\n')
    with pytest.raises(RuntimeError), RecordWriter(str(target)) as writer:
        writer.write({"new": 1})
        raise RuntimeError("crash mid-write")
    assert target.read_bytes() == b'{"old": true}\n'  # untouched
    assert os.listdir(tmp_path) == ["out.jsonl"]  # no temp file left behind
    with RecordWriter(str(target)) as writer:
        writer.write({"new": 1})
    assert target.read_bytes() == b'{"new":1}\n'


def test_writer_serialises_numpy_and_non_finite_as_null(tmp_path):
    import numpy as np

    target = tmp_path / "o.jsonl"
    with RecordWriter(str(target)) as writer:
        writer.write({"a": np.float64(0.5), "b": np.int64(3), "c": float("nan"), 1: "k"})
    assert orjson.loads(target.read_bytes()) == {"a": 0.5, "b": 3, "c": None, "1": "k"}
