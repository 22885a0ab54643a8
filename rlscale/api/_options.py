"""Option values as the API takes them: lists as the command line's comma strings or as
sequences, and usage errors about several parameters at once."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from rlscale.core.errors import OptionError, OptionsError  # noqa: F401  (re-exported)

T = TypeVar("T")


def listed(value: str | Iterable[Any] | None, option: str,
           kind: Callable[[str], T] = str) -> list[T]:
    """A list option: a comma string (``"1,4,8"``, as the command line gives it; empty items
    are left out) or a sequence; strings are read with ``kind``.

    >>> listed("1, 4,,8", "k", int), listed([1, "4"], "k", int), listed(None, "by")
    ([1, 4, 8], [1, 4], [])
    """
    if value is None:
        return []
    parts = value.split(",") if isinstance(value, str) else list(value)
    out: list[T] = []
    for part in parts:
        if isinstance(part, str):
            part = part.strip()
            if not part:
                continue
            try:
                out.append(kind(part))
            except ValueError:
                raise OptionError(option, f": cannot read {part!r}") from None
        elif isinstance(kind, type) and isinstance(part, kind) and not isinstance(part, bool):
            out.append(part)
        else:
            raise OptionError(option, f": cannot read {part!r}")
    return out
