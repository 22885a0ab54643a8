"""``rlscale.grpo_step`` (the Python API) against ``rlscale grpo-step`` (the command) on a tiny
Qwen2 checkpoint built in code: the same step, metrics and saved weights; options named as the
command names them, with the same defaults."""

from __future__ import annotations

import inspect
import shutil

import pytest

import rlscale
from rlscale.api.grpo_step import grpo_step
from rlscale.core.errors import OptionError, RecordError
from tests.conftest import jsonl, run_inprocess
from tests.test_grpo_step import make_records

# differ between two runs of the same step by nature: the clock and where the step ran
RUN_SPECIFIC = ("wall_s", "policy", "out")


@pytest.fixture(scope="module")
def tokenizer(tiny_checkpoint):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_checkpoint)


def _weights(directory):
    from safetensors.torch import load_file

    return load_file(f"{directory}/model.safetensors")


def test_api_step_equals_the_command(tiny_checkpoint, tokenizer, tmp_path):
    import torch

    records = make_records(tokenizer, seed=2)
    settings = {"lr": 1e-3, "kl_coef": 0.01, "mini_batches": 2, "micro_batch_size": 3,
                "seed": 5, "clip_high": 0.28}
    cli_ckpt, api_ckpt = tmp_path / "cli", tmp_path / "api"
    for path in (cli_ckpt, api_ckpt):
        shutil.copytree(tiny_checkpoint, path)
    flags = [f"--{key.replace('_', '-')}={value}" for key, value in settings.items()]
    result = run_inprocess(["grpo-step", "--policy", str(cli_ckpt), "--ref", tiny_checkpoint,
                            "--out", str(cli_ckpt), *flags], input=jsonl(records))
    assert result.exit_code == 0, result.stderr
    (from_cli,) = result.records

    notes: list[str] = []
    from_api = rlscale.grpo_step(records, policy=str(api_ckpt), ref=tiny_checkpoint,
                                 out=str(api_ckpt), log=notes.append, **settings)
    assert list(from_api) == list(from_cli)  # same fields, same order
    assert {k: v for k, v in from_api.items() if k not in RUN_SPECIFIC} == \
        {k: v for k, v in from_cli.items() if k not in RUN_SPECIFIC}
    assert from_api["step"] == 1 and from_api["out"] == str(api_ckpt)
    assert isinstance(from_api["flops_step"], int)
    cli_weights, api_weights = _weights(cli_ckpt), _weights(api_ckpt)
    assert cli_weights.keys() == api_weights.keys()
    for name, value in cli_weights.items():
        assert torch.equal(value, api_weights[name]), name
    # the command's notes are the API's log lines with the command's prefix
    assert notes[0] == f"loading {api_ckpt}"
    assert f"rlscale grpo-step: loading {cli_ckpt}" in result.stderr.splitlines()
    assert notes[1].startswith("step 1: 16 samples, 4 groups (")


def test_no_records_no_step(tiny_checkpoint, tmp_path):
    out = tmp_path / "out"
    assert grpo_step([], policy=tiny_checkpoint, out=str(out), kl_coef=0) is None
    assert not out.exists()


def test_advantages_mode_is_an_iterator_like_the_command():
    rows = [{"prompt_id": "a", "reward": 1, "keep": 0}, {"prompt_id": "a", "reward": 0},
            {"prompt_id": 7, "reward": 1}, {"prompt_id": 7, "reward": 1}]
    notes: list[str] = []
    ours = grpo_step(iter(rows), emit="advantages", std="none", log=notes.append)
    assert iter(ours) is ours
    result = run_inprocess(["grpo-step", "--emit", "advantages", "--std", "none"],
                           input=jsonl(rows))
    assert list(ours) == result.records
    assert notes == ["4 records, 2 groups, 1 with zero advantage"]
    assert "rlscale grpo-step: 4 records, 2 groups, 1 with zero advantage" in result.stderr
    with pytest.raises(RecordError, match=r"<records>:2: field 'reward' must be a number"):
        list(grpo_step([rows[0], {"prompt_id": "a", "reward": "yes"}], emit="advantages"))


def test_emit_verl_returns_the_commands_record():
    ours = grpo_step(emit="verl", policy="/m", kl="k2", lora=True)
    result = run_inprocess(["grpo-step", "--emit", "verl", "--policy", "/m", "--kl", "k2",
                            "--lora"])
    assert result.exit_code == 0, result.stderr
    assert result.records == [ours]


@pytest.mark.parametrize(("options", "name", "message"), [
    ({"emit": "weights"}, "emit", "emit must be one of metrics, advantages, verl, got 'weights'"),
    ({"emit": "advantages", "std": "sample"}, "std", "std must be one of unbiased, biased, none"),
    ({"emit": "verl"}, "emit", "emit verl needs policy (the model VeRL starts from)"),
    ({}, "policy", "policy and out are required (or use emit advantages)"),
    ({"policy": "p", "out": "o"}, "ref", "ref is required when kl_coef > 0 (use kl_coef 0"),
    ({"policy": "p", "out": "r", "ref": "r"}, "out", "out must differ from ref"),
    ({"policy": "p", "out": "o", "kl_coef": 0, "kl": "k9"}, "kl",
     "kl must be one of k1, k2, k3, got 'k9'"),
    ({"policy": "p", "out": "o", "kl_coef": 0, "lr": 0}, "lr", "lr must be > 0, got 0"),
    ({"policy": "p", "out": "o", "kl_coef": 0, "dual_clip": 0.5}, "dual_clip",
     "dual_clip must be > 1 (or 0 to disable), got 0.5"),
    ({"policy": "p", "out": "o", "kl_coef": 0, "micro_batch_size": 0}, "micro_batch_size",
     "micro_batch_size must be >= 1, got 0"),
    # what VeRL cannot express (integrations/verl_launch.py) is named the same way
    ({"emit": "verl", "policy": "m", "std": "biased"}, "std",
     "std biased: VeRL's GRPO advantage divides by the unbiased std only (use std unbiased"),
    ({"emit": "verl", "policy": "m", "mini_batches": 3}, "train_batch_size",
     "train_batch_size 512 is not divisible by mini_batches 3"),
])
def test_bad_options_raise_option_error_naming_the_parameter(options, name, message):
    with pytest.raises(OptionError) as caught:
        grpo_step([], **options)
    assert caught.value.option == name
    assert str(caught.value).startswith(message)


def test_too_few_groups_names_mini_batches(tiny_checkpoint, tmp_path):
    rows = [{"prompt_id": "a", "reward": 1, "prompt_ids": [1], "completion_ids": [2]}]
    with pytest.raises(OptionError) as caught:
        grpo_step(rows, policy=tiny_checkpoint, out=str(tmp_path / "o"), kl_coef=0)
    assert str(caught.value) == ("mini_batches 4 needs at least 4 prompt groups; the input has "
                                 "1 (lower mini_batches or give more prompts)")
    assert caught.value.with_flag().startswith("--mini-batches 4 needs")


def test_command_defaults_are_the_api_defaults():
    from rlscale.cli import grpo_step as cli
    from rlscale.cli._command import SKELETON

    api = inspect.signature(grpo_step).parameters
    command = inspect.signature(cli.command).parameters
    own = [name for name in command if name not in SKELETON]
    assert own == [name for name in api if name not in ("records", "log", "progress")]
    for name in own:
        assert command[name].default == api[name].default, name


def test_doctests():
    import doctest

    import rlscale.api.grpo_step as module

    assert doctest.testmod(module).failed == 0
