"""rlscale.evaluate: the same records as `rlscale eval`, errors naming the record's index or the
parameter, the command's defaults."""

from __future__ import annotations

import doctest
import inspect
import subprocess
import sys

import pytest

import rlscale
import rlscale.api._options as options_module
import rlscale.api.evaluate as evaluate_module
from rlscale.api._options import OptionsError, listed
from rlscale.cli.eval import command
from rlscale.core.errors import OptionError, RecordError
from tests.conftest import jsonl, run_inprocess

SCORED = [{"step": s, "N": n, "prompt_id": p, "sample_idx": i, "reward": float((s + i + p) % 3 == 0),
           "extra_info": {"split": "test" if p % 2 else "val"}}
          for s in (0, 1) for n in (5e8, 7e9) for p in range(5) for i in range(4)]


@pytest.mark.parametrize("module", [evaluate_module, options_module])
def test_docstring_examples(module):
    assert doctest.testmod(module).failed == 0


@pytest.mark.parametrize("args, kwargs", [
    (["--by", "step,N", "--k", "1,2,4"], {"by": ["step", "N"], "k": [1, 2, 4]}),
    (["--by", "extra_info.split", "--seed", "3", "--bootstrap", "50"],
     {"by": "extra_info.split", "seed": 3, "bootstrap": 50}),
    (["--threshold", "0.2", "--set", "run_id=a", "--set", "N=5e8"],
     {"threshold": 0.2, "set_fields": {"run_id": "a", "N": 5e8}}),
    ([], {}),
])
def test_api_equals_cli(args, kwargs):
    result = run_inprocess(["eval", *args], input=jsonl(SCORED))
    assert result.exit_code == 0, result.stderr
    assert rlscale.evaluate(SCORED, **kwargs) == result.records


def test_notes_are_the_commands_stderr_lines():
    records = SCORED[:3] + SCORED[:3] + [{"prompt_id": 9, "reward": 0.7, "step": 0}]
    result = run_inprocess(["eval", "--by", "step", "--k", "8"], input=jsonl(records))
    notes: list[str] = []
    rlscale.evaluate(records, by="step", k="8", notes=notes)
    assert [f"rlscale eval: {note}" for note in notes] == result.stderr.splitlines()
    assert len(notes) == 3


def test_prompt_ids_and_groups_follow_core_identity():
    # 1 and 1.0 are one prompt, "1" another; big integer ids stay exact (they merged via float)
    records = [{"prompt_id": p, "reward": 1.0} for p in (1, 1.0, "1", 2**60, 2**60 + 1)]
    (out,) = rlscale.evaluate(records, bootstrap=0)
    assert (out["n_prompts"], out["n_samples"]) == (4, 5)
    runs = rlscale.evaluate([{"N": n, "prompt_id": 1, "reward": 1} for n in (7e9, 7000000000)],
                            by="N", bootstrap=0)
    assert len(runs) == 1


@pytest.mark.parametrize("records, kwargs, message", [
    ([{"prompt_id": 1, "reward": 1}, {"reward": 1}], {},
     "<records>:2: missing required field 'prompt_id'"),
    ([{"prompt_id": 1, "reward": "yes"}], {},
     "<records>:1: field 'reward' must be a finite number or boolean, got 'yes'"),
    ([{"prompt_id": 1, "reward": 1}], {"by": ["step"]},
     "<records>:1: missing group field 'step' (from --by step)"),
    (["not a dict"], {}, "<records>:1: expected a dict, got str"),
])
def test_bad_records_raise_naming_their_index(records, kwargs, message):
    with pytest.raises(RecordError) as exc:
        rlscale.evaluate(records, **kwargs)
    assert str(exc.value) == message


@pytest.mark.parametrize("kwargs, option, message", [
    ({"k": "0"}, "k", "k values must be integers >= 1, got '0'"),
    ({"k": "two"}, "k", "k: cannot read 'two'"),
    ({"k": [1.5]}, "k", "k: cannot read 1.5"),
    ({"bootstrap": -1}, "bootstrap", "bootstrap must be >= 0, got -1"),
    ({"by": ["step", "step"]}, "by", "by step,step: a field is named twice"),
    ({"threshold": float("nan")}, "threshold", "threshold must be a finite number, got nan"),
    ({"set_fields": {"loss": 1}}, "set_fields",
     "set_fields loss: eval computes this field itself; choose another name"),
])
def test_bad_options_raise_naming_the_parameter(kwargs, option, message):
    with pytest.raises(OptionError) as exc:
        rlscale.evaluate([{"prompt_id": 1, "reward": 1}], **kwargs)
    assert (exc.value.option, str(exc.value)) == (option, message)


def test_cli_defaults_equal_api_defaults():
    api = inspect.signature(rlscale.evaluate).parameters
    cli = inspect.signature(command).parameters
    shared = [name for name in api if name in cli]
    assert set(shared) == {"by", "k", "bootstrap", "seed", "reward_field", "prompt_field",
                           "threshold", "set_fields"}
    for name in shared:
        assert api[name].default == cli[name].default, name


def test_options_helpers():
    assert listed(["a", "b"], "by") == ["a", "b"]
    with pytest.raises(OptionError, match="by: cannot read 3"):
        listed([3], "by")
    error = OptionsError("{run_id} needs a single {from_verl_log}")
    assert error.option == "run_id"
    assert error.with_flag({"from_verl_log": "--log"}) == "--run-id needs a single --log"


def test_importing_the_api_imports_no_heavy_library():
    probe = ("import sys, rlscale\nrlscale.evaluate([{'prompt_id': 1, 'reward': 1}])\n"
             "print(sorted(m for m in ('torch', 'transformers', 'vllm', 'matplotlib') "
             "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=120, check=True)
    assert out.stdout.strip() == "[]"
