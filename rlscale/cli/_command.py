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

A tool made with ``follow=True`` also takes ``--follow``: ``run`` is called once per batch of
stdin (:class:`~rlscale.io.jsonl.Batches`), exactly as one call of the command on that batch
would run, so a batch's answer is the same bytes as a separate call's; only the imports are
paid once. Each answer ends with an end record (an empty one too); a batch that arrives
incomplete, or a failure, stops the command with its usual message and exit code.
"""

from __future__ import annotations

import functools
import inspect
import sys
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

from rlscale.cli._shared import (
    DebugOpt,
    FollowOpt,
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
from rlscale.core.errors import RlscaleError, UsageError

# name: (annotation, default). Inputs and -o come first in --help, the rest after the
# command's own options.
LEADING = {"inputs": (InputsArg, None), "output": (OutputOpt, None)}
TRAILING = {"input_format": (InputFormatOpt, None), "wide": (WideOpt, None),
            "skip_invalid": (SkipInvalidOpt, False), "rejects": (RejectsOpt, None),
            "quiet": (QuietOpt, False), "debug": (DebugOpt, False)}
SHARED = {**LEADING, **TRAILING}
# every option the skeleton may add (``--follow`` only to tools made with follow=True)
SKELETON = (*SHARED, "follow")


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
    follow: bool = False
    batches: Any = None  # the stdin batches of --follow (rlscale.io.jsonl.Batches)
    batch_reader: Any = None
    batch_writers: list[Any] = field(default_factory=list)

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

        if self.batches is not None and inputs is None:  # --follow: this batch of stdin
            if self.batch_reader is not None:
                raise RuntimeError(f"{self.name}: the batch was opened twice")
            self.batch_reader = RecordReader(None, skip_invalid=self.skip_invalid,
                                             rejects=self.rejects_file, batch=self.batches,
                                             **options)
            self.readers.append(self.batch_reader)
            return self.batch_reader
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

        if self.batches is not None and path is None:
            writer = RecordWriter(None, tool=self.name, source=source, batch=True, **options)
            self.batch_writers.append(writer)
            return writer
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


def _check_follow(ctx: Context) -> None:
    """Usage errors of ``--follow``: batches come on stdin and answers go to stdout."""
    from rlscale.io.jsonl import end_records_enabled

    if ctx.inputs and ctx.inputs != ["-"]:
        raise UsageError("--follow reads its batches from stdin, not from files")
    if ctx.output not in (None, "-"):
        raise UsageError("--follow answers each batch on stdout; -o is for one batch")
    if ctx.input_format not in (None, "jsonl") or ctx.wide is not None:
        raise UsageError("--follow reads JSONL batches (no --input-format or --wide)")
    if not end_records_enabled():
        raise UsageError("--follow needs end-of-stream records to tell batches apart "
                         "(RLSCALE_END_RECORD=0 is set)")


def _run_batches(ctx: Context, run: Callable[..., None], options: dict[str, Any]) -> None:
    """``run`` once per stdin batch, each answered and ended before the next is read."""
    from rlscale.io.jsonl import Batches

    ctx.batches = Batches()
    while ctx.batches.wait():
        ctx.batch_reader, ctx.batch_writers, ctx.readers = None, [], []
        ctx.skipped_reported = False
        run(ctx, **options)
        reader = ctx.batch_reader
        if reader is None or not (reader.problems or ctx.batches.ended):
            raise RuntimeError(f"{ctx.name}: batch {ctx.batches.count} was not read to its end")
        if reader.problems:  # the answer was not ended; nothing more will come
            raise RlscaleError(f"incomplete input: {reader.problems[0]}: stopping after "
                               f"{ctx.batches.count - 1} complete batch(es)")
        if not any(writer.ended for writer in ctx.batch_writers):
            # nothing to answer (say, no step taken): the empty answer is ended all the same,
            # or the other side would wait for it forever
            ctx.writer(source=reader).close()
        sys.stdout.buffer.flush()
        ctx.report_skipped()


def tool(name: str, *, shared: tuple[str, ...] = tuple(SHARED),
         check: Callable[..., None] | None = None, flags: Mapping[str, str] | None = None,
         follow: bool = False):
    """Make ``run(ctx, **options)`` a typer command with the shared options in ``shared``.

    ``check(**options)``, when given, runs before anything is opened (usage errors first).
    ``flags``: the flag of each API parameter whose flag is not ``--dashed-name`` (``{"n":
    "-n"}``), so an OptionError from the library names what the user typed. ``follow``: add
    ``--follow`` (see the module docstring); ``run`` must read its input through
    ``ctx.reader()`` and write stdout through ``ctx.writer()``.
    """
    unknown = set(shared) - set(SHARED)
    if unknown:
        raise ValueError(f"unknown shared options {sorted(unknown)}")

    def decorate(run: Callable[..., None]):
        hints = typing.get_type_hints(run, include_extras=True)
        own = [p.replace(annotation=hints.get(p.name, p.annotation), kind=p.KEYWORD_ONLY)
               for p in list(inspect.signature(run).parameters.values())[1:]]
        leading = _parameters({k: v for k, v in LEADING.items() if k in shared})
        trailing_spec = {k: v for k, v in TRAILING.items() if k in shared}
        if follow:
            trailing_spec = {"follow": (FollowOpt, False), **trailing_spec}
        trailing = _parameters(trailing_spec)

        @functools.wraps(run)
        def command(**options: Any) -> None:
            common = {key: options.pop(key) for key in SHARED if key in options}
            ctx = Context(name, **common, follow=options.pop("follow", False))

            def body() -> None:
                check_input_format(ctx.input_format)
                if ctx.follow:
                    _check_follow(ctx)
                if check is not None:
                    check(**options, **({"follow": True} if ctx.follow else {}))
                ctx.refuse_overlap()  # before --rejects exists: a refused run leaves no file
                with open_rejects(ctx.rejects, ctx.skip_invalid) as rejects_file:
                    ctx.rejects_file = rejects_file
                    if ctx.follow:
                        _run_batches(ctx, run, options)
                    else:
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
