"""rlscale.rollout: the same samples as the command, records and options refused by index and
parameter name, the command's defaults (tiny model built in code, CPU)."""

from __future__ import annotations

import doctest
import inspect

import orjson
import pytest

import rlscale
from rlscale.api import rollout as rollout_api
from rlscale.cli._command import SKELETON
from rlscale.core.errors import OptionError, RecordError
from tests.conftest import jsonl, run_inprocess

torch = pytest.importorskip("torch")

PROBLEMS = [
    {"prompt_id": "p0", "prompt": "What is 12 + 7?", "answer": "19"},
    {"prompt_id": 1, "prompt": [{"role": "user", "content": "Find 3 * 3."}], "answer": "9"},
    {"prompt": "The answer is", "answer": "1", "data_source": "math__a",
     "extra_info": {"index": 4}},
]
OPTIONS = {"n": 2, "max_tokens": 5, "seed": 3, "backend": "hf", "batch_size": 2}
FLAGS = ["-n", "2", "--max-tokens", "5", "--seed", "3", "--backend", "hf", "--batch-size", "2"]


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def as_json(records):
    return [orjson.loads(orjson.dumps(record)) for record in records]


def test_doctests():
    result = doctest.testmod(rollout_api)
    assert result.attempted >= 2 and result.failed == 0


def test_the_api_gives_the_commands_samples(tiny_checkpoint):
    samples = rlscale.rollout(PROBLEMS, model=tiny_checkpoint, **OPTIONS)
    records = as_json(samples)
    cli = run_inprocess(["rollout", "--model", tiny_checkpoint, *FLAGS, "-q"],
                        input=jsonl(PROBLEMS))
    assert cli.exit_code == 0, cli.stderr
    assert records == cli.records
    assert [(r["prompt_id"], r["sample_idx"]) for r in records] == \
        [("p0", 0), ("p0", 1), (1, 0), (1, 1), ("math__a#4", 0), ("math__a#4", 1)]
    assert (samples.backend, samples.plan.planned, samples.n_samples) == ("hf", 3, 6)
    assert samples.n_completion_tokens == sum(r["n_completion_tokens"] for r in records)


def test_resume_from_draws_only_the_missing_samples(tiny_checkpoint):
    full = as_json(rlscale.rollout(PROBLEMS, model=tiny_checkpoint, **OPTIONS))
    notes = []
    rest = rlscale.rollout(PROBLEMS, model=tiny_checkpoint, **OPTIONS, resume_from=full[:3],
                           log=notes.append)
    assert as_json(rest) == full[3:]  # a sample depends on its seed, not on what came before
    assert rest.plan.complete == 1
    assert notes == ["resuming <records>: 3 samples, 1 problems complete, 1 partial"]
    other = rlscale.rollout(PROBLEMS, model=tiny_checkpoint, **{**OPTIONS, "seed": 4},
                            resume_from=full[:1])
    with pytest.raises(RecordError, match=r"^<records>:1: resume: written with --seed 3, this "):
        next(other)


@pytest.mark.parametrize("records, message", [
    ([PROBLEMS[0], {"prompt": ""}], "<records>:2: field 'prompt' is an empty string"),
    (["What is 1 + 1?"], "<records>:1: expected a dict, got str"),
    ([PROBLEMS[0], PROBLEMS[0]], '<records>:2: duplicate prompt_id "p0" (first at '
     "<records>:1); give every problem its own prompt_id"),
])
def test_a_bad_record_raises_naming_its_index(tiny_checkpoint, records, message):
    with pytest.raises(RecordError) as info:
        list(rlscale.rollout(records, model=tiny_checkpoint, **OPTIONS))
    assert str(info.value) == message


@pytest.mark.parametrize("options, name, message", [
    ({"n": 0}, "n", "n must be at least 1, got 0"),
    ({"top_p": 1.5}, "top_p", "top_p must be in (0, 1], got 1.5"),
    ({"temperature": -1.0}, "temperature", "temperature must be a finite number >= 0, got -1.0"),
    ({"batch_size": 0}, "batch_size", "batch_size must be at least 1, got 0"),
    ({"max_prompt_tokens": 0}, "max_prompt_tokens", "max_prompt_tokens must be at least 1, "
     "got 0"),
    ({"lora": "/no/such/adapter"}, "lora", "lora /no/such/adapter: no such directory"),
])
def test_a_bad_option_raises_naming_the_parameter(options, name, message):
    samples = rlscale.rollout(PROBLEMS, model="never-loaded", **options)  # lazy: nothing yet
    with pytest.raises(OptionError) as info:
        samples.start()
    assert (info.value.option, str(info.value)) == (name, message)


def test_greedy_sampling_is_noted(tiny_checkpoint):
    notes = []
    records = list(rlscale.rollout(PROBLEMS[:1], model=tiny_checkpoint, n=2, max_tokens=3,
                                   temperature=0.0, backend="hf", log=notes.append))
    assert records[0]["completion_ids"] == records[1]["completion_ids"]
    assert notes == ["warning: --temperature 0 is greedy decoding; the 2 samples of each "
                     "problem will be identical"]


def test_the_commands_options_are_the_apis_with_the_same_defaults():
    from rlscale.cli import rollout as rollout_cli

    api = inspect.signature(rlscale.rollout).parameters
    command = {name: parameter.default for name, parameter
               in inspect.signature(rollout_cli.command).parameters.items()
               if name not in SKELETON and name != "resume"}  # --resume -o FILE is resume_from
    assert command.pop("model") is ... and api["model"].default is inspect.Parameter.empty
    assert command and set(command) <= set(api)
    assert {name: api[name].default for name in command} == command
    assert api["resume_from"].default is None
