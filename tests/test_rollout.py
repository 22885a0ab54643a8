"""`rlscale rollout` with the hf backend on the tiny Qwen2 checkpoint (CPU)."""

from __future__ import annotations

import json
import os
import shutil

import orjson
import pytest

from rlscale.cli.app import main
from rlscale.core.sampling import (
    SampleRequest,
    SamplingParams,
    Shard,
    plan_problems,
    rollout_records,
    sample_seed,
)
from rlscale.engines.fingerprint import weights_fingerprint
from rlscale.io.jsonl import Where
from tests.conftest import jsonl, run_cli

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """One intra-op thread: on a shared 2-core CI box, more threads make tiny models 10x slower."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)

PROBLEMS = [
    {"prompt_id": "p0", "prompt": "What is 12 + 7?", "answer": "19", "data_source": "math__a"},
    {"prompt_id": "p1", "prompt": [{"role": "user", "content": "Find 3 * 3."}], "answer": "9",
     "data_source": "math__b"},
    {"prompt_id": 2, "prompt": "The answer is", "answer": "1", "data_source": "math__a"},
    {"prompt_id": "p3", "prompt": "Please output the final answer within \\boxed{}.",
     "answer": "0", "data_source": "math__b", "extra_info": {"index": 3}},
]


@pytest.fixture(scope="module")
def stop_checkpoint(tiny_checkpoint, tmp_path_factory):
    """The tiny checkpoint with 25 extra stop ids in generation_config.json.

    A random tiny model almost never emits <|im_end|>; with ~1/15 of the vocabulary as stop
    tokens most samples end with finish_reason "stop" within 16 tokens, which exercises EOS
    handling, and the merge of the tokenizer's and the generation config's EOS ids.
    """
    path = str(tmp_path_factory.mktemp("stops") / "model")
    shutil.copytree(tiny_checkpoint, path)
    config_path = os.path.join(path, "generation_config.json")
    with open(config_path) as handle:
        config = json.load(handle)
    eos = config["eos_token_id"]
    config["eos_token_id"] = [eos] + list(range(200, 225))
    with open(config_path, "w") as handle:
        json.dump(config, handle)
    return path


@pytest.fixture(scope="module")
def engine_for(stop_checkpoint):
    from rlscale.engines.hf_rollout import HfRollout

    cache = {}

    def make(params: SamplingParams):
        if params not in cache:
            cache[params] = HfRollout(stop_checkpoint, params, device="cpu")
        return cache[params]

    return make


def direct_generate(model, prompt_ids, seed, params, stops, pad):
    """What a user would run by hand: seed the global RNG, call generate on one prompt."""
    torch.manual_seed(seed)
    kwargs = {"do_sample": True, "temperature": params.temperature, "top_p": params.top_p,
              "top_k": max(params.top_k, 0)}
    if params.greedy:
        kwargs = {"do_sample": False}
    with torch.inference_mode():
        out = model.generate(torch.tensor([prompt_ids]), max_new_tokens=params.max_tokens,
                             eos_token_id=stops, pad_token_id=pad, **kwargs)
    generated = out[0, len(prompt_ids):].tolist()
    for i, token in enumerate(generated):
        if token in stops:
            return generated[: i + 1], "stop"
    return generated, "length"


@pytest.mark.parametrize("params", [
    SamplingParams(n=3, temperature=1.0, top_p=1.0, max_tokens=16, seed=0),
    SamplingParams(n=2, temperature=0.7, top_p=0.9, top_k=40, max_tokens=12, seed=11),
    SamplingParams(n=1, temperature=0.0, max_tokens=10, seed=0),
])
def test_hf_backend_matches_direct_generate(engine_for, params):
    engine = engine_for(params)
    stops = list(engine.stop_ids())
    assert stops[0] == engine.tokenizer.convert_tokens_to_ids("<|im_end|>") and len(stops) == 26
    requests, expected = [], []
    for problem in PROBLEMS:
        prompt_ids = engine.encode_prompt(problem["prompt"])
        for sample_idx in range(params.n):
            seed = sample_seed(params.seed, problem["prompt_id"], sample_idx)
            requests.append(SampleRequest(tuple(prompt_ids), sample_idx, seed))
            expected.append(direct_generate(engine.model, prompt_ids, seed, params, stops,
                                            engine.pad_id))
    outputs = engine.generate(requests)
    assert [(list(o.completion_ids), o.finish_reason) for o in outputs] == expected
    assert {o.finish_reason for o in outputs} == {"stop", "length"} or params.greedy


def test_prompt_rendering_is_verls(engine_for):
    engine = engine_for(SamplingParams(max_tokens=4))
    tokenizer = engine.tokenizer
    text = tokenizer.apply_chat_template([{"role": "user", "content": "What is 12 + 7?"}],
                                         add_generation_prompt=True, tokenize=False)
    assert text.endswith("<|im_start|>assistant\n") and "You are a helpful assistant." in text
    assert engine.encode_prompt("What is 12 + 7?") == tokenizer(text, add_special_tokens=False)[
        "input_ids"]


def _records(engine, params, problems, batch_size, shard=Shard()):
    pairs = ((dict(p), Where("in", i + 1)) for i, p in enumerate(problems))

    def invalid(where, message):
        raise AssertionError(f"{where}: {message}")

    planned = plan_problems(pairs, params=params, encode=engine.encode_prompt, invalid=invalid,
                            shard=shard, context_length=engine.context_length)
    return list(rollout_records(planned, engine, params, batch_size=batch_size, model="tiny"))


def test_batch_size_and_sharding_do_not_change_samples(engine_for):
    params = SamplingParams(n=2, max_tokens=12, seed=3)
    engine = engine_for(params)
    one = _records(engine, params, PROBLEMS, batch_size=1)
    four = _records(engine, params, PROBLEMS, batch_size=4)
    assert one == four and len(one) == 8
    shards = _records(engine, params, PROBLEMS, 4, Shard(0, 2)) + \
        _records(engine, params, PROBLEMS, 4, Shard(1, 2))
    key = lambda r: (str(r["prompt_id"]), r["sample_idx"])  # noqa: E731
    assert sorted(shards, key=key) == sorted(one, key=key)
    other_seed = _records(engine, params.__class__(n=2, max_tokens=12, seed=4), PROBLEMS, 4)
    assert [r["completion_ids"] for r in other_seed] != [r["completion_ids"] for r in one]


def test_records_count_tokens_exactly_and_strip_at_eos(engine_for):
    params = SamplingParams(n=3, max_tokens=16, seed=0)
    engine = engine_for(params)
    stops = set(engine.stop_ids())
    for record in _records(engine, params, PROBLEMS, 4):
        ids = record["completion_ids"]
        assert record["n_completion_tokens"] == len(ids) <= 16
        assert record["n_prompt_tokens"] == len(record["prompt_ids"])
        if record["finish_reason"] == "stop":
            assert ids[-1] in stops and not stops & set(ids[:-1])
            body = ids[:-1]
        else:
            assert len(ids) == 16 and not stops & set(ids)
            body = ids
        assert record["completion"] == engine.tokenizer.decode(body, skip_special_tokens=True)


# --- the command line, in-process (one torch import for the whole module) -----------------


def cli(capsys, *args):
    code = main(["rollout", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def read_jsonl(path):
    """The samples of an output file (its end-of-stream record left out)."""
    with open(path, "rb") as handle:
        return [r for r in map(orjson.loads, handle) if "rlscale_end" not in r]


@pytest.fixture
def problems_file(tmp_path):
    path = tmp_path / "problems.jsonl"
    path.write_text(jsonl(PROBLEMS))
    return str(path)


def test_cli_writes_atomically_and_resume_completes_an_interrupted_file(
        capsys, stop_checkpoint, problems_file, tmp_path):
    common = ["--model", stop_checkpoint, "-n", "3", "--max-tokens", "12", "--seed", "1",
              "--backend", "hf", "--batch-size", "2"]
    full = str(tmp_path / "full.jsonl")
    code, out, err = cli(capsys, problems_file, *common, "-o", full)
    assert (code, out) == (0, "")
    assert err.startswith("rlscale rollout: 4 problems, 12 samples, ")
    records = read_jsonl(full)
    assert [(r["prompt_id"], r["sample_idx"]) for r in records] == \
        [(p["prompt_id"], i) for p in PROBLEMS for i in range(3)]
    assert records[-1]["extra_info"] == {"index": 3} and records[0]["answer"] == "19"
    assert records[0]["sampling"] == {"backend": "hf", "temperature": 1.0, "top_p": 1.0,
                                      "top_k": -1, "max_tokens": 12, "chat_template": True,
                                      "lora": None,
                                      "weights": weights_fingerprint(stop_checkpoint),
                                      "engine": f"transformers {transformers.__version__}, "
                                                f"torch {torch.__version__}",
                                      "dtype": "float32", "device": "cpu"}

    # an interrupted run: 5 whole lines and half of the sixth
    partial = str(tmp_path / "partial.jsonl")
    with open(full, "rb") as handle:
        lines = handle.readlines()
    with open(partial, "wb") as handle:
        handle.writelines(lines[:5])
        handle.write(lines[5][:20])
    code, out, err = cli(capsys, problems_file, *common, "--resume", "-o", partial)
    assert code == 0, err
    assert "dropped a partial last line (20 bytes)" in err
    assert "resuming " + partial + ": 5 samples, 1 problems complete, 1 partial" in err
    resumed = read_jsonl(partial)
    key = lambda r: (str(r["prompt_id"]), r["sample_idx"])  # noqa: E731
    assert resumed[:5] == records[:5]
    assert sorted(resumed, key=key) == sorted(records, key=key)

    # resuming a complete file draws nothing; another seed is refused
    code, _, err = cli(capsys, problems_file, *common, "--resume", "-o", partial)
    assert code == 0 and "0 problems, 0 samples" in err and "4 already complete" in err
    code, _, err = cli(capsys, problems_file, *common[:-6], "--seed", "2", "--backend", "hf",
                       "--resume", "-o", partial)
    assert code == 1
    assert err == (f"rlscale rollout: {partial}:1: resume: written with --seed 1, this run has "
                   "--seed 2; use the same seed or another -o file\n")


def test_cli_resume_refuses_other_weights_at_the_same_or_another_path(
        capsys, stop_checkpoint, problems_file, tmp_path):
    """``--model base`` then ``--resume --model ckpt``: the fingerprint of the weights differs."""
    from safetensors.torch import load_file, save_file

    ckpt = tmp_path / "ckpt"
    shutil.copytree(stop_checkpoint, ckpt)  # copy2 keeps mtimes: the same weights, accepted
    common = ["-n", "2", "--max-tokens", "4", "--backend", "hf", "--batch-size", "2"]
    out_path = str(tmp_path / "out.jsonl")
    with open(problems_file) as handle:
        two = str(tmp_path / "two.jsonl")
        with open(two, "w") as short:
            short.writelines(handle.readlines()[:2])
    assert cli(capsys, two, "--model", stop_checkpoint, *common, "-o", out_path)[0] == 0
    code, _, err = cli(capsys, problems_file, "--model", str(ckpt), *common, "--resume",
                       "-o", out_path)
    assert code == 0, err
    before = read_jsonl(out_path)
    # a training step changes the weights under the same path
    tensors = load_file(str(ckpt / "model.safetensors"))
    name = sorted(tensors)[0]
    tensors[name] = tensors[name] + 0.01
    save_file(tensors, str(ckpt / "model.safetensors"), metadata={"format": "pt"})
    more = str(tmp_path / "more.jsonl")
    with open(more, "w") as handle:
        handle.write(jsonl([{"prompt_id": "new", "prompt": "What is 2 + 2?"}]))
    code, out, err = cli(capsys, problems_file, more, "--model", str(ckpt), *common, "--resume",
                         "-o", out_path)
    assert code == 1 and out == ""
    old, new = weights_fingerprint(stop_checkpoint), weights_fingerprint(str(ckpt))
    assert old != new
    assert err == (f"rlscale rollout: {out_path}:1: resume: written by other weights ({old}), "
                   f"this run's model is {new}; use another -o file\n")
    assert read_jsonl(out_path) == before  # nothing appended


def test_cli_bad_record_names_file_and_line(capsys, stop_checkpoint, tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(jsonl([PROBLEMS[0], {"prompt_id": "x", "prompt": 3}]))
    out_path = str(tmp_path / "out.jsonl")
    code, _, err = cli(capsys, str(path), "--model", stop_checkpoint, "--max-tokens", "4",
                       "--backend", "hf", "-o", out_path)
    assert code == 1
    assert err == (f"rlscale rollout: {path}:2: field 'prompt' must be a string or a list of "
                   "{role, content} messages, got integer\n")
    assert not os.path.exists(out_path)  # atomic: nothing half-written
    rejects = str(tmp_path / "rejects.jsonl")
    code, _, err = cli(capsys, str(path), "--model", stop_checkpoint, "--max-tokens", "4", "-n",
                       "1", "--backend", "hf", "-o", out_path, "--skip-invalid", "--rejects",
                       rejects)
    assert code == 0 and "skipped 1 invalid line(s)" in err
    assert len(read_jsonl(out_path)) == 1 and read_jsonl(rejects)[0]["prompt"] == 3


def test_cli_raw_prompts_and_no_token_ids(capsys, stop_checkpoint, tmp_path, engine_for):
    path = tmp_path / "raw.jsonl"
    two = [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}]
    path.write_text(jsonl([{"prompt_id": "r", "prompt": "12 + 7 ="},
                           {"prompt_id": "s", "prompt": two}]))
    out_path = str(tmp_path / "out.jsonl")
    code, _, err = cli(capsys, str(path), "--model", stop_checkpoint, "--max-tokens", "4", "-n",
                       "1", "--no-chat-template", "--no-token-ids", "--backend", "hf", "-o",
                       out_path)
    assert code == 1 and err.endswith("raw.jsonl:2: prompt is a list of 2 messages; "
                                      "--no-chat-template needs a string or a single message\n")
    path.write_text(jsonl([{"prompt_id": "r", "prompt": "12 + 7 ="}]))
    code, _, err = cli(capsys, str(path), "--model", stop_checkpoint, "--max-tokens", "4", "-n",
                       "1", "--no-chat-template", "--no-token-ids", "--backend", "hf", "-o",
                       out_path)
    assert code == 0, err
    [record] = read_jsonl(out_path)
    tokenizer = engine_for(SamplingParams(max_tokens=4)).tokenizer
    assert record["n_prompt_tokens"] == len(tokenizer("12 + 7 =")["input_ids"])
    assert "prompt_ids" not in record and "completion_ids" not in record
    assert record["sampling"]["chat_template"] is False


def test_cli_model_without_chat_template(capsys, stop_checkpoint, tmp_path, problems_file):
    plain = str(tmp_path / "plain")
    shutil.copytree(stop_checkpoint, plain)
    config_path = os.path.join(plain, "tokenizer_config.json")
    with open(config_path) as handle:
        config = json.load(handle)
    config.pop("chat_template", None)
    with open(config_path, "w") as handle:
        json.dump(config, handle)
    for name in os.listdir(plain):
        if name.startswith("chat_template"):
            os.remove(os.path.join(plain, name))
    code, _, err = cli(capsys, problems_file, "--model", plain, "--backend", "hf")
    assert code == 2
    assert err == (f"rlscale rollout: the tokenizer of {plain} has no chat template; pass "
                   "--no-chat-template to sample from raw prompts (base models)\n")


@pytest.mark.parametrize("args, message", [
    (["--resume"], "--resume needs -o FILE (the output file to continue)"),
    (["--backend", "hf", "--tensor-parallel-size", "2"], "--tensor-parallel-size needs --backend "
     "vllm"),
    (["--backend", "hf", "--vllm-arg", "enforce_eager=true"], "--vllm-arg needs --backend vllm"),
    (["--shard", "2/2"], "--shard 2/2: the index must be in 0..1"),
    (["--top-p", "0"], "--top-p must be in (0, 1], got 0.0"),
    (["--batch-size", "0"], "--batch-size must be at least 1, got 0"),
    (["--max-prompt-tokens", "0"], "--max-prompt-tokens must be at least 1, got 0"),
    (["--lora", "/no/such/adapter"], "--lora /no/such/adapter: no such directory"),
])
def test_cli_usage_errors(capsys, stop_checkpoint, args, message):
    code, out, err = cli(capsys, "--model", stop_checkpoint, *args)
    assert (code, out, err) == (2, "", f"rlscale rollout: {message}\n")


def test_cli_refuses_to_write_over_its_input(capsys, stop_checkpoint, problems_file):
    code, _, err = cli(capsys, problems_file, "--model", stop_checkpoint, "--resume", "-o",
                       problems_file)
    assert (code, err) == (2, f"rlscale rollout: -o {problems_file} is also the input "
                              f"{problems_file}: write to another file\n")


def test_cli_missing_model_dir(capsys, problems_file):
    code, _, err = cli(capsys, problems_file, "--model", "./no/such/model", "--backend", "hf")
    assert (code, err) == (1, "rlscale rollout: --model ./no/such/model: no such directory\n")


def test_lora_adapter_is_applied(capsys, tiny_checkpoint, tmp_path, problems_file):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_checkpoint)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                        init_lora_weights=False)
    torch.manual_seed(0)
    peft_model = get_peft_model(base, config)
    adapter = str(tmp_path / "adapter")
    peft_model.save_pretrained(adapter)
    merged = peft_model.merge_and_unload()

    common = [problems_file, "--model", tiny_checkpoint, "-n", "1", "--temperature", "0",
              "--max-tokens", "8", "--backend", "hf"]
    with_lora, without = str(tmp_path / "lora.jsonl"), str(tmp_path / "base.jsonl")
    assert cli(capsys, *common, "--lora", adapter, "-o", with_lora)[0] == 0
    assert cli(capsys, *common, "-o", without)[0] == 0
    lora_records, base_records = read_jsonl(with_lora), read_jsonl(without)
    assert lora_records[0]["sampling"]["lora"] == adapter
    assert [r["completion_ids"] for r in lora_records] != [r["completion_ids"] for r in base_records]
    for record in lora_records:  # greedy decoding of the merged model, by hand
        ids = torch.tensor([record["prompt_ids"]])
        with torch.inference_mode():
            out = merged.generate(ids, do_sample=False, max_new_tokens=8)
        assert out[0, ids.shape[1]:].tolist()[: record["n_completion_tokens"]] == \
            record["completion_ids"]


def test_subprocess_pipe_streams_and_keeps_stderr_clean(tiny_checkpoint):
    """Real pipes: records on stdout, and stderr holds only rlscale's own summary line."""
    result = run_cli(["rollout", "--model", tiny_checkpoint, "-n", "2", "--max-tokens", "6",
                      "--backend", "hf"], input=jsonl(PROBLEMS[:2]),
                     env={"OMP_NUM_THREADS": "1"})
    assert result.exit_code == 0, result.stderr
    assert [(r["prompt_id"], r["sample_idx"]) for r in result.records] == \
        [("p0", 0), ("p0", 1), ("p1", 0), ("p1", 1)]
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("rlscale rollout: 2 problems, 4 samples, ")
    quiet = run_cli(["rollout", "--model", tiny_checkpoint, "--backend", "vllm", "-q"],
                    input=jsonl(PROBLEMS[:1]))
    assert quiet.exit_code == 2
    assert quiet.stderr.startswith("rlscale rollout: --backend vllm: vLLM is not installed")


def test_verl_rows_get_curates_ids_and_keep_every_column(capsys, stop_checkpoint, tmp_path,
                                                         engine_for):
    """Real rows of the paper's training parquet (as JSONL): chat-message prompts, no prompt_id."""
    source = os.path.join(os.path.dirname(__file__), "data", "rollout_verl_rows.jsonl")
    rows = read_jsonl(source)
    out_path = str(tmp_path / "out.jsonl")
    code, _, err = cli(capsys, source, "--model", stop_checkpoint, "-n", "2", "--max-tokens", "6",
                       "--backend", "hf", "-o", out_path)
    assert code == 0, err
    records = read_jsonl(out_path)
    assert [r["prompt_id"] for r in records[::2]] == \
        [f"{row['data_source']}#{row['extra_info']['index']}" for row in rows]
    tokenizer = engine_for(SamplingParams(max_tokens=4)).tokenizer
    for record, row in zip(records[::2], rows, strict=True):
        assert {k: record[k] for k in row} == row  # every column passes through unchanged
        text = tokenizer.apply_chat_template(row["prompt"], add_generation_prompt=True,
                                             tokenize=False)
        assert text.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
                               "<|im_start|>user\nYou are a knowledgeable math assistant.")
        assert record["prompt_ids"] == tokenizer(text, add_special_tokens=False)["input_ids"]


def test_cli_shard_and_greedy_warning(capsys, stop_checkpoint, problems_file, tmp_path):
    out_path = str(tmp_path / "out.jsonl")
    code, _, err = cli(capsys, problems_file, "--model", stop_checkpoint, "-n", "2",
                       "--temperature", "0", "--max-tokens", "3", "--shard", "1/2", "--backend",
                       "hf", "-o", out_path)
    assert code == 0
    assert err.splitlines()[0] == ("rlscale rollout: warning: --temperature 0 is greedy decoding; "
                                   "the 2 samples of each problem will be identical")
    records = read_jsonl(out_path)
    assert [(r["prompt_id"], r["sample_idx"]) for r in records] == \
        [("p1", 0), ("p1", 1), ("p3", 0), ("p3", 1)]
    assert records[0]["completion_ids"] == records[1]["completion_ids"]


@pytest.mark.parametrize("params", [
    SamplingParams(n=2, temperature=0.7, top_p=0.9, max_tokens=10, seed=5),
    SamplingParams(n=1, temperature=0.0, max_tokens=6, seed=0),
])
def test_logprobs_equal_a_teacher_forced_forward(stop_checkpoint, params):
    """old_logprobs are log softmax(logits / T) of the sampled tokens, before top-p truncation."""
    from rlscale.engines.hf_rollout import HfRollout

    engine = HfRollout(stop_checkpoint, params, device="cpu", logprobs=True)
    records = _records(engine, params, PROBLEMS, 4)
    scale = params.temperature or 1.0
    for record in records:
        ids = record["prompt_ids"] + record["completion_ids"]
        with torch.inference_mode():
            logits = engine.model(torch.tensor([ids])).logits[0].float()
        start = len(record["prompt_ids"])
        logp = torch.log_softmax(logits[start - 1:-1] / scale, dim=-1)
        expected = logp.gather(1, torch.tensor(record["completion_ids"])[:, None]).squeeze(1)
        assert len(record["old_logprobs"]) == record["n_completion_tokens"]
        assert torch.allclose(torch.tensor(record["old_logprobs"]), expected, atol=1e-4)
    # the samples themselves are the ones drawn without --logprobs
    plain = HfRollout(stop_checkpoint, params, device="cpu")
    assert [r["completion_ids"] for r in _records(plain, params, PROBLEMS, 4)] == \
        [r["completion_ids"] for r in records]


def test_cli_max_prompt_tokens_with_skip_invalid(capsys, stop_checkpoint, problems_file, tmp_path):
    out_path = str(tmp_path / "out.jsonl")
    code, _, err = cli(capsys, problems_file, "--model", stop_checkpoint, "--max-prompt-tokens",
                       "1", "--skip-invalid", "--backend", "hf", "-o", out_path)
    assert code == 0
    assert read_jsonl(out_path) == []
    assert err.splitlines() == [
        "rlscale rollout: 0 problems, 0 samples, 0 completion tokens in " +
        err.split(" in ", 1)[1].split("\n")[0],
        "rlscale rollout: skipped 4 invalid line(s)"]


def test_cli_refuses_an_over_long_prompt_by_its_length_before_tokenising(
        capsys, stop_checkpoint, tmp_path, monkeypatch):
    from rlscale.core import prompts

    rendered = []
    real_plan = prompts.render_plan

    def spy_plan(prompt, chat_template):
        rendered.append(len(prompt) if isinstance(prompt, str) else len(prompt[0]["content"]))
        return real_plan(prompt, chat_template)

    monkeypatch.setattr(prompts, "render_plan", spy_plan)
    huge = "x" * (4 << 20)  # 4 MiB of text: far more than 512 tokens can cover
    path = tmp_path / "huge.jsonl"
    path.write_text(jsonl([PROBLEMS[0], {"prompt_id": "huge", "prompt": huge},
                           {"prompt_id": "chat", "prompt": [{"role": "user", "content": huge}]}]))
    out_path = str(tmp_path / "out.jsonl")
    code, _, err = cli(capsys, str(path), "--model", stop_checkpoint, "--max-tokens", "4", "-n",
                       "1", "--backend", "hf", "-o", out_path)
    assert code == 1
    line, = err.splitlines()
    assert line.startswith(f"rlscale rollout: {path}:2: prompt has {len(huge)} characters, at "
                           "least ")
    assert line.endswith("tokens: more than the model's context of 512 tokens (use "
                         "--skip-invalid to drop such prompts)")
    assert not os.path.exists(out_path)
    assert max(rendered) < 1000  # the long prompt was never rendered, let alone tokenised
    # with --skip-invalid both long prompts are dropped and the one that fits is sampled
    rejects = str(tmp_path / "rejects.jsonl")
    code, _, err = cli(capsys, str(path), "--model", stop_checkpoint, "--max-tokens", "4", "-n",
                       "1", "--backend", "hf", "-o", out_path, "--skip-invalid", "--rejects",
                       rejects)
    assert code == 0 and "skipped 2 invalid line(s)" in err
    assert [r["prompt_id"] for r in read_jsonl(out_path)] == ["p0"]
    assert [r["prompt_id"] for r in read_jsonl(rejects)] == ["huge", "chat"]
    assert max(rendered) < 1000
