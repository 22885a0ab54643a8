"""Pure rollout logic: parameters, seeds, ids, shards, resume bookkeeping, planning, records."""

from __future__ import annotations

import doctest
import hashlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rlscale.core import sampling
from rlscale.core.errors import RecordError, UsageError
from rlscale.core.prompts import check_prompt, render_plan
from rlscale.core.sampling import (
    PlanStats,
    ResumeState,
    SampleOutput,
    SamplingParams,
    Shard,
    choose_backend,
    contiguous_runs,
    derive_prompt_id,
    finish_from_ids,
    parse_engine_args,
    parse_shard,
    plan_problems,
    prompt_seed,
    rollout_records,
    sample_seed,
    stop_token_ids,
)
from rlscale.io.jsonl import Where

STOP = 2  # the fake engine's EOS


def test_doctests():
    result = doctest.testmod(sampling)
    assert result.attempted >= 10 and result.failed == 0


class FakeEngine:
    """A deterministic engine: a sample's tokens are a function of its seed and prompt only."""

    backend = "fake"
    context_length = 64

    def __init__(self):
        self.calls: list[list] = []

    def encode_prompt(self, prompt):
        text = prompt if isinstance(prompt, str) else "|".join(m["content"] for m in prompt)
        return [10 + (ord(c) % 50) for c in text]

    def generate(self, requests):
        self.calls.append(list(requests))
        outputs = []
        for r in requests:
            length = 1 + (r.seed + sum(r.prompt_ids)) % 6
            ids = [3 + (r.seed * 31 + k * 7) % 90 for k in range(length)]
            if length % 2:
                outputs.append(SampleOutput(tuple(ids) + (STOP,), "stop"))
            else:
                outputs.append(SampleOutput(tuple(ids), "length"))
        return outputs

    def decode(self, completions):
        return [" ".join(map(str, ids)) for ids in completions]

    def stop_ids(self):
        return [STOP]


def where(i: int) -> Where:
    return Where("in.jsonl", i + 1)


def run(records, params=SamplingParams(n=3, max_tokens=8, seed=5), *, shard=Shard(),
        resume=None, batch_size=2, engine=None, invalid=None, keep_token_ids=True):
    engine = engine or FakeEngine()
    errors = []

    def record_invalid(w, message):
        errors.append(f"{w}: {message}")

    planned = plan_problems(((dict(r), where(i)) for i, r in enumerate(records)), params=params,
                            encode=engine.encode_prompt, invalid=invalid or record_invalid,
                            shard=shard, resume=resume, context_length=engine.context_length)
    out = list(rollout_records(planned, engine, params, batch_size=batch_size, model="m",
                               keep_token_ids=keep_token_ids))
    return out, errors


PROBLEMS = [{"prompt_id": f"p{i}", "prompt": f"question {i}?", "answer": str(i),
             "data_source": "math__x"} for i in range(7)]


# --- parameters ----------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, message", [
    ({"n": 0}, "-n must be at least 1, got 0"),
    ({"temperature": -0.1}, "--temperature must be a finite number >= 0, got -0.1"),
    ({"top_p": 0.0}, "--top-p must be in (0, 1], got 0.0"),
    ({"top_p": 1.5}, "--top-p must be in (0, 1], got 1.5"),
    ({"top_k": -2}, "--top-k must be -1 (off) or a positive integer, got -2"),
    ({"max_tokens": 0}, "--max-tokens must be at least 1, got 0"),
    ({"seed": -1}, "--seed must be >= 0, got -1"),
])
def test_sampling_params_reject_bad_values(kwargs, message):
    with pytest.raises(UsageError) as info:
        SamplingParams(**kwargs)
    assert str(info.value) == message


def test_sampling_params_defaults_are_the_papers_and_top_k_zero_means_off():
    params = SamplingParams()
    assert (params.n, params.temperature, params.top_p, params.top_k, params.max_tokens) == \
        (8, 1.0, 1.0, -1, 4096)
    assert SamplingParams(top_k=0).top_k == -1
    assert SamplingParams(temperature=0).greedy and not params.greedy


def test_choose_backend():
    assert choose_backend("auto", vllm_installed=True, gpu_available=True) == "vllm"
    assert choose_backend("auto", vllm_installed=False, gpu_available=True) == "hf"
    assert choose_backend("hf", vllm_installed=True, gpu_available=True) == "hf"
    with pytest.raises(UsageError, match="no GPU is available; use --backend hf"):
        choose_backend("vllm", vllm_installed=True, gpu_available=False)
    with pytest.raises(UsageError, match="vLLM is not installed"):
        choose_backend("vllm", vllm_installed=False, gpu_available=True)
    with pytest.raises(UsageError, match="--backend tgi: expected one of auto, hf, vllm"):
        choose_backend("tgi", vllm_installed=False, gpu_available=False)


# --- seeds and ids -------------------------------------------------------------------------


def test_prompt_seed_is_the_documented_hash():
    digest = hashlib.sha256(b'rlscale-rollout\x000\x00"p7"').digest()
    expected = int.from_bytes(digest[:8], "big") >> 2
    assert prompt_seed(0, "p7") == expected
    assert sample_seed(0, "p7", 5) == expected + 5


@given(st.integers(0, 2**32), st.one_of(st.text(max_size=20), st.integers(-10**9, 10**9)),
       st.integers(0, 1023))
def test_sample_seeds_fit_int64_and_separate_ids(seed, prompt_id, sample_idx):
    value = sample_seed(seed, prompt_id, sample_idx)
    assert 0 <= value < 2**63
    assert prompt_seed(seed, prompt_id) != prompt_seed(seed, f"{prompt_id}x")


def test_numeric_and_string_prompt_ids_differ():
    assert prompt_seed(0, 1) != prompt_seed(0, "1")


def test_prompt_ids_are_record_identitys_prompt_key():
    # an integral float is the integer's id (JSON numbers are values); seeds of string and
    # integer ids are the hash of their JSON text, as before
    assert prompt_seed(3, 1.0) == prompt_seed(3, 1)
    digest = hashlib.sha256(b"rlscale-rollout\x003\x0012").digest()
    assert prompt_seed(3, 12) == int.from_bytes(digest[:8], "big") >> 2
    assert prompt_seed(0, 2**70) != prompt_seed(0, 2**70 + 1)  # integers beyond 64 bits
    state = ResumeState(seed=0, sampling={})
    state.add({"prompt_id": 4.0, "sample_idx": 1}, "f", 1)
    assert state.missing(4, 3) == [0, 2]


def test_derive_prompt_id_hashes_canonical_json():
    messages = [{"role": "user", "content": "Find $x$."}]
    canonical = json.dumps(messages, sort_keys=True, separators=(",", ":"),
                           ensure_ascii=False).encode()
    assert derive_prompt_id(messages) == hashlib.sha256(canonical).hexdigest()[:16]
    assert derive_prompt_id("Find $x$.") != derive_prompt_id(messages)


@given(st.lists(st.integers(0, 60), unique=True).map(sorted))
def test_contiguous_runs_cover_exactly_the_indices(indices):
    runs = contiguous_runs(indices)
    assert [i for start, count in runs for i in range(start, start + count)] == indices
    assert all(a[0] + a[1] < b[0] for a, b in zip(runs, runs[1:], strict=False))


def test_stop_token_ids_merge():
    assert stop_token_ids(None, None) == []
    assert stop_token_ids(7, [7, 9], 9) == [7, 9]


# --- shards and engine args ----------------------------------------------------------------


@pytest.mark.parametrize("text, message", [
    ("1", "--shard 1: expected INDEX/COUNT, e.g. 0/4"),
    ("a/2", "--shard a/2: expected INDEX/COUNT, e.g. 0/4"),
    ("0/0", "--shard 0/0: the count must be at least 1"),
    ("-1/3", "--shard -1/3: the index must be in 0..2"),
])
def test_parse_shard_errors(text, message):
    with pytest.raises(UsageError) as info:
        parse_shard(text)
    assert str(info.value) == message


@given(st.integers(1, 9), st.integers(0, 50))
def test_shards_partition_positions(count, n_items):
    owners = [[i for i in range(count) if Shard(i, count).selects(p)] for p in range(n_items)]
    assert all(len(o) == 1 for o in owners)
    assert parse_shard(f"{count - 1}/{count}") == Shard(count - 1, count)


def test_parse_engine_args():
    assert parse_engine_args(["gpu-memory-utilization=0.8", "quantization=fp8"]) == \
        {"gpu_memory_utilization": 0.8, "quantization": "fp8"}
    with pytest.raises(UsageError, match="--vllm-arg 'oops': expected KEY=VALUE"):
        parse_engine_args(["oops"])


# --- prompts -------------------------------------------------------------------------------


@pytest.mark.parametrize("value, message", [
    ("", "field 'prompt' is an empty string"),
    ([], "field 'prompt' is an empty message list"),
    (5, "field 'prompt' must be a string or a list of {role, content} messages, got integer"),
    (["hi"], "prompt message 0 must be an object with 'role' and 'content', got string"),
    ([{"role": "user"}], "prompt message 0: 'content' must be a string"),
])
def test_check_prompt_errors(value, message):
    with pytest.raises(ValueError) as info:
        check_prompt(value)
    assert str(info.value) == message


def test_check_prompt_keeps_role_and_content_only():
    assert check_prompt([{"role": "user", "content": "x", "name": "u"}]) == \
        [{"role": "user", "content": "x"}]


def test_render_plan():
    one = [{"role": "user", "content": "Q"}]
    two = [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}]
    assert render_plan("Q", True) == ("chat", one)
    assert render_plan(two, True) == ("chat", two)
    assert render_plan("Q", False) == ("raw", "Q")
    assert render_plan(one, False) == ("raw", "Q")
    with pytest.raises(ValueError, match="list of 2 messages; --no-chat-template needs"):
        render_plan(two, False)


def test_finish_from_ids_cuts_at_first_stop():
    assert finish_from_ids([4, 2, 2, 0], {2}, 4) == SampleOutput((4, 2), "stop")
    assert finish_from_ids([4, 5, 6, 2], {2}, 4) == SampleOutput((4, 5, 6, 2), "stop")
    assert finish_from_ids([4, 5, 6, 7, 2], {2}, 4) == SampleOutput((4, 5, 6, 7), "length")


# --- planning and records ------------------------------------------------------------------


def test_records_have_the_contract_fields_and_pass_through():
    out, errors = run(PROBLEMS[:2])
    assert errors == []
    assert [(r["prompt_id"], r["sample_idx"]) for r in out] == \
        [("p0", 0), ("p0", 1), ("p0", 2), ("p1", 0), ("p1", 1), ("p1", 2)]
    engine = FakeEngine()
    for record in out:
        assert record["answer"] == record["prompt_id"][1:] and record["data_source"] == "math__x"
        assert record["prompt"].startswith("question")
        assert record["prompt_ids"] == engine.encode_prompt(record["prompt"])
        assert record["n_prompt_tokens"] == len(record["prompt_ids"])
        assert record["n_completion_tokens"] == len(record["completion_ids"])
        assert (record["model"], record["seed"]) == ("m", 5)
        assert record["sampling"] == {"backend": "fake", "temperature": 1.0, "top_p": 1.0,
                                      "top_k": -1, "max_tokens": 8}
        # the fake's tokens are a function of the documented per-sample seed
        seed = sample_seed(5, record["prompt_id"], record["sample_idx"])
        expected = engine.generate([sampling.SampleRequest(tuple(record["prompt_ids"]),
                                                           record["sample_idx"], seed)])[0]
        assert tuple(record["completion_ids"]) == expected.completion_ids
        assert record["finish_reason"] == expected.finish_reason
        # the text drops the stop token, the ids keep it
        shown = expected.completion_ids[:-1] if expected.finish_reason == "stop" \
            else expected.completion_ids
        assert record["completion"] == " ".join(map(str, shown))


def test_no_token_ids_drops_both_fields_even_when_passed_through():
    problems = [dict(PROBLEMS[0], prompt_ids=[1], completion_ids=[2])]
    out, _ = run(problems, keep_token_ids=False)
    assert all("prompt_ids" not in r and "completion_ids" not in r for r in out)


def test_fields_of_an_earlier_sample_are_dropped():
    problems = [dict(PROBLEMS[0], reward=1.0, pred="3", verdict="correct", advantage=0.5,
                     old_logprobs=[-0.1], pass_rate=0.25)]
    out, _ = run(problems)
    for record in out:
        assert not {"reward", "pred", "verdict", "advantage", "old_logprobs"} & set(record)
        assert record["pass_rate"] == 0.25


@pytest.mark.parametrize("batch_size", [1, 3, 100])
def test_batch_size_does_not_change_records(batch_size):
    reference, _ = run(PROBLEMS, batch_size=2)
    out, _ = run(PROBLEMS, batch_size=batch_size)
    assert out == reference


def test_batches_hold_batch_size_problems():
    engine = FakeEngine()
    run(PROBLEMS, batch_size=3, engine=engine)
    assert [len(call) for call in engine.calls] == [9, 9, 3]


@given(st.integers(1, 5))
def test_shards_together_equal_the_unsharded_run(count):
    full, _ = run(PROBLEMS)
    parts = [r for i in range(count) for r in run(PROBLEMS, shard=Shard(i, count))[0]]
    key = lambda r: (r["prompt_id"], r["sample_idx"])  # noqa: E731
    assert sorted(parts, key=key) == sorted(full, key=key)
    assert [r["prompt_id"] for r in run(PROBLEMS, shard=Shard(1, 3))[0][::3]] == ["p1", "p4"]


def test_resume_draws_only_missing_samples_and_matches_a_full_run():
    full, _ = run(PROBLEMS)
    state = ResumeState(seed=5, sampling=SamplingParams(n=3, max_tokens=8, seed=5).describe())
    kept = full[:4] + full[7:8]  # p0 complete, p1 has sample 0, p2 has sample 1
    for i, record in enumerate(kept):
        state.add(record, "out.jsonl", i + 1)
    assert state.summary(3) == (1, 2)
    assert state.missing("p1", 3) == [1, 2] and state.missing("p9", 3) == [0, 1, 2]
    rest, _ = run(PROBLEMS, resume=state)
    key = lambda r: (r["prompt_id"], r["sample_idx"])  # noqa: E731
    assert sorted(kept + rest, key=key) == sorted(full, key=key)
    assert all(r["prompt_id"] != "p0" for r in rest)


def test_resume_refuses_other_seed_or_sampling():
    state = ResumeState(seed=0, sampling=SamplingParams(temperature=1.0).describe())
    with pytest.raises(RecordError) as info:
        state.add({"prompt_id": "a", "sample_idx": 0, "seed": 3}, "out.jsonl", 4)
    assert str(info.value) == ("out.jsonl:4: resume: written with --seed 3, this run has --seed 0; "
                               "use the same seed or another -o file")
    with pytest.raises(RecordError) as info:
        state.add({"prompt_id": "a", "sample_idx": 0, "seed": 0,
                   "sampling": {"temperature": 0.7}}, "out.jsonl", 2)
    assert str(info.value) == ("out.jsonl:2: resume: written with --temperature 0.7, this run has "
                               "--temperature 1.0")
    state = ResumeState(seed=0, sampling={"chat_template": True})
    with pytest.raises(RecordError) as info:
        state.add({"prompt_id": "a", "sample_idx": 0, "sampling": {"chat_template": False}},
                  "out.jsonl", 3)
    assert str(info.value) == ("out.jsonl:3: resume: written with --no-chat-template, this run "
                               "has --chat-template")
    with pytest.raises(RecordError, match="out.jsonl:9: resume: missing or invalid 'sample_idx'"):
        state.add({"prompt_id": "a"}, "out.jsonl", 9)


def test_invalid_records_are_reported_with_their_location():
    problems = [
        {"prompt_id": "a", "prompt": "ok"},
        {"prompt_id": "b"},
        {"prompt_id": ["x"], "prompt": "q"},
        {"prompt_id": "a", "prompt": "again"},
        {"prompt": ""},
        {"prompt_id": "c", "prompt": "x" * 60},
    ]
    out, errors = run(problems)
    assert errors == [
        "in.jsonl:2: missing required field 'prompt'",
        "in.jsonl:3: field 'prompt_id' must be a string or a number, got array",
        'in.jsonl:4: duplicate prompt_id "a" (first at in.jsonl:1); give every problem its own '
        "prompt_id",
        "in.jsonl:5: field 'prompt' is an empty string",
        "in.jsonl:6: prompt has 60 tokens; with --max-tokens 8 it exceeds the model's context of "
        "64 tokens (use --skip-invalid to drop such prompts)",
    ]
    assert {r["prompt_id"] for r in out} == {"a"}


def test_max_prompt_tokens_refuses_longer_prompts():
    engine = FakeEngine()
    errors = []
    problems = [{"prompt_id": "a", "prompt": "x" * 5}, {"prompt_id": "b", "prompt": "x" * 6}]
    planned = list(plan_problems(((dict(p), where(i)) for i, p in enumerate(problems)),
                                 params=SamplingParams(n=1, max_tokens=4),
                                 encode=engine.encode_prompt,
                                 invalid=lambda w, m: errors.append(f"{w}: {m}"),
                                 max_prompt_tokens=5))
    assert [p.prompt_id for p in planned] == ["a"]
    assert errors == ["in.jsonl:2: prompt has 6 tokens, more than --max-prompt-tokens 5 (use "
                      "--skip-invalid to drop such prompts)"]


def test_duplicates_are_found_across_shards_but_reported_by_the_owning_shard():
    problems = [{"prompt_id": "a", "prompt": "x"}, {"prompt_id": "a", "prompt": "y"}]
    assert run(problems, shard=Shard(0, 2))[1] == []
    assert len(run(problems, shard=Shard(1, 2))[1]) == 1


def test_missing_prompt_id_is_derived_from_the_prompt():
    prompt = [{"role": "user", "content": "Find 2+2."}]
    out, _ = run([{"prompt": prompt, "answer": "4"}])
    assert {r["prompt_id"] for r in out} == {derive_prompt_id(prompt)}


def test_verl_rows_without_prompt_id_get_curates_id():
    row = {"data_source": "math__deepscaler_preview", "extra_info": {"index": 13},
           "prompt": [{"role": "user", "content": "Q"}]}
    out, _ = run([row, dict(row, extra_info={"index": True})])
    assert [r["prompt_id"] for r in out[::3]] == [
        "math__deepscaler_preview#13", derive_prompt_id([{"role": "user", "content": "Q"}])]


def test_plan_stats_count_skips():
    stats = PlanStats()
    state = ResumeState(seed=0, sampling={})
    for i in range(3):
        state.add({"prompt_id": "p0", "sample_idx": i}, "o", i + 1)
    params = SamplingParams(n=3, max_tokens=4)
    list(plan_problems(((dict(p), where(i)) for i, p in enumerate(PROBLEMS)), params=params,
                       encode=FakeEngine().encode_prompt, invalid=lambda w, m: None,
                       shard=Shard(0, 2), resume=state, stats=stats))
    assert (stats.read, stats.in_shard, stats.complete, stats.planned) == (7, 4, 1, 3)
