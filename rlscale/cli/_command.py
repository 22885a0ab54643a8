"""The one skeleton every record-reading command runs through.

A command module declares its own options and a function ``run(ctx, **options)``; the
:func:`tool` decorator adds the shared options (inputs, ``-o``, ``--input-format``, ``--wide``,
``--skip-invalid``, ``--rejects``, ``-q``, ``--debug``) to what typer sees, and around the call
does what every command does the same way: usage checks of the shared options, ``--rejects``
opened and closed, overlap of outputs with inputs refused, the stdin hint at a terminal,
skipped lines reported, and every failure mapped to one stderr line and an exit code
(see :func:`rlscale.cli._shared.handle_errors`).

Inside ``run``, ``ctx.reader(...)`` is the input (a :class:`~rlscale.io.jsonl.RecordReader`
configured by the shared options) and ``ctx.writer(...)`` the output (a
:class:`~rlscale.io.jsonl.RecordWriter` to ``-o`` or stdout, with the end-of-stream record).
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

from rlscale.cli._shared import (
    DebugOpt,
    InputFormatOpt,
    InputsArg,
    OutputOpt,
    QuietOpt,
    RejectsOpt,
    SkipInvalidOpt,
    WideOpt,
    check_input_format,
    handle_errors,
    open_rejects,
    report_skipped,
    say,
    warn_if_waiting_on_tty,
)

# name: (annotation, default). Inputs and -o come first in --help, the rest after the
# command's own options.
LEADING = {"inputs": (InputsArg, None), "output": (OutputOpt, None)}
TRAILING = {"input_format": (InputFormatOpt, None), "wide": (WideOpt, None),
            "skip_invalid": (SkipInvalidOpt, False), "rejects": (RejectsOpt, None),
            "quiet": (QuietOpt, False), "debug": (DebugOpt, False)}
SHARED = {**LEADING, **TRAILING}


@dataclass
class Context:
    """What a command body gets: the shared options and the one way to open input and output."""

    name: str
    inputs: list[str] | None = None
    output: str | None = None
    input_format: str | None = None
    wide: str | None = None
    skip_invalid: bool = False
    rejects: str | None = None
    quiet: bool = False
    debug: bool = False
    rejects_file: IO[bytes] | None = None
    readers: list[Any] = field(default_factory=list)
    other_outputs: dict[str, str | None] = field(default_factory=dict)
    skipped_reported: bool = False

    def also_writes(self, outputs: Mapping[str, str | None]) -> None:
        """Name outputs besides ``-o`` (``{"--holdout-out": path}``): checked for overlap."""
        self.other_outputs.update(outputs)

    def refuse_overlap(self, inputs: list[str] | None = None) -> None:
        from rlscale.io.jsonl import refuse_overlap

        refuse_overlap({"-o": self.output, "--rejects": self.rejects, **self.other_outputs},
                       self.inputs if inputs is None else inputs)

    def reader(self, inputs: list[str] | None = None, **options: Any):
        """A RecordReader over ``inputs`` (default: the command's inputs) with the shared
        options; outputs that would overwrite an input are refused first."""
        from rlscale.io.jsonl import RecordReader

        chosen = self.inputs if inputs is None else inputs
        self.refuse_overlap(chosen)
        warn_if_waiting_on_tty(chosen, self.quiet)
        options.setdefault("input_format", self.input_format)
        options.setdefault("wide", self.wide)
        reader = RecordReader(chosen, skip_invalid=self.skip_invalid, rejects=self.rejects_file,
                              **options)
        self.readers.append(reader)
        return reader

    def writer(self, source: Any = None, path: str | None = None, **options: Any):
        """The RecordWriter to ``path`` (default ``-o``; None: stdout), ended on success."""
        from rlscale.io.jsonl import RecordWriter

        return RecordWriter(self.output if path is None else path, tool=self.name,
                            source=source, **options)

    def say(self, message: str) -> None:
        say(message, self.quiet)

    @property
    def n_skipped(self) -> int:
        return sum(reader.n_skipped for reader in self.readers)

    def report_skipped(self) -> None:
        """Say how many input lines were skipped, now (before the command's own summary); the
        skeleton then does not say it again at the end."""
        if not self.skipped_reported:
            report_skipped(self.name, self.n_skipped, self.rejects, self.quiet)
            self.skipped_reported = True


def _parameters(spec: Mapping[str, tuple[Any, Any]]) -> list[inspect.Parameter]:
    return [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                              annotation=annotation)
            for name, (annotation, default) in spec.items()]


def tool(name: str, *, shared: tuple[str, ...] = tuple(SHARED),
         check: Callable[..., None] | None = None, flags: Mapping[str, str] | None = None):
    """Make ``run(ctx, **options)`` a typer command with the shared options in ``shared``.

    ``check(**options)``, when given, runs before anything is opened (usage errors first).
    ``flags``: the flag of each API parameter whose flag is not ``--dashed-name`` (``{"n":
    "-n"}``), so an OptionError from the library names what the user typed.
    """
    unknown = set(shared) - set(SHARED)
    if unknown:
        raise ValueError(f"unknown shared options {sorted(unknown)}")

    def decorate(run: Callable[..., None]):
        hints = typing.get_type_hints(run, include_extras=True)
        own = [p.replace(annotation=hints.get(p.name, p.annotation), kind=p.KEYWORD_ONLY)
               for p in list(inspect.signature(run).parameters.values())[1:]]
        leading = _parameters({k: v for k, v in LEADING.items() if k in shared})
        trailing = _parameters({k: v for k, v in TRAILING.items() if k in shared})

        @functools.wraps(run)
        def command(**options: Any) -> None:
            common = {key: options.pop(key) for key in SHARED if key in options}
            ctx = Context(name, **common)

            def body() -> None:
                check_input_format(ctx.input_format)
                if check is not None:
                    check(**options)
                ctx.refuse_overlap()  # before --rejects exists: a refused run leaves no file
                with open_rejects(ctx.rejects, ctx.skip_invalid) as rejects_file:
                    ctx.rejects_file = rejects_file
                    run(ctx, **options)
                ctx.report_skipped()

            handle_errors(name, ctx.debug, body, quiet=ctx.quiet,
                          flags=None if flags is None else dict(flags))

        parameters = [*leading, *own, *trailing]
        command.__signature__ = inspect.Signature(parameters)
        command.__annotations__ = {p.name: p.annotation for p in parameters}
        del command.__wrapped__  # typer must read the new signature, not run's
        return command

    return decorate
