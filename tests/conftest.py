"""Shared test helpers: run the CLI in-process and read its JSONL output."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from dataclasses import dataclass

import orjson
import pytest
from hypothesis import settings

# CI runs a fixed set of examples (derandomize) so a run is reproducible; HYPOTHESIS_PROFILE=dev
# explores new random examples on every run.
settings.register_profile("ci", max_examples=60, deadline=None, derandomize=True)
settings.register_profile("dev", max_examples=300, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(REPO, "tests", "data")


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def records(self) -> list[dict]:
        # split on "\n" only: str.splitlines() also splits inside JSON strings at \x85, \u2028...
        # The end-of-stream record is not data (every rlscale reader drops it too).
        return [orjson.loads(line) for line in self.stdout.split("\n")
                if line.strip() and not line.startswith('{"rlscale_end"')]

    @property
    def end_record(self) -> dict | None:
        """The output's end-of-stream record ({"tool":..., "records": N}), if it has one."""
        lines = [line for line in self.stdout.split("\n") if line.strip()]
        if lines and lines[-1].startswith('{"rlscale_end"'):
            return orjson.loads(lines[-1])["rlscale_end"]
        return None


def run_cli(args: list[str], input: str | bytes | None = None, env: dict | None = None,
            cwd: str | None = None) -> CliResult:
    """Run `python -m rlscale ARGS` in a subprocess (real stdin/stdout pipes, real exit code)."""
    if isinstance(input, str):
        input = input.encode()
    full_env = dict(os.environ)
    full_env.update(env or {})
    proc = subprocess.run([sys.executable, "-m", "rlscale", *args], input=input,
                          capture_output=True, env=full_env, cwd=cwd, timeout=600)
    return CliResult(proc.returncode, proc.stdout.decode(), proc.stderr.decode())


def run_inprocess(args: list[str], input: str | bytes | None = None) -> CliResult:
    """Run `rlscale ARGS` in this process with byte-level stdin/stdout, like the subprocess helper
    but without the interpreter start-up (most CLI tests; a few keep the real subprocess)."""
    import io
    import sys

    data = input.encode() if isinstance(input, str) else (input or b"")
    saved = sys.stdin, sys.stdout, sys.stderr
    stdout = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    sys.stdin = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8")
    sys.stdout, sys.stderr = stdout, io.StringIO()
    try:
        try:
            _click_group().main(list(args), prog_name="rlscale", standalone_mode=True)
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        stdout.flush()
        return CliResult(code, stdout.buffer.getvalue().decode(), sys.stderr.getvalue())
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved


@functools.cache
def _click_group():
    """The click group behind `rlscale`, built once (typer rebuilds it on every app() call)."""
    import typer.main

    from rlscale.cli.app import app

    return typer.main.get_command(app)


def jsonl(records: list[dict]) -> str:
    return "".join(orjson.dumps(r).decode() + "\n" for r in records)


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> str:
    """A ~30k-parameter Qwen2 checkpoint directory built in code (seed 0), shared per session."""
    from rlscale.engines.tiny import build_tiny_checkpoint

    return build_tiny_checkpoint(str(tmp_path_factory.mktemp("tiny") / "model"), seed=0)
