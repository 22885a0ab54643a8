"""The examples in the grading modules' docstrings run and hold."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["extraction", "normalize", "expressions", "paper_grader", "bounded"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(f"rlscale.core.grading.{name}")
    failures, attempted = doctest.testmod(module)
    assert attempted > 0 and failures == 0
