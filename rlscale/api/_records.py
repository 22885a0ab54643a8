"""Records in, records out: how the API functions take their input.

Every API function takes ``records``: any iterable of dicts (a list, a generator, a
:class:`~rlscale.io.jsonl.RecordReader`). :func:`located` pairs each record with where it came
from and gives the function one way to refuse a record, so the same function body serves a
notebook (a bad record raises :class:`~rlscale.core.errors.RecordError` naming its index) and
the command line (the reader's ``file:line``, ``--skip-invalid`` and ``--rejects``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from rlscale.core.errors import RecordError

SOURCE = "<records>"  # how a record from a plain iterable is named in errors ("<records>:3")


def _strict(where: Any, message: str) -> None:
    raise RecordError(where.source, where.line, message)


class Located:
    """``for record, where in located``; ``located.invalid(where, why)`` refuses one record
    (raises, or skips it when the reader was opened with ``--skip-invalid``)."""

    def __init__(self, records: Iterable[Mapping[str, Any]], required: Mapping[str, str] | None,
                 optional: Mapping[str, str] | None):
        from rlscale.io.jsonl import RecordReader

        self.records = records
        self.from_reader = isinstance(records, RecordReader)
        if self.from_reader:
            records.required.update(required or {})
            records.optional.update(optional or {})
            self.invalid: Callable[[Any, str], None] = records.invalid
        else:
            self.invalid = _strict
        self.required, self.optional = dict(required or {}), dict(optional or {})

    def __iter__(self) -> Iterator[tuple[dict[str, Any], Any]]:
        if self.from_reader:
            yield from self.records
            return
        from rlscale.core.records import field_problem
        from rlscale.io.jsonl import Where

        checked = bool(self.required or self.optional)
        for index, record in enumerate(self.records, 1):
            where = Where(SOURCE, index)  # the reader's location type, line = position
            problem = (f"expected a dict, got {type(record).__name__}"
                       if not isinstance(record, Mapping) else
                       field_problem(record, self.required, self.optional) if checked else None)
            if problem is not None:
                self.invalid(where, problem)
                continue
            yield dict(record), where


def located(records: Iterable[Mapping[str, Any]], required: Mapping[str, str] | None = None,
            optional: Mapping[str, str] | None = None) -> Located:
    """``records`` with locations, checked for the fields the caller needs."""
    return Located(records, required, optional)
