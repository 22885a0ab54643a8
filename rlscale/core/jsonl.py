"""The one JSONL reader and writer every rlscale subcommand uses.

Reading is strict by default: a line that is not JSON, not an object, or fails a field check
raises :class:`RecordError` naming ``source:line``. Leniency is explicit: with
``skip_invalid=True`` bad lines are counted, optionally copied verbatim to a rejects file, and
skipped. Records are plain dicts; subcommands add their own fields and pass every other field
through unchanged.

Writing goes to stdout (flushed per record when it is a pipe, so downstream stages see records
as they are produced) or to a file written atomically (temp file + rename).
"""

from __future__ import annotations

import gzip
import math
import os
import stat
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from typing import IO, Any

import orjson

from rlscale.core.errors import RecordError, RlscaleError

STDIN = "-"

# Field kinds accepted by check_fields. "number" means int or float (not bool) and finite.
FIELD_KINDS = ("str", "number", "int", "bool", "list", "dict", "any", "str|number")


class Where:
    """Location of a record: source name, 1-based line number and the raw line bytes.

    A slotted class rather than a dataclass: one is made per input line, on the hot path.
    """

    __slots__ = ("source", "line", "raw")

    def __init__(self, source: str, line: int, raw: bytes = b""):
        self.source = source
        self.line = line
        self.raw = raw

    def __str__(self) -> str:
        return f"{self.source}:{self.line}"

    def __repr__(self) -> str:
        return f"Where({self.source!r}, {self.line})"


def _kind_ok(value: Any, kind: str) -> bool:
    if kind == "any":
        return True
    if kind == "str":
        return isinstance(value, str)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "list":
        return isinstance(value, list)
    if kind == "dict":
        return isinstance(value, dict)
    if kind == "str|number":
        return isinstance(value, str) or _kind_ok(value, "number")
    raise ValueError(f"unknown field kind {kind!r}; expected one of {FIELD_KINDS}")


def json_type_name(value: Any) -> str:
    """The JSON name of a value's type, for error messages (``null``, ``array``, ...)."""
    if value is None:
        return "null"
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "array",
            dict: "object"}.get(type(value), type(value).__name__)


MISSING = object()  # what get_path returns for an absent field (None is a present null)


def get_path(record: Mapping[str, Any], path: str) -> Any:
    """``record['a']['b']`` for ``path='a.b'``, or :data:`MISSING`; a key that itself contains
    a dot is tried whole first.

    >>> get_path({"extra_info": {"index": 7}}, "extra_info.index")
    7
    >>> get_path({"a.b": 1}, "a.b"), get_path({}, "a.b") is MISSING
    (1, True)
    """
    if path in record:
        return record[path]
    value: Any = record
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return MISSING
        value = value[part]
    return value


def check_fields(
    record: Mapping[str, Any],
    required: Mapping[str, str] | None = None,
    optional: Mapping[str, str] | None = None,
) -> None:
    """Check presence and kind of fields; raise ValueError with a user-facing message.

    >>> check_fields({"x": 1.5}, {"x": "number"})
    >>> check_fields({"x": "a"}, {"x": "number"})
    Traceback (most recent call last):
    ...
    ValueError: field 'x' must be a number, got string "a"
    """
    for fields, must in ((required or {}, True), (optional or {}, False)):
        for name, kind in fields.items():
            if name not in record or (not must and record[name] is None):
                if must:
                    raise ValueError(f"missing required field '{name}'")
                continue
            value = record[name]
            if not _kind_ok(value, kind):
                shown = orjson.dumps(value).decode()[:40]
                raise ValueError(
                    f"field '{name}' must be {'an' if kind[0] in 'aeiou' else 'a'} "
                    f"{kind.replace('str', 'string')}, got {json_type_name(value)} {shown}"
                )
            if kind in ("number", "str|number") and isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"field '{name}' must be finite, got {value}")


def finite_number(record: Mapping[str, Any], name: str) -> float:
    """Return a required finite numeric field as float, or raise ValueError with a clear message."""
    check_fields(record, {name: "number"})
    return float(record[name])


def _open_binary(path: str) -> IO[bytes]:
    if path == STDIN:
        return sys.stdin.buffer
    try:
        if path.endswith(".gz"):
            return gzip.open(path, "rb")
        return open(path, "rb")
    except FileNotFoundError:
        raise RlscaleError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise RlscaleError(f"{path}: is a directory, expected a JSONL file") from None
    except PermissionError:
        raise RlscaleError(f"{path}: permission denied") from None


def _looks_tabular(path: str) -> bool:
    """CSV/TSV/parquet by file name (rlscale.core.tables reads them)."""
    name = path.lower().removesuffix(".gz")
    return name.endswith((".csv", ".tsv", ".tab", ".parquet", ".pq"))


def parse_line(raw: bytes) -> dict[str, Any]:
    """Parse one JSONL line into a dict; raise ValueError with a user-facing message."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if b"NaN" in raw or b"Infinity" in raw:
            raise ValueError("invalid JSON: NaN/Infinity are not JSON numbers "
                             "(write null or drop the record)") from None
        msg = str(exc).split(": line ")[0]
        raise ValueError(f"invalid JSON: {msg}") from None
    if type(value) is not dict:
        raise ValueError(f"expected a JSON object, got {json_type_name(value)}")
    return value


class RecordReader:
    """Iterate over JSONL records from files or stdin, with line-numbered errors.

    Args:
        inputs: paths; ``-`` (or an empty list) means stdin. ``.gz`` files are decompressed.
        required / optional: field kinds checked on every record (see :func:`check_fields`).
        skip_invalid: skip bad lines instead of raising; ``n_skipped`` counts them.
        rejects: an open binary file that receives each skipped raw line.

    Iterating yields ``(record, where)``. Commands that check more than field kinds call
    :meth:`invalid` with the ``where`` of the record; it raises or skips by the same rule.
    """

    def __init__(
        self,
        inputs: Iterable[str] | None = None,
        *,
        required: Mapping[str, str] | None = None,
        optional: Mapping[str, str] | None = None,
        skip_invalid: bool = False,
        rejects: IO[bytes] | None = None,
        input_format: str | None = None,
        wide: str | None = None,
    ):
        self.input_format, self.wide = input_format, wide  # tables: see core/tables.py
        self.inputs = list(inputs or []) or [STDIN]
        self.required = dict(required or {})
        self.optional = dict(optional or {})
        self.skip_invalid = skip_invalid
        self.rejects = rejects
        self.n_skipped = 0
        self.n_read = 0

    def invalid(self, where: Where, message: str) -> None:
        """Report a bad record: raise RecordError, or count and skip it when skip_invalid."""
        if not self.skip_invalid:
            raise RecordError(where.source, where.line, message)
        self.n_skipped += 1
        if self.rejects is not None:
            self.rejects.write(where.raw.rstrip(b"\r\n") + b"\n")

    def __iter__(self) -> Iterator[tuple[dict[str, Any], Where]]:
        checked = bool(self.required or self.optional)
        for path in self.inputs:
            source = "<stdin>" if path == STDIN else path
            if (self.input_format or ("csv" if _looks_tabular(path) else "jsonl")) != "jsonl":
                yield from self._table(path, source, checked)
                continue
            handle = _open_binary(path)
            try:
                for line_no, raw in enumerate(handle, 1):
                    if not raw.strip():
                        continue  # blank lines (and a trailing newline) are not records
                    where = Where(source, line_no, raw)
                    try:
                        record = parse_line(raw)
                        if checked:
                            check_fields(record, self.required, self.optional)
                    except ValueError as exc:
                        self.invalid(where, str(exc))
                        continue
                    self.n_read += 1
                    yield record, where
            except (OSError, EOFError, gzip.BadGzipFile) as exc:
                if isinstance(exc, BrokenPipeError):
                    raise
                raise RlscaleError(f"{source}: cannot read: {exc}") from None
            finally:
                if handle is not sys.stdin.buffer:
                    handle.close()

    def _table(self, path: str, source: str, checked: bool) -> Iterator[tuple[dict, Where]]:
        from rlscale.core.tables import table_format, table_rows

        fmt = table_format(path, self.input_format) or "csv"
        for record, where in table_rows(path, source, fmt, self.invalid, Where, wide=self.wide):
            if checked:
                try:
                    check_fields(record, self.required, self.optional)
                except ValueError as exc:
                    self.invalid(where, str(exc))
                    continue
            self.n_read += 1
            yield record, where

    def records(self) -> Iterator[dict[str, Any]]:
        """Just the records, for callers that do not need locations."""
        for record, _ in self:
            yield record


def read_records(inputs: Iterable[str] | None = None, **kwargs: Any) -> list[dict[str, Any]]:
    """Read every record of ``inputs`` into a list (for commands that need all input)."""
    return list(RecordReader(inputs, **kwargs).records())


def dumps(record: Mapping[str, Any]) -> bytes:
    """Serialise one record as a JSON line (NaN/Inf become null, numpy types are accepted)."""
    return orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE | orjson.OPT_SERIALIZE_NUMPY
                        | orjson.OPT_NON_STR_KEYS)


class RecordWriter:
    """Write records as JSONL to stdout (``None`` or ``-``) or atomically to a file.

    Use as a context manager. A file output appears only when the block exits without an
    exception; until then records go to a temporary file in the same directory.
    """

    def __init__(self, output: str | None = None, *, flush_each: bool | None = None):
        self.output = None if output in (None, STDIN) else output
        self.n_written = 0
        self._tmp_path: str | None = None
        if self.output is None:
            self._handle: IO[bytes] = sys.stdout.buffer
            if flush_each is None:
                # flush per record when stdout is a pipe or terminal, so pipelines stream
                try:
                    flush_each = not stat.S_ISREG(os.fstat(sys.stdout.fileno()).st_mode)
                except (OSError, ValueError, AttributeError):
                    flush_each = True
        else:
            directory = os.path.dirname(os.path.abspath(self.output))
            if not os.path.isdir(directory):
                raise RlscaleError(f"{self.output}: directory {directory} does not exist")
            fd, self._tmp_path = tempfile.mkstemp(
                prefix=f".{os.path.basename(self.output)}.", suffix=".tmp", dir=directory)
            self._handle = os.fdopen(fd, "wb")
            flush_each = False
        self.flush_each = bool(flush_each)

    def write(self, record: Mapping[str, Any]) -> None:
        self._handle.write(dumps(record))
        self.n_written += 1
        if self.flush_each:
            self._handle.flush()

    def write_all(self, records: Iterable[Mapping[str, Any]]) -> None:
        for record in records:
            self.write(record)

    def close(self, ok: bool = True) -> None:
        if self._tmp_path is None:
            if ok:
                self._handle.flush()
            return
        self._handle.close()
        if ok:
            os.replace(self._tmp_path, self.output)  # atomic on POSIX
        else:
            os.unlink(self._tmp_path)
        self._tmp_path = None

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(ok=exc_type is None)


def atomic_write_bytes(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file + rename, so readers never see half a file."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
