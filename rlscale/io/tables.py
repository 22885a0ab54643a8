"""Tables as records: CSV, TSV and parquet files read the way JSONL lines are.

Researchers' learning curves come as wandb or pandas CSV exports and parquet files. Every row
becomes one record (a dict) with a :class:`~rlscale.io.jsonl.Where` naming ``file:line``, so
the rest of rlscale checks and reports them exactly as it does JSONL records.

* **CSV/TSV** (stdlib :mod:`csv`): the first row is the header; a cell that reads as a finite
  number becomes an int or float (``7e9``, ``0.5``, ``12``), an empty cell becomes null, every
  other cell stays a string -- so a text cell in a field a command needs as a number is reported
  by that command as ``file:line: field 'L' must be a number, got string "oops"``. A row with
  more or fewer cells than the header is an error at its line.
* **parquet** (pyarrow): columns keep their types; ``line`` is the 1-based row number.
* **wide tables** (``wide=STEP``, the shape of a wandb export: one step column and one column
  per run or metric) become one record per non-empty cell:
  ``{STEP: step, "series": column name, "value": cell}``.

The format comes from the file name (``.csv``, ``.tsv``, ``.parquet``, optionally ``.gz`` for the
text ones) or is given explicitly (``jsonl`` forces JSON lines).
"""

from __future__ import annotations

import csv
import gzip
import io
import math
import re
from collections.abc import Callable, Iterator
from typing import Any

from rlscale.core.errors import RecordError, RlscaleError

FORMATS = ("jsonl", "csv", "tsv", "parquet")
TABLE_FORMATS = ("csv", "tsv", "parquet")
WIDE_SERIES, WIDE_VALUE = "series", "value"

_EXTENSIONS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".parquet": "parquet", ".pq": "parquet"}
# what Python's float() accepts minus nan/inf, and without '_' separators
_NUMBER_RE = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")
_INT_RE = re.compile(r"^[+-]?\d+$")


def table_format(path: str, given: str | None = None) -> str | None:
    """The table format of ``path`` (``csv``, ``tsv``, ``parquet``), or None for JSONL.

    >>> table_format("runs.csv"), table_format("runs.TSV.gz"), table_format("a.jsonl")
    ('csv', 'tsv', None)
    >>> table_format("-", "parquet"), table_format("x.csv", "jsonl")
    ('parquet', None)
    """
    if given is not None:
        if given not in FORMATS:
            raise ValueError(f"unknown input format {given!r}; expected one of {', '.join(FORMATS)}")
        return None if given == "jsonl" else given
    name = path.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    for ext, fmt in _EXTENSIONS.items():
        if name.endswith(ext):
            return fmt
    return None


def typed_cell(text: str) -> Any:
    """A CSV cell as a value: finite numbers typed, empty -> None, anything else unchanged.

    >>> typed_cell("7e9"), typed_cell("12"), typed_cell(" 0.5 "), typed_cell(""), typed_cell("7B")
    (7000000000.0, 12, 0.5, None, '7B')
    >>> typed_cell("nan"), typed_cell("1_000")
    ('nan', '1_000')
    """
    stripped = text.strip()
    if not stripped:
        return None
    if _NUMBER_RE.match(stripped):
        if _INT_RE.match(stripped):
            return int(stripped)  # exact, also beyond 2**53
        value = float(stripped)
        if math.isfinite(value):
            return value
    return text


def _open_text(path: str, stdin: Callable[[], Any]) -> io.TextIOBase:
    from rlscale.io.jsonl import _open_binary  # one opener for every input (lazy: no cycle)

    raw = stdin() if path == "-" else _open_binary(path, expected="a table file")
    # utf-8-sig: Excel and some exporters start CSV files with a byte-order mark
    return io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")


def _delimited_rows(path: str, source: str, fmt: str, stdin: Callable[[], Any]
                    ) -> Iterator[tuple[dict[str, Any], int, bytes]]:
    handle = _open_text(path, stdin)
    try:
        reader = csv.reader(handle, delimiter="," if fmt == "csv" else "\t", strict=True)
        try:
            header = next(reader, None)
            if header is None:
                return
            names = [h.strip() for h in header]
            if any(not n for n in names):
                raise RecordError(source, reader.line_num, "the header row has an empty "
                                  "column name")
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise RecordError(source, reader.line_num, f"the header row repeats column "
                                  f"{', '.join(repr(d) for d in dupes)}")
            for cells in reader:
                line = reader.line_num
                if not cells or (len(cells) == 1 and not cells[0].strip()):
                    continue  # blank line
                raw = (",".join(cells) if fmt == "csv" else "\t".join(cells)).encode()
                if len(cells) != len(names):
                    yield {}, line, raw  # ragged: reported by the caller at its line
                    continue
                yield {n: typed_cell(c) for n, c in zip(names, cells, strict=True)}, line, raw
        except csv.Error as exc:
            raise RecordError(source, reader.line_num, f"cannot parse {fmt.upper()}: {exc}") from None
        except UnicodeDecodeError:
            raise RlscaleError(f"{source}: not valid UTF-8 text") from None
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        if isinstance(exc, BrokenPipeError):
            raise
        raise RlscaleError(f"{source}: cannot read: {exc}") from None
    finally:
        handle.close()


def _parquet_rows(path: str, source: str, stdin: Callable[[], Any]
                  ) -> Iterator[tuple[dict[str, Any], int, bytes]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        target = pa.BufferReader(stdin().read()) if path == "-" else path
        parquet = pq.ParquetFile(target)
    except FileNotFoundError:
        raise RlscaleError(f"{path}: no such file") from None
    except (pa.ArrowException, OSError) as exc:
        raise RlscaleError(f"{source}: not a readable parquet file ({exc})") from None
    row = 0
    for batch in parquet.iter_batches(batch_size=65536):
        for record in batch.to_pylist():
            row += 1
            yield record, row, b""


def table_rows(path: str, source: str, fmt: str, invalid: Callable[[Any, str], None],
               where_type: type, *, wide: str | None = None,
               stdin: Callable[[], Any] | None = None) -> Iterator[tuple[dict[str, Any], Any]]:
    """Records of one table file as ``(record, where)`` pairs.

    ``invalid(where, message)`` reports a bad row (a ragged one, or a wide row without the step
    column), raising or skipping like :meth:`RecordReader.invalid`.
    """
    import sys

    stdin = stdin or (lambda: sys.stdin.buffer)
    rows = (_parquet_rows(path, source, stdin) if fmt == "parquet"
            else _delimited_rows(path, source, fmt, stdin))
    n_columns = None
    for record, line, raw in rows:
        where = where_type(source, line, raw)
        if not record:
            invalid(where, f"ragged {fmt.upper()} row: the number of cells differs from the "
                           f"header's")
            continue
        if n_columns is None:
            n_columns = len(record)
        if wide is None:
            yield record, where
            continue
        if wide not in record or record[wide] is None:
            invalid(where, f"--wide {wide}: no '{wide}' cell in this row (columns: "
                           f"{', '.join(list(record)[:8])})")
            continue
        for name, value in record.items():
            if name != wide and value is not None:
                yield {wide: record[wide], WIDE_SERIES: name, WIDE_VALUE: value}, where
