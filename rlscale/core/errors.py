"""Error types shared by the core and the command line.

The CLI turns these into one line on stderr and an exit code; nothing here prints.
"""

from __future__ import annotations


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
