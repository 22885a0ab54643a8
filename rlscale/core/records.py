"""Records as values: the kinds of fields a tool requires, nested field paths, JSON type names.

Pure helpers shared by the readers in :mod:`rlscale.io` and the API functions that take plain
dicts; nothing here reads or writes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import orjson

# Field kinds accepted by check_fields. "number" means int or float (not bool) and finite.
FIELD_KINDS = ("str", "number", "int", "bool", "list", "dict", "any", "str|number")


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


def field_problem(record: Mapping[str, Any], required: Mapping[str, str] | None = None,
                  optional: Mapping[str, str] | None = None) -> str | None:
    """What :func:`check_fields` finds wrong with ``record``, or None."""
    try:
        check_fields(record, required, optional)
    except ValueError as exc:
        return str(exc)
    return None


def finite_number(record: Mapping[str, Any], name: str) -> float:
    """Return a required finite numeric field as float, or raise ValueError with a clear message."""
    check_fields(record, {name: "number"})
    return float(record[name])
