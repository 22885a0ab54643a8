"""The examples in the grading modules' docstrings and in docs/extending-graders.md run and
hold, and the docs' table of graders is the registry's."""

from __future__ import annotations

import doctest
import importlib
import re
import shlex
import sys
import textwrap
import types
from pathlib import Path

import orjson
import pytest

from rlscale.core.grading import registry
from tests.conftest import REPO, run_inprocess

MODULES = ["extraction", "normalize", "expressions", "paper_grader", "bounded", "registry"]
GUIDE = Path(REPO) / "docs" / "extending-graders.md"


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(f"rlscale.core.grading.{name}")
    failures, attempted = doctest.testmod(module)
    assert attempted > 0 and failures == 0


def _blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", text, re.S | re.M)


def test_the_table_of_graders_is_the_registry():
    rows = [line for line in GUIDE.read_text().splitlines() if line.startswith("| `")]
    table = [[cell.strip().strip("`") for cell in row.strip("|").split("|")] for row in rows]
    expected = [[spec.name, spec.module.rsplit(".", 1)[-1], spec.quick or "",
                 "yes" if spec.needs_worker else "no", "yes" if spec.structured else "no",
                 ", ".join(spec.routes), spec.pred or ""] for spec in registry.REGISTRY]
    assert table == expected


def test_every_registered_grader_has_its_functions():
    assert len(set(registry.names())) == len(registry.REGISTRY)
    for spec in registry.REGISTRY:
        for role in (spec.full, spec.quick, spec.pred, spec.warm):
            assert role is None or callable(spec.function(role)), (spec.name, role)


def test_the_worked_example_runs(monkeypatch):
    """The `exact` grader of docs/extending-graders.md: its module and its registration line
    as the page shows them, then the page's Python and command-line examples."""
    text = GUIDE.read_text()
    code = next(block for block in _blocks(text, "python")
                if block.startswith("# rlscale/core/grading/exact.py"))
    module = types.ModuleType("rlscale.core.grading.exact")
    module.__file__ = "rlscale/core/grading/exact.py"
    exec(compile(code, module.__file__, "exec"), module.__dict__)
    monkeypatch.setitem(sys.modules, module.__name__, module)
    line = next(block for block in _blocks(text, "python") if 'GraderSpec("exact"' in block)
    spec = eval(textwrap.dedent(line).strip().rstrip(","), vars(registry))
    monkeypatch.setattr(registry, "REGISTRY", (*registry.REGISTRY, spec))
    assert "exact: the last box holds the ground truth" in registry.summary()

    parser, runner = doctest.DocTestParser(), doctest.DocTestRunner()
    (pycon,) = _blocks(text, "pycon")
    examples = parser.get_doctest(pycon, {}, GUIDE.name, str(GUIDE), 0)
    assert len(examples.examples) == 3
    runner.run(examples)
    assert runner.failures == 0

    (console,) = _blocks(text, "console")
    command, expected = console.strip().split("\n")
    printf, pipeline = command.removeprefix("$ ").split(" | ")
    stdin = shlex.split(printf)[-1] + "\n"
    args = shlex.split(pipeline)[1:]  # after "rlscale"
    result = run_inprocess(args, input=stdin)
    assert result.exit_code == 0, result.stderr
    assert result.records == [orjson.loads(expected)]
