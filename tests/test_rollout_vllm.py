"""The vLLM backend's request building, checked without a GPU against a fake ``vllm`` module.

The fake mimics vLLM's documented behaviour for what rlscale relies on: ``SamplingParams(n=k,
seed=s)`` fans out into children seeded ``s + i`` (vllm/v1/engine/parallel_sampling.py), outputs
carry ``index``, ``token_ids`` (stop token included) and ``finish_reason``.
"""

from __future__ import annotations

import json
import os
import random
import sys
from types import SimpleNamespace

import pytest

from rlscale.core.errors import RlscaleError
from rlscale.core.sampling import (
    ResumeState,
    SampleRequest,
    SamplingParams,
    plan_problems,
    prompt_seed,
    rollout_records,
    sample_seed,
)
from rlscale.engines.vllm_rollout import (
    VllmRequest,
    VllmRollout,
    group_requests,
    import_vllm,
    llm_kwargs,
    lora_rank,
    sampling_kwargs,
)
from rlscale.io.jsonl import Where

PROBLEMS = [
    {"prompt_id": "a", "prompt": "What is 12 + 7?", "answer": "19"},
    {"prompt_id": "b", "prompt": [{"role": "user", "content": "Find 3 * 3."}], "answer": "9"},
    {"prompt_id": 7, "prompt": "The answer is", "answer": "1"},
]


def fake_tokens(seed: int, prompt_ids, max_tokens: int, stop: int):
    """A child's tokens: a function of its own seed and prompt (like a seeded vLLM sampler)."""
    rng = random.Random(seed * 1_000_003 + sum(prompt_ids))
    length = rng.randint(1, max_tokens)
    ids = [rng.randint(3, 150) for _ in range(length)]
    if rng.random() < 0.5:
        ids[-1] = stop
        return ids, "stop"
    return ids, "length"


class FakeSamplingParams:
    """Enforces the checks of vLLM 0.33's ``SamplingParams._verify_args`` that rlscale can hit."""

    def __init__(self, **kwargs):
        n, t = kwargs.get("n", 1), kwargs.get("temperature", 1.0)
        if not 0 <= t <= 2:
            raise ValueError(f"temperature must be in [0, 2], got {t}.")
        if t < 1e-5 and n > 1:
            raise ValueError(f"n must be 1 when using greedy sampling, got {n}.")
        if not 0 < kwargs.get("top_p", 1.0) <= 1:
            raise ValueError("top_p must be in (0, 1].")
        if kwargs.get("top_k", -1) < -1:
            raise ValueError("top_k must be -1 (disable) or at least 1.")
        if kwargs.get("max_tokens", 16) < 1:
            raise ValueError("max_tokens must be at least 1.")
        logprobs = kwargs.get("logprobs")
        if logprobs is not None and logprobs < 0:
            raise ValueError("logprobs must be non-negative.")
        self.kwargs = kwargs


class FakeLLM:
    instances: list[FakeLLM] = []

    def __init__(self, **kwargs):
        # what vLLM 0.33's engine start-up refuses, or what rlscale must never leave implicit
        if not 0 <= kwargs.get("seed", 0) < 2**32:
            raise ValueError("Seed must be between 0 and 2**32 - 1")  # np.random.seed
        if kwargs.get("logprobs_mode", "raw_logprobs") not in (
                "raw_logprobs", "raw_logits", "processed_logprobs", "processed_logits"):
            raise ValueError(f"invalid logprobs_mode {kwargs['logprobs_mode']}")
        assert kwargs["dtype"] != "auto", "vLLM's auto would turn fp32 into bf16"
        self.kwargs = kwargs
        self.calls = []
        self.finish_override = None
        self.llm_engine = SimpleNamespace(model_config=SimpleNamespace(max_model_len=512))
        FakeLLM.instances.append(self)

    def generate(self, prompts, sampling_params, *, lora_request=None, use_tqdm=True):
        self.calls.append((prompts, sampling_params, lora_request, use_tqdm))
        results = []
        for prompt, params in zip(prompts, sampling_params, strict=True):
            kw = params.kwargs
            stop = kw["stop_token_ids"][0]
            outputs = []
            for i in range(kw["n"]):
                ids, reason = fake_tokens(kw["seed"] + i, prompt["prompt_token_ids"],
                                          kw["max_tokens"], stop)
                logprobs = None
                if kw.get("logprobs") is not None:  # the sampled token's entry plus the top-k
                    logprobs = [{t: SimpleNamespace(logprob=-t / 100.0),
                                 999: SimpleNamespace(logprob=-0.001)} for t in ids]
                outputs.append(SimpleNamespace(index=i, token_ids=ids,
                                               finish_reason=self.finish_override or reason,
                                               text="<not used: detokenize=False>",
                                               logprobs=logprobs))
            random.Random(0).shuffle(outputs)  # vLLM may finish children in any order
            results.append(SimpleNamespace(outputs=outputs))
        return results


class FakeLoRARequest:
    def __init__(self, name, int_id, path):
        self.args = (name, int_id, path)


FAKE_VLLM = SimpleNamespace(LLM=FakeLLM, SamplingParams=FakeSamplingParams,
                            LoRARequest=FakeLoRARequest)


@pytest.fixture(scope="module")
def tokenizer(tiny_checkpoint):
    from rlscale.engines.hf_rollout import load_tokenizer

    return load_tokenizer(tiny_checkpoint)


@pytest.fixture
def adapter(tmp_path):
    path = tmp_path / "adapter"
    path.mkdir()
    (path / "adapter_config.json").write_text(json.dumps({"r": 12, "peft_type": "LORA"}))
    return str(path)


def make(tiny_checkpoint, tokenizer, params, **kwargs):
    return VllmRollout(tiny_checkpoint, params, vllm=FAKE_VLLM, tokenizer=tokenizer, **kwargs)


def rollout(engine, params, resume=None, batch_size=2):
    pairs = ((dict(p), Where("in", i + 1)) for i, p in enumerate(PROBLEMS))

    def invalid(where, message):
        raise AssertionError(f"{where}: {message}")

    planned = plan_problems(pairs, params=params, encode=engine.encode_prompt, invalid=invalid,
                            resume=resume, context_length=engine.context_length)
    return list(rollout_records(planned, engine, params, batch_size=batch_size, model="m"))


def test_llm_is_built_with_tp_seed_lora_and_overrides(tiny_checkpoint, tokenizer, adapter):
    params = SamplingParams(n=4, max_tokens=32, seed=9)
    engine = make(tiny_checkpoint, tokenizer, params, lora=adapter, tensor_parallel_size=2,
                  dtype="bfloat16", engine_args={"max_model_len": 1024, "enforce_eager": True})
    assert engine.llm.kwargs == {
        "model": tiny_checkpoint, "tokenizer": tiny_checkpoint, "tensor_parallel_size": 2,
        "dtype": "bfloat16", "seed": 9, "enable_lora": True, "max_loras": 1,
        "max_lora_rank": 16, "max_model_len": 1024, "enforce_eager": True}
    assert engine.lora_request.args == ("rlscale-lora", 1, os.path.abspath(adapter))
    assert engine.context_length == 512  # read back from the engine's model config
    assert llm_kwargs("m", params)["seed"] == 9 and "enable_lora" not in llm_kwargs("m", params)


def test_requests_carry_token_ids_n_seed_and_stop_tokens(tiny_checkpoint, tokenizer, adapter):
    params = SamplingParams(n=4, temperature=0.6, top_p=0.95, top_k=20, max_tokens=32, seed=9)
    engine = make(tiny_checkpoint, tokenizer, params, lora=adapter)
    records = rollout(engine, params, batch_size=2)
    assert len(records) == 12
    [first, second] = engine.llm.calls
    prompts, sampling, lora_request, use_tqdm = first
    assert use_tqdm is False and lora_request is engine.lora_request
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert prompts == [{"prompt_token_ids": engine.encode_prompt(p["prompt"])} for p in PROBLEMS[:2]]
    assert [s.kwargs for s in sampling] == [
        {"n": 4, "seed": prompt_seed(9, pid), "temperature": 0.6, "top_p": 0.95, "top_k": 20,
         "min_p": 0.0, "repetition_penalty": 1.0, "presence_penalty": 0.0,
         "frequency_penalty": 0.0, "max_tokens": 32, "stop_token_ids": [eos],
         "ignore_eos": False, "detokenize": False}
        for pid in ("a", "b")]
    assert len(second[0]) == 1 and second[1][0].kwargs["seed"] == prompt_seed(9, 7)


def test_records_follow_the_per_sample_seed_contract(tiny_checkpoint, tokenizer):
    params = SamplingParams(n=3, max_tokens=10, seed=1)
    engine = make(tiny_checkpoint, tokenizer, params)
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    for record in rollout(engine, params):
        seed = sample_seed(1, record["prompt_id"], record["sample_idx"])
        ids, reason = fake_tokens(seed, record["prompt_ids"], 10, eos)
        assert (record["completion_ids"], record["finish_reason"]) == (ids, reason)
        body = ids[:-1] if reason == "stop" else ids
        assert record["completion"] == tokenizer.decode(body, skip_special_tokens=True)
        assert record["n_completion_tokens"] == len(ids)
        assert record["sampling"]["backend"] == "vllm"


def test_resume_with_gaps_sends_one_request_per_run(tiny_checkpoint, tokenizer):
    params = SamplingParams(n=5, max_tokens=10, seed=2)
    full = rollout(make(tiny_checkpoint, tokenizer, params), params, batch_size=10)
    state = ResumeState(seed=2, sampling=params.describe())
    kept = [r for r in full if (r["prompt_id"], r["sample_idx"]) in
            {("a", 0), ("a", 1), ("a", 2), ("a", 3), ("a", 4), ("b", 1), ("b", 3)}]
    for i, record in enumerate(kept):
        state.add(record, "out", i + 1)
    engine = make(tiny_checkpoint, tokenizer, params)
    rest = rollout(engine, params, resume=state, batch_size=10)
    [(prompts, sampling, _, _)] = engine.llm.calls
    assert [(s.kwargs["n"], s.kwargs["seed"]) for s in sampling] == [
        (1, prompt_seed(2, "b")), (1, prompt_seed(2, "b") + 2), (1, prompt_seed(2, "b") + 4),
        (5, prompt_seed(2, 7))]
    key = lambda r: (str(r["prompt_id"]), r["sample_idx"])  # noqa: E731
    assert sorted(kept + rest, key=key) == sorted(full, key=key)


def test_group_requests_only_merges_consecutive_seeds():
    requests = [SampleRequest((1,), 0, 5), SampleRequest((1,), 1, 7), SampleRequest((1,), 2, 8)]
    assert group_requests(requests) == [VllmRequest((1,), 0, 1, 5), VllmRequest((1,), 1, 2, 7)]
    kwargs = sampling_kwargs(SamplingParams(temperature=0), VllmRequest((1,), 0, 2, 5), [3])
    assert (kwargs["temperature"], kwargs["n"], kwargs["seed"]) == (0, 2, 5)


def test_aborted_sample_is_an_error(tiny_checkpoint, tokenizer):
    params = SamplingParams(n=1, max_tokens=4)
    engine = make(tiny_checkpoint, tokenizer, params)
    engine.llm.finish_override = "abort"
    with pytest.raises(RlscaleError, match="vLLM ended a sample with finish_reason 'abort'"):
        engine.generate([SampleRequest((1, 2), 0, 3)])


def test_lora_rank_errors(tmp_path, adapter):
    assert lora_rank(adapter) == 12
    with pytest.raises(RlscaleError, match="not a LoRA adapter directory"):
        lora_rank(str(tmp_path))
    (tmp_path / "adapter_config.json").write_text('{"r": "big"}')
    with pytest.raises(RlscaleError, match="has no positive integer 'r'"):
        lora_rank(str(tmp_path))


def test_import_guard_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # makes `import vllm` raise ImportError
    with pytest.raises(RlscaleError) as info:
        import_vllm()
    assert str(info.value).startswith("--backend vllm: cannot import vLLM (")
    assert "\n" not in str(info.value)


def test_doctests():
    import doctest

    from rlscale.engines import vllm_rollout

    result = doctest.testmod(vllm_rollout)
    assert result.attempted >= 1 and result.failed == 0


def test_optional_keys_unknown_to_an_older_vllm_are_dropped(tiny_checkpoint, tokenizer):
    class OldSamplingParams:  # a vLLM without detokenize / min_p
        def __init__(self, n=1, seed=None, temperature=1.0, top_p=1.0, top_k=-1,
                     max_tokens=16, stop_token_ids=None, repetition_penalty=1.0,
                     presence_penalty=0.0, frequency_penalty=0.0, ignore_eos=False):
            self.kwargs = dict(n=n, seed=seed, max_tokens=max_tokens,
                               stop_token_ids=stop_token_ids)

    old = SimpleNamespace(LLM=FakeLLM, SamplingParams=OldSamplingParams,
                          LoRARequest=FakeLoRARequest)
    params = SamplingParams(n=2, max_tokens=5, seed=4)
    engine = VllmRollout(tiny_checkpoint, params, vllm=old, tokenizer=tokenizer)
    outputs = engine.generate([SampleRequest((1, 2), 0, 40), SampleRequest((1, 2), 1, 41)])
    assert [len(o.completion_ids) <= 5 for o in outputs] == [True, True]


def test_cli_hands_its_flags_to_vllm(monkeypatch, capsys, tiny_checkpoint, adapter, tmp_path):
    """The command line with --backend vllm, with the fake module standing in for vLLM."""
    from rlscale.api import rollout as rollout_api
    from rlscale.cli.app import main
    from rlscale.engines import vllm_rollout

    monkeypatch.setattr(rollout_api, "_choose_backend", lambda requested, log: "vllm")
    monkeypatch.setattr(vllm_rollout, "import_vllm", lambda: FAKE_VLLM)
    problems = tmp_path / "problems.jsonl"
    problems.write_text("".join(json.dumps(p) + "\n" for p in PROBLEMS))
    out = tmp_path / "out.jsonl"
    code = main(["rollout", str(problems), "--model", tiny_checkpoint, "--backend", "vllm",
                 "-n", "2", "--max-tokens", "9", "--seed", "3", "--tensor-parallel-size", "2",
                 "--lora", adapter, "--vllm-arg", "max_model_len=256", "--vllm-arg",
                 "gpu_memory_utilization=0.5", "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 0, err
    llm = FakeLLM.instances[-1]
    assert {k: llm.kwargs[k] for k in ("tensor_parallel_size", "seed", "enable_lora",
                                       "max_model_len", "gpu_memory_utilization")} == \
        {"tensor_parallel_size": 2, "seed": 3, "enable_lora": True, "max_model_len": 256,
         "gpu_memory_utilization": 0.5}
    [(_, sampling, lora_request, _)] = llm.calls
    assert [s.kwargs["n"] for s in sampling] == [2, 2, 2]
    assert lora_request.args[2] == os.path.abspath(adapter)
    records = [json.loads(line) for line in out.read_text().split("\n") if line]
    records = [r for r in records if "rlscale_end" not in r]
    assert len(records) == 6 and records[0]["sampling"]["backend"] == "vllm"
    assert records[0]["sampling"]["engine"] == "vllm unknown"  # the fake has no version
    assert records[0]["sampling"]["lora"] == adapter
    assert err.startswith("rlscale rollout: 3 problems, 6 samples, ") and "vllm)" in err

    code = main(["rollout", str(problems), "--model", tiny_checkpoint, "--backend", "vllm",
                 "--device", "cuda"])
    assert code == 2
    assert capsys.readouterr().err == ("rlscale rollout: --device is for --backend hf; vLLM places "
                                       "the model itself\n")


def test_logprobs_are_requested_and_read_back(tiny_checkpoint, tokenizer):
    params = SamplingParams(n=2, max_tokens=6, seed=0)
    engine = make(tiny_checkpoint, tokenizer, params, logprobs=True)
    records = rollout(engine, params)
    assert all(s.kwargs["logprobs"] == 1 for s in engine.llm.calls[0][1])
    assert engine.llm.kwargs["logprobs_mode"] == "raw_logprobs"
    for record in records:
        assert record["old_logprobs"] == [-t / 100.0 for t in record["completion_ids"]]
    plain = make(tiny_checkpoint, tokenizer, params)
    assert all("old_logprobs" not in r for r in rollout(plain, params))
    assert "logprobs" not in plain.llm.calls[0][1][0].kwargs


def test_logprobs_mode_is_pinned_to_what_old_logprobs_means(tiny_checkpoint, tokenizer):
    from rlscale.core.errors import UsageError

    with pytest.raises(UsageError, match="--logprobs with --backend vllm needs --temperature 1, "
                       "or --top-k -1 and --top-p 1"):
        make(tiny_checkpoint, tokenizer, SamplingParams(temperature=0.7, top_p=0.9),
             logprobs=True)
    modes = {(t, k, p): make(tiny_checkpoint, tokenizer, SamplingParams(temperature=t, top_k=k,
                                                                        top_p=p),
                             logprobs=True).llm.kwargs["logprobs_mode"]
             for t, k, p in [(0.0, -1, 1.0), (1.0, 20, 0.9), (0.7, -1, 1.0)]}
    # raw = log softmax(logits): right at T = 1 (and greedy, T = 1 by LOGPROBS_DOC) even with
    # truncation; processed = after temperature and truncation: right when nothing is truncated
    assert modes == {(0.0, -1, 1.0): "raw_logprobs", (1.0, 20, 0.9): "raw_logprobs",
                     (0.7, -1, 1.0): "processed_logprobs"}
    assert "logprobs_mode" not in make(tiny_checkpoint, tokenizer, SamplingParams()).llm.kwargs


def test_greedy_draws_one_sample_per_prompt_and_copies_it(tiny_checkpoint, tokenizer):
    params = SamplingParams(n=3, temperature=0.0, max_tokens=6, seed=1)
    engine = make(tiny_checkpoint, tokenizer, params)
    records = rollout(engine, params, batch_size=3)
    [(_, sampling, _, _)] = engine.llm.calls
    assert [s.kwargs["n"] for s in sampling] == [1, 1, 1]  # vLLM rejects greedy n > 1
    for pid in ("a", "b", 7):
        group = [r for r in records if r["prompt_id"] == pid]
        assert [r["sample_idx"] for r in group] == [0, 1, 2]
        assert len({tuple(r["completion_ids"]) for r in group}) == 1


def test_what_vllm_rejects_is_refused_up_front(tiny_checkpoint, tokenizer):
    from rlscale.core.errors import UsageError
    from rlscale.engines.vllm_rollout import check_version

    with pytest.raises(UsageError, match=r"--temperature 2.5: vLLM accepts at most 2; use "):
        make(tiny_checkpoint, tokenizer, SamplingParams(temperature=2.5))
    with pytest.raises(UsageError, match="vLLM decodes greedily below 1e-05"):
        make(tiny_checkpoint, tokenizer, SamplingParams(temperature=1e-6))
    big = make(tiny_checkpoint, tokenizer, SamplingParams(seed=2**40 + 5, n=2, max_tokens=4))
    assert big.llm.kwargs["seed"] == 5  # the engine seed; per-request seeds keep all 62 bits
    big.generate([SampleRequest((1, 2), 0, 2**61), SampleRequest((1, 2), 1, 2**61 + 1)])
    assert big.llm.calls[0][1][0].kwargs["seed"] == 2**61
    for old in ("0.6.4", "0.10.2"):
        with pytest.raises(RlscaleError, match=f"vLLM {old} is older than 0.11"):
            check_version(old)
    check_version("0.11.0"), check_version("0.33.1"), check_version("0.12.0rc1")


def test_dtype_is_the_checkpoints_and_records_say_how_they_were_made(
        tiny_checkpoint, tokenizer, monkeypatch):
    from rlscale.engines.hf_rollout import checkpoint_dtype

    with open(os.path.join(tiny_checkpoint, "config.json")) as handle:
        config = json.load(handle)
    saved = str(config.get("dtype") or config.get("torch_dtype") or "float32")
    engine = make(tiny_checkpoint, tokenizer, SamplingParams(n=1, max_tokens=3))
    assert engine.llm.kwargs["dtype"] == checkpoint_dtype(tiny_checkpoint) == saved
    monkeypatch.setenv("VLLM_BATCH_INVARIANT", "1")
    monkeypatch.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    FAKE_VLLM.version = "0.33.0"
    try:
        assert make(tiny_checkpoint, tokenizer, SamplingParams(n=1)).describe() == {
            "engine": "vllm 0.33.0", "dtype": saved, "batch_invariant": True,
            "v1_multiprocessing": False}
    finally:
        del FAKE_VLLM.version


def test_missing_logprob_entry_is_an_error():
    from rlscale.engines.vllm_rollout import convert_output

    completion = SimpleNamespace(token_ids=[5, 6], finish_reason="length",
                                 logprobs=[{5: SimpleNamespace(logprob=-1.0)}, {7: None}])
    with pytest.raises(RlscaleError, match="no log-prob for sampled token 6"):
        convert_output(completion, 4, logprobs=True)
    assert convert_output(completion, 4).logprobs is None
