"""The README's Python API example runs as written and prints what its comments say."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def _api_example() -> str:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Python API"):]
    section = section[:section.index("\n## ", 1)]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_python_example_runs_and_prints_its_comments(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib", reason="the example plots (rlscale[plot])")
    monkeypatch.chdir(tmp_path)
    code = _api_example()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {})  # its asserts check the numbers
    printed = out.getvalue().splitlines()
    promised = [line.split("# ", 1)[1].strip() for line in code.splitlines()
                if line.startswith("print(")]
    assert printed == promised
    assert (tmp_path / "fit.png").stat().st_size > 0
