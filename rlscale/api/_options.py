"""Option values as the API takes them: lists as the command line's comma strings or as
sequences, and usage errors about several parameters at once."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from rlscale.core.errors import OptionError

T = TypeVar("T")

_NAME = re.compile(r"\{(\w+)\}")


class OptionsError(OptionError):
    """A bad combination of parameters. ``template`` writes each parameter as ``{name}``: the
    library shows the parameter names, the command line its flags.

    >>> error = OptionsError("{n_params} sets the nominal N; drop {n_def}")
    >>> str(error), error.with_flag()
    ('n_params sets the nominal N; drop n_def', '--n-params sets the nominal N; drop --n-def')
    """

    def __init__(self, template: str):
        self.template = template
        names = _NAME.findall(template)
        super().__init__(names[0] if names else "", template)
        self.args = (self._fill(lambda name: name),)

    def _fill(self, flag: Callable[[str], str]) -> str:
        return _NAME.sub(lambda match: flag(match.group(1)), self.template)

    def __str__(self) -> str:
        return self.args[0]

    def with_flag(self, flags: dict[str, str] | None = None) -> str:
        return self._fill(lambda name: (flags or {}).get(name) or "--" + name.replace("_", "-"))


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
