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


def minimal_args(command: str, checkpoint: str, tmp_path) -> list[str]:
    """The fewest options with which each command reads records."""
    return {
        "flops": ["--n-params", "7e9"],
        "rollout": ["--model", checkpoint],
        "grpo-step": ["--policy", checkpoint, "--ref", checkpoint,
                      "--out", str(tmp_path / "out")],
    }.get(command, [])


@pytest.mark.parametrize("command", [c for c in COMMANDS if c != "verl"])  # verl reads no input
def test_empty_input_is_valid_bad_json_is_one_line_and_skip_invalid_counts(
        command, tiny_checkpoint, tmp_path):
    args = [command, *minimal_args(command, tiny_checkpoint, tmp_path)]

    empty = run_cli(args, input="")
    assert (empty.exit_code, empty.stdout) == (0, ""), empty.stderr

    bad = run_cli(args, input='{"prompt_id": 1,\n')
    assert bad.exit_code == 1
    assert bad.stdout == ""
    assert bad.stderr.startswith(f"rlscale {command}: <stdin>:1: invalid JSON: ")
    assert bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr

    rejects = tmp_path / "rejects.jsonl"
    skipped = run_cli([*args, "--skip-invalid", "--rejects", str(rejects)],
                      input='{"prompt_id": 1,\n')
    assert (skipped.exit_code, skipped.stdout) == (0, ""), skipped.stderr
    assert f"rlscale {command}: skipped 1 invalid line(s) (written to {rejects})" in skipped.stderr
    assert rejects.read_text() == '{"prompt_id": 1,\n'
    assert not (tmp_path / "out").exists()  # grpo-step wrote no checkpoint


def test_closed_downstream_pipe_ends_quietly(tmp_path):
    """`rlscale flops big.jsonl | head -1` must end without a BrokenPipe traceback."""
    source = tmp_path / "steps.jsonl"
    source.write_text("".join(f'{{"run_id": "r", "step": {i}, "n_tokens": 1000}}\n'
                              for i in range(50_000)))
    proc = subprocess.Popen([sys.executable, "-m", "rlscale", "flops", str(source),
                             "--n-params", "7e9"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = proc.stdout.readline()
    proc.stdout.close()  # what `head -1` does after one line
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0
    assert b'"step":0' in first
    assert stderr == ""


TORCH_FREE_RUNS = {
    "reward": (["reward", "-j", "1"], '{"completion": "\\\\boxed{2}", "answer": "2"}\n'),
    "eval": (["eval", "--by", "step"], '{"prompt_id": 1, "step": 1, "reward": 1}\n'),
    "flops": (["flops", "--n-params", "7e9"], '{"run_id": "a", "step": 1, "n_tokens": 10}\n'),
    "fit": (["fit", "--law", "loglinear"],
            '{"N": 1e9, "C": 1e18, "loss": 0.9}\n{"N": 1e9, "C": 1e19, "loss": 0.8}\n'
            '{"N": 1e9, "C": 1e20, "loss": 0.72}\n'),
    "curate": (["curate"], '{"problem": "What is 1 + 1?", "answer": "2"}\n'),
}


@pytest.mark.parametrize("command", sorted(TORCH_FREE_RUNS))
def test_core_commands_run_without_torch(command):
    """reward, eval, flops, fit and curate work on a core install (no torch, no transformers)."""
    args, stdin = TORCH_FREE_RUNS[command]
    probe = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('torch', 'transformers', 'peft', 'vllm'):\n"
        "            raise ImportError(f'{name} is blocked in this test')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from rlscale.cli.app import main\n"
        f"sys.exit(main({args!r}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe], input=stdin.encode(),
                          capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.strip(), "no output"


def test_a_missing_optional_package_is_one_line_naming_the_extra(tiny_checkpoint):
    probe = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('torch', 'transformers'):\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "from rlscale.cli.app import main\n"
        f"sys.exit(main(['rollout', '--model', {tiny_checkpoint!r}]))\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe], input=b'{"prompt": "x"}\n',
                          capture_output=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.decode() in (
        "rlscale rollout: this needs torch, which is not installed: pip install 'rlscale[train]'\n",
        "rlscale rollout: this needs transformers, which is not installed: "
        "pip install 'rlscale[train]'\n")


@pytest.mark.parametrize("command", COMMANDS)
def test_every_subcommand_answers_version(command):
    result = run_cli([command, "--version"])
    assert (result.exit_code, result.stdout, result.stderr) == (0, f"rlscale {__version__}\n", "")


@pytest.mark.parametrize("command", COMMANDS)
def test_help_at_80_columns_shows_whole_option_names_and_no_bool_metavar(command):
    import re

    result = run_cli([command, "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0
    assert "…" not in result.stdout and "<bool>" not in result.stdout
    # every option the command declares appears in full
    import typer.main

    params = typer.main.get_command(app).commands[command].params
    names = [o for p in params for o in [*p.opts, *p.secondary_opts] if o.startswith("-")]
    assert "--output" in names
    for name in names:
        assert re.search(rf"(^|[ ,/]){re.escape(name)}([ ,=]|$)", result.stdout, re.M), name
