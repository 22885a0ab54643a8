"""The ``rlscale`` command: a family of composable JSONL tools.

Each subcommand lives in its own module under ``rlscale.cli`` and exposes ``NAME``, ``HELP``,
``EPILOG`` (examples) and ``command``. Modules import heavy libraries (torch, transformers,
vllm, matplotlib) only inside their command bodies, so ``rlscale <cmd> --help`` stays fast.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import sys
import typing
from typing import Annotated

import typer

from rlscale import __version__

# Order is the order shown in `rlscale --help`: the pipeline order.
COMMAND_MODULES = ("curate", "rollout", "reward", "grpo_step", "eval", "flops", "fit", "verl")

# One line each for `rlscale --help`; the full story is in `rlscale <cmd> --help`.
SUMMARIES = {
    "curate": "Dedup, decontaminate and order problems by difficulty; held-out and reuse splits.",
    "rollout": "Sample G completions per problem (transformers or vLLM).",
    "reward": "Grade completions against ground truth (math / paper graders).",
    "grpo_step": "One GRPO update of a policy checkpoint from scored rollouts.",
    "eval": "Test loss (1 - pass@1), pass@k and bootstrap CIs per group.",
    "flops": "Training compute C = 6NT, data D and parameter counts; VeRL logs to runs.",
    "fit": "Fit, validate and predict with RL scaling laws; plan compute.",
    "verl": "Print a complete VeRL main_ppo launch for these GRPO settings.",
}


def _version(value: bool) -> None:
    if value:
        print(f"rlscale {__version__}")
        raise typer.Exit()


def _with_version(command):
    """The command with an eager ``--version`` option too (``rlscale curate --version``)."""
    hints = typing.get_type_hints(command, include_extras=True)  # the modules' own names
    signature = inspect.signature(command)
    parameters = [p.replace(annotation=hints.get(p.name, p.annotation))
                  for p in signature.parameters.values()]
    option = inspect.Parameter(
        "version", inspect.Parameter.KEYWORD_ONLY, default=False,
        annotation=Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="Print the version and exit.")])

    @functools.wraps(command)
    def wrapper(*args, version: bool = False, **kwargs):
        return command(*args, **kwargs)

    wrapper.__signature__ = signature.replace(parameters=[*parameters, option])
    wrapper.__annotations__ = {**hints, "version": option.annotation}
    return wrapper


def _examples(epilog: str) -> str:
    """Keep each example command on its line: click rewraps paragraphs unless marked \\b."""
    head, *examples = epilog.split("\n\n")
    return "\n\n".join([head, *("\b\n" + example for example in examples)])


def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """Run, measure and predict RL post-training (GRPO) of language models on math."""


def command_name(module_name: str) -> str:
    """The command a module under rlscale.cli defines (its NAME): grpo_step -> grpo-step."""
    return module_name.replace("_", "-")


def build_app(only: str | None = None) -> typer.Typer:
    """The ``rlscale`` typer app with every command, or with the one command ``only``.

    ``main`` builds only the command it runs: importing and declaring the other seven (their
    option tables and help texts) would be start-up time that ``rlscale <cmd>`` never uses.
    """
    app = typer.Typer(
        name="rlscale",
        help="Run, measure and predict RL post-training (GRPO) of language models on math. "
        "Every subcommand reads JSONL (files or stdin) and writes JSONL on stdout.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
        rich_markup_mode=None,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    app.callback()(_root)
    for module_name in COMMAND_MODULES:
        if only is not None and command_name(module_name) != only:
            continue
        module = importlib.import_module(f"rlscale.cli.{module_name}")
        app.command(module.NAME, help=module.HELP, epilog=_examples(module.EPILOG),
                    short_help=SUMMARIES[module_name])(_with_version(module.command))
    return app


_FULL_APP: typer.Typer | None = None


def __getattr__(name: str):
    """``rlscale.cli.app.app``: the app with every command, built on first use."""
    global _FULL_APP
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if _FULL_APP is None:
        _FULL_APP = build_app()
    return _FULL_APP


def main(argv: list[str] | None = None) -> int:
    """Console entry point; returns the exit code."""
    args = sys.argv[1:] if argv is None else list(argv)
    first = next((arg for arg in args if not arg.startswith("-")), None)
    names = {command_name(module_name) for module_name in COMMAND_MODULES}
    # a command as the first word: build just that one (root options like --version come
    # before it, so a non-command first word means the root app with every command)
    only = first if first in names and args and args[0] == first else None
    try:
        build_app(only)(args=args, prog_name="rlscale", standalone_mode=True)
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
