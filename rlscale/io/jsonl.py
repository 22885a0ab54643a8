"""The one JSONL reader and writer every rlscale subcommand uses.

Reading is strict by default: a line that is not JSON, not an object, or fails a field check
raises :class:`RecordError` naming ``source:line``. Leniency is explicit: with
``skip_invalid=True`` bad lines are counted, optionally copied verbatim to a rejects file, and
skipped. Records are plain dicts; subcommands add their own fields and pass every other field
through unchanged.

Writing goes to stdout (flushed per record when it is a pipe, so downstream stages see records
as they are produced) or to a file written atomically (temp file + rename, see
:class:`AtomicFile`, the one atomic writer of the project; ``.gz`` outputs are gzip).

Whole-batch semantics: a command that finishes successfully ends its output with one
end-of-stream record ``{"rlscale_end": {"tool": ..., "records": N}}`` (only if its own input was
complete). Every reader recognises it, checks the count, and never yields it as data; a stream
of rlscale samples (records with a ``sampling`` object) that stops without one, or whose count
does not match, is *incomplete*, and batch consumers refuse it (:meth:`RecordReader.require_complete`).
``RLSCALE_END_RECORD=0`` turns the mechanism off (nothing written, nothing required).

Batches (``--follow``): a long-running stage reads one stream as a series of batches, each
closed by an end-of-stream record (:class:`Batches`); it answers each batch with its output and
that output's own end record, and then waits for the next. So a loop that alternates sampling
and training pays the start-up of torch and transformers once, not once per step.
"""

from __future__ import annotations

import gzip
import io
import json
import math
import os
import re
import secrets
import signal
import stat
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import IO, Any

import orjson

from rlscale.core.errors import RecordError, RlscaleError, UsageError
from rlscale.core.records import (  # noqa: F401  (re-exported: the readers' field checks)
    FIELD_KINDS,
    MISSING,
    check_fields,
    field_problem,
    finite_number,
    get_path,
    json_type_name,
)

STDIN = "-"

END_KEY = "rlscale_end"
_END_PREFIX = b'{"' + END_KEY.encode() + b'"'
END_ENV = "RLSCALE_END_RECORD"
# orjson reads an integer above 2**64 as a float; a line holding a float that large is re-read by
# the standard library, which keeps every integer exact (a real float like 1e21 stays a float).
_BIG = 2.0**64
_GZIP_MAGIC = b"\x1f\x8b"


def end_records_enabled() -> bool:
    """Whether end-of-stream records are written and required (``RLSCALE_END_RECORD=0``: no)."""
    return os.environ.get(END_ENV, "1").strip().lower() not in ("0", "no", "false", "off")


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


def _gzip_stdin(handle: IO[bytes]) -> IO[bytes]:
    """stdin, decompressed when it starts with the gzip magic bytes."""
    if hasattr(handle, "peek"):
        head = handle.peek(2)[:2]
    elif handle.seekable():
        start = handle.tell()
        head = handle.read(2)
        handle.seek(start)
    else:
        return handle
    return gzip.GzipFile(fileobj=handle, mode="rb") if head == _GZIP_MAGIC else handle


def _open_binary(path: str, expected: str = "a JSONL file") -> IO[bytes]:
    """Open an input file (``.gz`` decompressed) or stdin; a missing path is one clear error."""
    if path == STDIN:
        return _gzip_stdin(sys.stdin.buffer)
    try:
        if path.endswith(".gz"):
            return gzip.open(path, "rb")
        return open(path, "rb")
    except FileNotFoundError:
        raise RlscaleError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise RlscaleError(f"{path}: is a directory, expected {expected}") from None
    except PermissionError:
        raise RlscaleError(f"{path}: permission denied") from None


def _looks_tabular(path: str) -> bool:
    """CSV/TSV/parquet by file name (rlscale.io.tables reads them)."""
    name = path.lower().removesuffix(".gz")
    return name.endswith((".csv", ".tsv", ".tab", ".parquet", ".pq"))


def _holds_big_float(record: dict[str, Any]) -> bool:
    """Whether any number in the record, at any depth, is a float of magnitude >= 2**64."""
    return _any_big_float(record.values())


def _any_big_float(values: Iterable[Any]) -> bool:
    """orjson reads an integer beyond 64 bits as a float; such a line is parsed again by the
    standard json module, which keeps it exact. This runs on every line, so an array of numbers
    (token ids, logprobs: the long ones) is cleared in one C call: ``math.hypot`` is at least
    its largest magnitude. Only arrays of other things (messages, strings, arrays) are walked.
    """
    for value in values:
        kind = type(value)
        if kind is float:
            if not -_BIG < value < _BIG:
                return True
        elif kind is dict:
            if _any_big_float(value.values()):
                return True
        elif kind is list and value:
            try:
                if not math.hypot(*value) < _BIG:
                    return True
            except TypeError:  # not all numbers: look at each element
                if _any_big_float(value):
                    return True
    return False


def parse_line(raw: bytes, *, replace_invalid_utf8: bool = False) -> dict[str, Any]:
    """Parse one JSONL line into a dict; raise ValueError with a user-facing message.

    ``replace_invalid_utf8``: bytes that are not UTF-8 become U+FFFD instead of an error (for
    ``reward``, where a model's broken bytes must still get a verdict, not lose the record).
    """
    if replace_invalid_utf8:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            raw = raw.decode("utf-8", errors="replace").encode("utf-8")
    try:
        value = orjson.loads(raw)
        if type(value) is dict and _holds_big_float(value):
            value = json.loads(raw)
    except orjson.JSONDecodeError as exc:
        if b"NaN" in raw or b"Infinity" in raw:
            raise ValueError("invalid JSON: NaN/Infinity are not JSON numbers "
                             "(write null or drop the record)") from None
        msg = str(exc).split(": line ")[0]
        raise ValueError(f"invalid JSON: {msg}") from None
    if type(value) is not dict:
        raise ValueError(f"expected a JSON object, got {json_type_name(value)}")
    return value


class Batches:
    """stdin read as a series of batches, each closed by an end-of-stream record (``--follow``).

    :meth:`wait` blocks until the next batch begins (or the stream ends); a
    :class:`RecordReader` made with ``batch=`` this object then yields that batch's records and
    stops after its end record, leaving the rest of the stream for the next batch. Line numbers
    count from the start of the stream. ``readline`` returns a line as soon as it has arrived,
    so a batch is answered without waiting for more input (bytes buffered beyond its end record
    stay in the handle for the next batch).
    """

    def __init__(self, handle: IO[bytes] | None = None):
        self.handle = sys.stdin.buffer if handle is None else handle
        self.line = 0
        self.count = 0  # batches begun
        self.ended = True  # the current batch's end record was read
        self.eof = False
        self._pending: bytes | None = None

    def wait(self) -> bool:
        """Block until the next batch's first line arrives (True) or the stream ends (False).

        Blank lines between batches are skipped."""
        if self.eof:
            return False
        if not self.ended:
            raise RlscaleError(f"internal error: batch {self.count} was not read to its end")
        while True:
            raw = self.handle.readline()
            if not raw:
                self.eof = True
                return False
            self.line += 1
            if raw.strip():
                self._pending, self.ended = raw, False
                self.count += 1
                return True

    def lines(self) -> Iterator[tuple[int, bytes]]:
        """``(line number, raw line)`` of the current batch, up to the stream's end (the reader
        stops at the batch's end record)."""
        if self._pending is not None:
            raw, self._pending = self._pending, None
            yield self.line, raw
        while True:
            raw = self.handle.readline()
            if not raw:
                self.eof = True
                return
            self.line += 1
            yield self.line, raw


class RecordReader:
    """Iterate over JSONL records from files or stdin, with line-numbered errors.

    Args:
        inputs: paths; ``-`` (or an empty list) means stdin. ``.gz`` files are decompressed.
        required / optional: field kinds checked on every record (see :func:`check_fields`).
        skip_invalid: skip bad lines instead of raising; ``n_skipped`` counts them.
        rejects: an open binary file that receives each skipped raw line.
        batch: read only the current batch of a :class:`Batches` stream (``--follow``); a
            batch that the stream ends inside of is incomplete.

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
        replace_invalid_utf8: bool = False,
        batch: Batches | None = None,
    ):
        self.replace_invalid_utf8 = replace_invalid_utf8  # see parse_line
        self.batch = batch  # read only the current batch of this stream (then ``inputs`` = stdin)
        if batch is not None and (inputs or input_format not in (None, "jsonl") or wide):
            raise UsageError("batches (--follow) are read from stdin as JSONL")
        self.input_format, self.wide = input_format, wide  # tables: see io/tables.py
        self.inputs = list(inputs or []) or [STDIN]
        self.required = dict(required or {})
        self.optional = dict(optional or {})
        self.skip_invalid = skip_invalid
        self.rejects = rejects
        self.n_skipped = 0
        self.n_read = 0
        self.n_end_records = 0
        self.problems: list[str] = []  # why the input is incomplete, filled while reading

    def fields_ok(self, record: Mapping[str, Any], where: Any) -> bool:
        """Check the required/optional field kinds; a bad record goes to :meth:`invalid`."""
        problem = field_problem(record, self.required, self.optional)
        if problem is not None:
            self.invalid(where, problem)
        return problem is None

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
            if self.batch is not None:
                handle, lines = None, self.batch.lines()
            else:
                handle = _open_binary(path)
                lines = enumerate(handle, 1)
            # a segment is the run of data lines since the source's start or its last end record
            segment, from_rlscale, ends = 0, False, 0
            try:
                for line_no, raw in lines:
                    if not raw.strip():
                        continue  # blank lines (and a trailing newline) are not records
                    where = Where(source, line_no, raw)
                    if raw.startswith(_END_PREFIX) and self._end_record(raw, where, segment):
                        segment, from_rlscale, ends = 0, False, ends + 1
                        if self.batch is not None:
                            self.batch.ended = True
                            break  # the batch is complete; the stream stays open for the next
                        continue
                    segment += 1
                    try:
                        record = parse_line(raw, replace_invalid_utf8=self.replace_invalid_utf8)
                        if checked:
                            check_fields(record, self.required, self.optional)
                    except ValueError as exc:
                        self.invalid(where, str(exc))
                        continue
                    if not from_rlscale and type(record.get("sampling")) is dict:
                        from_rlscale = True  # rlscale rollouts echo their sampling settings
                    self.n_read += 1
                    yield record, where
            except (OSError, EOFError, gzip.BadGzipFile) as exc:
                if isinstance(exc, BrokenPipeError):
                    raise
                raise RlscaleError(f"{source}: cannot read: {exc}") from None
            finally:
                if handle is not None and handle is not sys.stdin.buffer:
                    handle.close()
            if self.batch is not None and not self.batch.ended:
                self.problems.append(
                    f"{source} ends after {segment} record(s) of a batch without the "
                    "end-of-stream record that closes each batch of --follow (the writer "
                    "failed or was stopped, or the stream was cut)")
            elif segment and (from_rlscale or ends):
                self.problems.append(
                    f"{source} ends after {segment} record(s) without the end-of-stream record "
                    "rlscale writes on success (a stage before failed or was stopped, or the "
                    "stream was cut, e.g. by head)")
            self.n_end_records += ends

    def _table(self, path: str, source: str, checked: bool) -> Iterator[tuple[dict, Where]]:
        from rlscale.io.tables import table_format, table_rows

        fmt = table_format(path, self.input_format) or "csv"
        for record, where in table_rows(path, source, fmt, self.invalid, Where, wide=self.wide):
            if checked and not self.fields_ok(record, where):
                continue
            self.n_read += 1
            yield record, where

    def _end_record(self, raw: bytes, where: Where, segment: int) -> bool:
        """Check an end-of-stream line against the segment it closes; False if it is data."""
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return False
        if type(value) is not dict or len(value) != 1:
            return False
        end = value.get(END_KEY)
        if end is None:
            return False
        count = end.get("records") if type(end) is dict else None
        if type(count) is not int or count < 0:
            self.problems.append(f"{where}: malformed end-of-stream record")
        elif count != segment:
            tool = end.get("tool", "?")
            self.problems.append(
                f"{where}: rlscale {tool} wrote {count} record(s) but {segment} arrived (lines "
                "were lost or added on the way, e.g. by a filter)")
        return True

    @property
    def complete(self) -> bool:
        """After reading everything: no input was cut short (see the module docstring)."""
        return not self.problems

    def require_complete(self, consequence: str) -> None:
        """Refuse an incomplete batch: raise RlscaleError naming what is missing.

        Call after reading all input and before acting on it (loading a model, writing).
        """
        require_complete(self.problems, consequence)

    def records(self) -> Iterator[dict[str, Any]]:
        """Just the records, for callers that do not need locations."""
        for record, _ in self:
            yield record


def require_complete(problems: list[str], consequence: str) -> None:
    """Raise RlscaleError for the first reason a batch is incomplete (none: return)."""
    if problems and end_records_enabled():
        raise RlscaleError(f"incomplete input: {problems[0]}: {consequence}")


def read_records(inputs: Iterable[str] | None = None, **kwargs: Any) -> list[dict[str, Any]]:
    """Read every record of ``inputs`` into a list (for commands that need all input)."""
    return list(RecordReader(inputs, **kwargs).records())


def dumps(record: Mapping[str, Any]) -> bytes:
    """Serialise one record as a JSON line (NaN/Inf become null, numpy types are accepted;
    integers beyond 64 bits, which orjson cannot hold, are written exactly)."""
    try:
        return orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE | orjson.OPT_SERIALIZE_NUMPY
                            | orjson.OPT_NON_STR_KEYS)
    except TypeError as exc:
        if "64-bit" not in str(exc):
            raise
        return json.dumps(_plain(record), ensure_ascii=False, separators=(",", ":"),
                          allow_nan=False).encode() + b"\n"


def _plain(value: Any) -> Any:
    """A value the standard json module writes as orjson would (the rare big-integer path)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {k if isinstance(k, str) else str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return _plain(value.tolist())
    return value


# --- the one atomic file writer ----------------------------------------------------------------

_LIVE_TEMPS: set[str] = set()  # temp files of this process, removed on SIGTERM
_SIGTERM_LOCK = threading.Lock()
_sigterm_installed = False
# a forked child (a grading worker, which its pool may end with SIGTERM) owns none of them
os.register_at_fork(after_in_child=_LIVE_TEMPS.clear)


def _on_sigterm(signum, frame) -> None:
    for path in list(_LIVE_TEMPS):
        with _suppress_oserror():
            os.unlink(path)
    _LIVE_TEMPS.clear()
    previous = _previous_sigterm
    if callable(previous):
        previous(signum, frame)
        return
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)  # die of the signal, as without this handler


_previous_sigterm: Any = None


def _install_sigterm_cleanup() -> None:
    """Remove this process's temp files when it is terminated (kill, timeout, a scheduler)."""
    global _sigterm_installed, _previous_sigterm
    with _SIGTERM_LOCK:
        if _sigterm_installed or threading.current_thread() is not threading.main_thread():
            return
        previous = signal.getsignal(signal.SIGTERM)
        if previous is signal.SIG_IGN:
            return
        _previous_sigterm = previous if callable(previous) else None
        signal.signal(signal.SIGTERM, _on_sigterm)
        _sigterm_installed = True


class _suppress_oserror:
    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        return exc_type is not None and issubclass(exc_type, OSError)


_TEMP_NAME = re.compile(r"\.(?P<base>.+)\.(?P<pid>[0-9]+)-[0-9a-f]{8}\.tmp\Z")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def remove_stale_temps(path: str) -> list[str]:
    """Remove temp files of ``path`` left by writers that no longer run (kill -9, power loss);
    a live writer's temp file is kept. Returns the removed paths."""
    directory = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path)
    removed = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        match = _TEMP_NAME.match(name)
        if match and match["base"] == base and not _pid_alive(int(match["pid"])):
            with _suppress_oserror():
                os.unlink(os.path.join(directory, name))
                removed.append(os.path.join(directory, name))
    return removed


class AtomicFile:
    """A file that appears at ``path`` complete or not at all: written to a temp file in the
    same directory, renamed over ``path`` by :meth:`commit`, removed by :meth:`abort` (and on
    SIGTERM). The file gets the mode the umask allows, as ``open`` would give it; ``.gz`` paths
    are gzip-compressed unless ``compress=False``.
    """

    def __init__(self, path: str, *, compress: bool | None = None):
        self.path = path
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            raise RlscaleError(f"{path}: directory {directory} does not exist")
        if os.path.isdir(path):
            raise RlscaleError(f"{path}: is a directory, expected a file")
        remove_stale_temps(path)
        _install_sigterm_cleanup()
        # the pid in the name lets a later run tell a dead writer's leftover from a live one
        self.tmp_path = os.path.join(
            directory, f".{os.path.basename(path)}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
        _LIVE_TEMPS.add(self.tmp_path)  # before it exists: a SIGTERM right after open removes it
        try:
            fd = os.open(self.tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                         0o666)
        except BaseException:
            _LIVE_TEMPS.discard(self.tmp_path)
            raise
        self._raw = os.fdopen(fd, "wb")
        if compress is None:
            compress = path.endswith(".gz")
        self.handle: IO[bytes] = (gzip.GzipFile(fileobj=self._raw, mode="wb", mtime=0,
                                                compresslevel=6, filename="")
                                  if compress else self._raw)
        self.done = False

    def _close(self) -> None:
        if self.handle is not self._raw:
            self.handle.close()
        self._raw.close()

    def commit(self) -> None:
        if self.done:
            return
        self.done = True
        try:
            self._close()
            os.replace(self.tmp_path, self.path)  # atomic on POSIX
        except BaseException:
            with _suppress_oserror():
                os.unlink(self.tmp_path)
            raise
        finally:
            _LIVE_TEMPS.discard(self.tmp_path)

    def abort(self) -> None:
        if self.done:
            return
        self.done = True
        with _suppress_oserror():
            self._close()
        with _suppress_oserror():
            os.unlink(self.tmp_path)
        _LIVE_TEMPS.discard(self.tmp_path)

    def __enter__(self) -> AtomicFile:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


def atomic_write_bytes(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, so readers never see half a file."""
    with AtomicFile(path, compress=False) as out:
        out.handle.write(data)


def refuse_overlap(outputs: Mapping[str, str | None], inputs: Iterable[str] | None) -> None:
    """Usage error when an output file is also an input or another output (it would be
    replaced while it is read, or one output would overwrite the other)."""
    seen: dict[str, str] = {}

    def key(path: str) -> str:
        return os.path.realpath(path)

    for path in inputs or []:
        if path not in (None, STDIN):
            seen.setdefault(key(path), f"input {path}")
    for option, path in outputs.items():
        if path in (None, STDIN):
            continue
        other = seen.get(key(path))
        if other is not None:
            raise UsageError(f"{option} {path} is also the {other}: write to another file")
        seen[key(path)] = f"{option} file"


class RecordWriter:
    """Write records as JSONL to stdout (``None`` or ``-``) or atomically to a file.

    Use as a context manager. A file output appears only when the block exits without an
    exception; until then records go to a temporary file in the same directory.

    With ``tool`` set, a successful close ends the output with the end-of-stream record, unless
    a reader given as ``source`` (or via :meth:`follow`) found its input incomplete: a stage
    never vouches for more than it got. ``inputs`` are checked against ``output`` (see
    :func:`refuse_overlap`).
    """

    def __init__(self, output: str | None = None, *, flush_each: bool | None = None,
                 tool: str | None = None, source: RecordReader | None = None,
                 inputs: Iterable[str] | None = None, batch: bool = False):
        self.output = None if output in (None, STDIN) else output
        # an answer to one batch of --follow: always ended (empty or at a terminal too), since
        # the end record is what tells the other side that the answer is complete
        self.batch = batch
        self.ended = False
        if inputs is not None:
            refuse_overlap({"-o": self.output}, inputs)
        self.n_written = 0
        self.tool = tool
        self.sources: list[Any] = [source] if source is not None else []
        self._file: AtomicFile | None = None
        self.closed = False
        if self.output is None:
            self._handle: IO[bytes] = sys.stdout.buffer
            if flush_each is None:
                # flush per record when stdout is a pipe or terminal, so pipelines stream
                try:
                    flush_each = not stat.S_ISREG(os.fstat(sys.stdout.fileno()).st_mode)
                except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
                    flush_each = True
        else:
            self._file = AtomicFile(self.output)
            self._handle = self._file.handle
            flush_each = False
        self.flush_each = bool(flush_each)

    def follow(self, reader: Any) -> None:
        """Vouch for completeness only if ``reader``'s input was complete."""
        self.sources.append(reader)

    def write(self, record: Mapping[str, Any]) -> None:
        self._handle.write(dumps(record))
        self.n_written += 1
        if self.flush_each:
            self._handle.flush()

    def write_all(self, records: Iterable[Mapping[str, Any]]) -> None:
        for record in records:
            self.write(record)

    def incomplete_reason(self) -> str | None:
        for source in self.sources:
            if source.problems:
                return source.problems[0]
        return None

    def _end(self) -> None:
        if self.tool is None or not end_records_enabled() or self.incomplete_reason():
            return
        if not self.batch:
            # empty output stays empty: nothing downstream can act on it anyway
            if not self.n_written:
                return
            if self._file is None and _isatty(self._handle):
                return  # a person reading a terminal needs no end record
        self._handle.write(dumps({END_KEY: {"tool": self.tool, "records": self.n_written}}))
        self.ended = True

    def close(self, ok: bool = True) -> None:
        if self.closed:
            return
        self.closed = True
        if ok:
            self._end()
        if self._file is None:
            if ok:
                self._handle.flush()
            return
        if ok:
            self._file.commit()
        else:
            self._file.abort()

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(ok=exc_type is None)


def _isatty(handle: Any) -> bool:
    try:
        return bool(handle.isatty())
    except (ValueError, AttributeError):
        return False


def records_since_end(path: str) -> int:
    """How many non-blank lines follow the last end-of-stream record of a plain JSONL file
    (what an appending writer's end record must count)."""
    count = 0
    with open(path, "rb") as handle:
        for raw in handle:
            if raw.startswith(_END_PREFIX):
                count = 0
            elif raw.strip():
                count += 1
    return count
