"""Appending to a JSONL file that an interrupted run may have left behind (``rollout --resume``).

:class:`AppendedRecords` reads what the file holds after cutting off a partial last line;
:class:`AppendWriter` appends and flushes each record, so a killed run keeps what it wrote, and
ends the file with the end-of-stream record on success.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from typing import IO, Any

from rlscale.core.errors import RlscaleError
from rlscale.io.jsonl import (
    END_KEY,
    RecordReader,
    Where,
    dumps,
    end_records_enabled,
    records_since_end,
)


def drop_partial_last_line(path: str) -> int:
    """Truncate ``path`` after its last newline; return how many bytes were removed.

    A run killed mid-write can leave half a JSON line; appending after it would corrupt the next
    record too.
    """
    with open(path, "rb+") as handle:
        size = handle.seek(0, os.SEEK_END)
        if size == 0:
            return 0
        position = size
        block = 1 << 16
        while position > 0:
            start = max(0, position - block)
            handle.seek(start)
            chunk = handle.read(position - start)
            newline = chunk.rfind(b"\n")
            if newline != -1:
                keep = start + newline + 1
                break
            position = start
        else:
            keep = 0
        if keep < size:
            handle.truncate(keep)
        return size - keep


class AppendedRecords(RecordReader):
    """The records of ``path``, a file to be appended to, read lazily: iterating first cuts off a
    partial last line and calls ``dropped(n_bytes)`` when there was one."""

    def __init__(self, path: str, dropped: Callable[[int], None] | None = None):
        super().__init__([path])
        self._dropped = dropped

    def __iter__(self) -> Iterator[tuple[dict[str, Any], Where]]:
        n_bytes = drop_partial_last_line(self.inputs[0])
        if n_bytes and self._dropped is not None:
            self._dropped(n_bytes)
        yield from super().__iter__()


class AppendWriter:
    """Appends records to ``path`` and flushes each one, so an interrupted run keeps them.

    On success it ends the file with the end-of-stream record of ``tool``, counting the records
    since the file's last one (the earlier, interrupted runs' records are part of this batch),
    unless ``source`` (a reader) found its input incomplete.
    """

    def __init__(self, path: str, *, tool: str, source: Any = None):
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            raise RlscaleError(f"{path}: directory {directory} does not exist")
        self._tool = tool
        self._source = source
        self._count = records_since_end(path) if os.path.exists(path) else 0
        self._handle: IO[bytes] = open(path, "ab")

    def write(self, record: Mapping[str, Any]) -> None:
        self._handle.write(dumps(record))
        self._handle.flush()
        self._count += 1

    def __enter__(self) -> AppendWriter:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None and self._count and end_records_enabled() and not (
                self._source is not None and self._source.problems):
            self._handle.write(dumps({END_KEY: {"tool": self._tool, "records": self._count}}))
        self._handle.close()
