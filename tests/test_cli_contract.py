"""Behaviour every subcommand shares: help with examples, light imports, exit codes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from rlscale import __version__
from rlscale.cli.app import COMMAND_MODULES, app
from tests.conftest import run_cli

COMMANDS = [module.replace("_", "-") for module in COMMAND_MODULES]


def test_every_planned_command_is_registered():
    assert sorted(c.name for c in app.registered_commands) == sorted(COMMANDS)


def test_version_and_root_help():
    result = run_cli(["--version"])
    assert (result.exit_code, result.stdout.strip()) == (0, f"rlscale {__version__}")
    result = run_cli(["--help"])
    assert result.exit_code == 0
    for command in COMMANDS:
        assert command in result.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_help_has_examples_and_imports_no_heavy_library(command):
    """`rlscale <cmd> --help` must be fast: no torch, transformers, vllm or matplotlib."""
    probe = (
        "import sys\n"
        "from rlscale.cli.app import main\n"
        f"code = main([{command!r}, '--help'])\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'vllm', 'matplotlib', 'math_verify')"
        " if m in sys.modules)\n"
        "print('HEAVY=' + ','.join(heavy), file=sys.stderr)\n"
        "sys.exit(code)\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY=\n" in proc.stderr
    assert "Examples" in proc.stdout
    assert f"rlscale {command}" in proc.stdout


def test_unknown_option_is_a_usage_error():
    result = run_cli(["flops", "--no-such-option"])
    assert result.exit_code == 2
    assert "No such option" in result.stderr
