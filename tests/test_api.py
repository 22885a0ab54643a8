"""The Python API as a whole: one function per tool, light to import, the commands' defaults."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys

import pytest

import rlscale

HEAVY = ("torch", "transformers", "vllm", "matplotlib", "math_verify", "sympy", "scipy")
# API function -> the command module whose options it mirrors
TOOLS = {"curate": "curate", "rollout": "rollout", "reward": "reward", "grpo_step": "grpo_step",
         "evaluate": "eval", "flops": "flops", "fit": "fit"}


def _probe(code: str) -> list[str]:
    """Run ``code`` in a fresh interpreter; the heavy modules it left imported."""
    probe = code + (f"\nimport sys\nprint(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True)
    return [name for name in out.stdout.strip().split(",") if name]


def test_import_rlscale_loads_no_tool_and_no_heavy_library():
    assert _probe("import rlscale") == []


@pytest.mark.parametrize("name", [*TOOLS, "Fit"])
def test_every_tool_is_a_documented_function_importable_without_torch(name):
    value = getattr(rlscale, name)
    assert callable(value) and (value.__doc__ or "").strip(), name
    assert name in dir(rlscale) and name in rlscale.__all__
    assert "torch" not in _probe(f"import rlscale; rlscale.{name}")


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        rlscale.nope  # noqa: B018


def _defaults(function) -> dict[str, object]:
    return {name: parameter.default
            for name, parameter in inspect.signature(function).parameters.items()
            if parameter.default is not inspect.Parameter.empty}


@pytest.mark.parametrize("function, module", TOOLS.items())
def test_the_api_takes_the_commands_options_with_the_same_defaults(function, module):
    api = _defaults(getattr(rlscale, function))
    command = _defaults(importlib.import_module(f"rlscale.cli.{module}").command)
    shared = set(api) & set(command)
    # the shared file options (-o, --rejects, ...) are the command line's own
    assert len(shared) >= 1, (function, sorted(api), sorted(command))
    differ = {name: (api[name], command[name]) for name in shared if api[name] != command[name]}
    assert not differ, f"{function}: API and CLI defaults differ: {differ}"
