"""Error types shared by the core and the command line.

The CLI turns these into one line on stderr and an exit code; nothing here prints.
"""

from __future__ import annotations

import re
from collections.abc import Callable


class RlscaleError(Exception):
    """A failure the user can act on (bad input, impossible request). Exit code 1."""


class RecordError(RlscaleError):
    """A bad input record, located by source name and 1-based line number."""

    def __init__(self, source: str, line: int, message: str):
        super().__init__(f"{source}:{line}: {message}")
        self.source = source
        self.line = line
        self.message = message


class UsageError(RlscaleError):
    """A bad combination of options or option value. Exit code 2."""


class OptionError(UsageError):
    """A bad value of one named parameter. The library names the parameter (``timeout must be
    > 0``); the command line names its flag instead (``--timeout must be > 0``). A message that
    starts with ``:`` is joined without a space (``fallbacks: unknown x``)."""

    def __init__(self, option: str, message: str):
        self.option = option
        self.message = message
        super().__init__(self._join(option))

    def _join(self, name: str) -> str:
        return name + ("" if self.message.startswith(":") else " ") + self.message

    def with_flag(self, flags: dict[str, str] | None = None) -> str:
        """The message naming the flag: from ``flags``, else ``--`` plus the dashed name."""
        flag = (flags or {}).get(self.option) or (
            self.option if self.option.startswith("-")  # already a flag (parse_csv_list)
            else "--" + self.option.replace("_", "-"))
        return self._join(flag)


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
