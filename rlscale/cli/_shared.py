"""Options, error handling and progress shared by every subcommand.

Every command spells its common flags the same way (``-o/--output``, ``--skip-invalid``,
``--rejects``, ``--quiet``, ``--debug``, ``--seed``) and reports problems the same way:
one line ``rlscale <cmd>: <file>:<line>: <what is wrong>`` on stderr and exit code 1, or exit 2
for a usage error. ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import sys
import traceback
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Annotated, Any, TypeVar

import typer

from rlscale.core.errors import OptionError, RlscaleError, UsageError
from rlscale.core.meta import run_meta  # noqa: F401  (re-exported for the commands)
from rlscale.io.tables import FORMATS as INPUT_FORMATS

T = TypeVar("T")

# --- option bundles -------------------------------------------------------------------------

InputsArg = Annotated[
    list[str] | None,
    typer.Argument(help="Input JSONL files ('-' or none: stdin; .gz is read transparently).",
                   show_default=False),
]
OutputOpt = Annotated[
    str | None,
    typer.Option("--output", "-o", help="Write to FILE atomically instead of stdout.",
                 metavar="FILE"),
]
SkipInvalidOpt = Annotated[
    bool, typer.Option("--skip-invalid", help="Skip bad input lines (counted on stderr).")
]
RejectsOpt = Annotated[
    str | None,
    typer.Option("--rejects", help="With --skip-invalid: copy skipped lines to FILE.",
                 metavar="FILE"),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress or summary on stderr.")]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show a traceback on errors.")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Random seed (echoed in metadata).")]
# Table inputs (see rlscale/io/tables.py): every command that reads records takes both.
InputFormatOpt = Annotated[
    str | None,
    typer.Option("--input-format", help="jsonl | csv | tsv | parquet (default: by file name; "
                 "stdin is JSONL)."),
]
WideOpt = Annotated[
    str | None,
    typer.Option("--wide", help="The input is a wide table (one STEP column, one column per "
                 "run or metric, as wandb exports): read each cell as a record "
                 "{STEP, series: column, value}.", metavar="STEP"),
]


FollowOpt = Annotated[
    bool,
    typer.Option("--follow", help="Keep running on stdin: each end-of-stream record closes a "
                 "batch; answer it (ended by its own end record, flushed) and wait for the next. "
                 "Loops that alternate sampling and training pay the start-up once."),
]


def check_input_format(value: str | None) -> str | None:
    """Reject an ``--input-format`` outside :data:`INPUT_FORMATS` as a usage error (exit 2)."""
    if value is not None and value not in INPUT_FORMATS:
        raise UsageError(f"--input-format {value!r}: expected one of {', '.join(INPUT_FORMATS)}")
    return value


# --- stderr, progress ----------------------------------------------------------------------


def stderr_console():
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def say(message: str, quiet: bool = False) -> None:
    """A human-facing line on stderr (never stdout: stdout is data)."""
    if not quiet:
        print(message, file=sys.stderr, flush=True)


def progress(items: Iterable[T], *, description: str, total: int | None = None,
             quiet: bool = False) -> Iterator[T]:
    """Wrap an iterable in a rich progress bar on stderr, shown only when stderr is a TTY."""
    if quiet or not sys.stderr.isatty():
        yield from items
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=stderr_console(), transient=True) as bar:
        task = bar.add_task(description, total=total)
        for item in items:
            yield item
            bar.advance(task)


def warn_if_waiting_on_tty(inputs: list[str] | None, quiet: bool = False) -> None:
    """Tell a person at a terminal that we are reading stdin, instead of hanging silently."""
    if (not inputs or inputs == ["-"]) and sys.stdin.isatty() and not quiet:
        say("rlscale: reading JSONL from stdin (Ctrl-D to end; --help for usage)")


@contextlib.contextmanager
def open_rejects(path: str | None, skip_invalid: bool) -> Iterator[IO[bytes] | None]:
    if path is None:
        yield None
        return
    if not skip_invalid:
        raise UsageError("--rejects needs --skip-invalid")
    from rlscale.io.jsonl import AtomicFile

    rejects = AtomicFile(path)  # the one atomic writer: umask, .gz, no temp file left behind
    try:
        yield rejects.handle
    finally:
        rejects.commit()  # kept when the command fails too: the rejected lines show why


def report_skipped(command: str, n_skipped: int, rejects: str | None, quiet: bool) -> None:
    if n_skipped:
        where = f" (written to {rejects})" if rejects else ""
        say(f"rlscale {command}: skipped {n_skipped} invalid line(s){where}", quiet)


# --- error handling ------------------------------------------------------------------------


def fail(command: str, message: str, code: int = 1) -> typer.Exit:
    say(f"rlscale {command}: {message}")
    return typer.Exit(code)


def handle_errors(command: str, debug: bool, body: Callable[[], T], *, quiet: bool = False,
                  flags: dict[str, str] | None = None) -> T:
    """Run a command body, mapping failures to one stderr line and an exit code.

    RlscaleError / RecordError -> 1, UsageError -> 2, Ctrl-C -> 130, broken pipe -> quiet 0.
    An :class:`~rlscale.core.errors.OptionError` from the library names a parameter; it is
    shown with the command's flag for it (``flags``: parameter -> flag where not ``--name``).
    With ``quiet`` (``-q``), libraries' FutureWarning/DeprecationWarning lines (transformers,
    peft, torch) are hidden too.
    """
    try:
        with warnings.catch_warnings():
            if quiet:
                warnings.simplefilter("ignore", FutureWarning)
                warnings.simplefilter("ignore", DeprecationWarning)
            return body()
    except typer.Exit:
        raise
    except BrokenPipeError:
        _silence_stdout()
        raise typer.Exit(0) from None
    except KeyboardInterrupt:
        raise fail(command, "interrupted", 130) from None
    except UsageError as exc:
        if debug:
            traceback.print_exc()
        if isinstance(exc, OptionError):
            raise fail(command, exc.with_flag(flags), 2) from None
        raise fail(command, str(exc), 2) from None
    except RlscaleError as exc:
        if debug:
            traceback.print_exc()
        raise fail(command, str(exc), 1) from None
    except ImportError as exc:
        if debug:
            traceback.print_exc()
        raise fail(command, missing_dependency_message(exc), 1) from None
    except (OSError, MemoryError) as exc:
        if debug:
            traceback.print_exc()
        raise fail(command, f"{type(exc).__name__}: {exc}", 1) from None


# Which extra brings which optional package (pyproject.toml [project.optional-dependencies]).
EXTRA_OF = {"torch": "train", "transformers": "train", "peft": "train", "safetensors": "train",
            "tokenizers": "train", "matplotlib": "plot", "vllm": "vllm"}


def missing_dependency_message(exc: ImportError) -> str:
    """One line for an optional package that is not installed, naming the extra to install."""
    name = (exc.name or "").split(".")[0]
    extra = EXTRA_OF.get(name)
    if extra is None:
        return f"cannot import a required package: {exc}"
    return f"this needs {name}, which is not installed: pip install 'rlscale[{extra}]'"


def _silence_stdout() -> None:
    """After EPIPE, point stdout at /dev/null so the interpreter's final flush is quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def check_choice(value: str, allowed: tuple[str, ...] | list[str], option: str) -> str:
    """Reject an option value outside ``allowed`` as a usage error (exit 2)."""
    if value not in allowed:
        raise UsageError(f"{option} must be one of {', '.join(allowed)}, got {value!r}")
    return value


def parse_csv_list(value: str | None, option: str, kind: Callable[[str], T] = str) -> list[T]:
    """Parse 'a,b,c' option values; a bad element is a usage error naming the option (the
    flag, e.g. ``--k``): :func:`rlscale.api._options.listed` as the command line calls it."""
    from rlscale.api._options import listed

    return listed(value, option, kind)


_LEADING_ZERO = re.compile(r"[-+]?0[0-9]+(\.[0-9]*)?([eE][-+]?[0-9]+)?\Z")


def parse_assignments(items: list[str] | None, option: str) -> dict[str, Any]:
    """Parse repeated ``KEY=VALUE`` options; a value that is JSON (``3``, ``7e9``, ``true``,
    ``"x"``) keeps its type, anything else is a string. An empty value (often an empty shell
    substitution) and a number with a leading zero (``01``: 1, or the text "01"?) are usage
    errors rather than guesses; write ``KEY='""'`` for an empty string.

    >>> parse_assignments(["step=3", "N=7e9", "run_id=a"], "--set")
    {'step': 3, 'N': 7000000000.0, 'run_id': 'a'}
    """
    import orjson

    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"{option} {item!r}: expected KEY=VALUE")
        if not text.strip():
            raise UsageError(f"{option} {item!r}: empty value (an empty $(...)?); write "
                             f"{key.strip()}='\"\"' for an empty string")
        if _LEADING_ZERO.match(text.strip()):
            raise UsageError(f"{option} {item!r}: a number cannot start with 0; write the "
                             f"number without it, or {key.strip()}='\"{text.strip()}\"' for text")
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError:
            try:  # numbers JSON does not spell, like .5 or 1.
                value = float(text)
                value = value if math.isfinite(value) else text
            except ValueError:
                value = text
        out[key.strip()] = value
    return out
