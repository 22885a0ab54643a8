"""``rollout --backend openai`` against a real HTTP server on 127.0.0.1 (tests/fake_openai_server).

Faults are scripted per request seed, so which request fails does not depend on scheduling;
retry sleeps are injected (engine-level tests) or zero retries are allowed (CLI tests), so no test
waits on a backoff. The one deliberately slow answer is bounded by a 0.3 s client timeout.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rlscale.core.errors import RlscaleError, UsageError
from rlscale.core.sampling import SamplingParams, plan_problems, rollout_records, sample_seed
from rlscale.engines.openai_rollout import (
    MAX_BACKOFF_S,
    OpenAIRollout,
    backoff_seconds,
    retry_after_seconds,
    served_step,
    server_message,
)
from rlscale.io.jsonl import END_KEY, Where
from tests.conftest import REPO, jsonl, run_inprocess
from tests.fake_openai_server import FakeServer, completion_for

PROBLEMS = [
    {"prompt_id": "a", "prompt": "What is 2 + 2?", "answer": "4"},
    {"prompt_id": "b", "prompt": [{"role": "system", "content": "Be brief."},
                                  {"role": "user", "content": "What is 3 * 3?"}], "answer": "9"},
    {"prompt_id": 7, "prompt": "Add 1 and 1.", "answer": "2"},
]


def messages_of(prompt):
    return [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt


@pytest.fixture
def server():
    with FakeServer() as fake:
        yield fake


@pytest.fixture
def problems_file(tmp_path):
    path = tmp_path / "problems.jsonl"
    path.write_text(jsonl(PROBLEMS))
    return str(path)


def rollout(*args, input=None):
    return run_inprocess(["rollout", *args], input=input)


def records_of(path):
    """The samples of an output file (without its end-of-stream record)."""
    with open(path, "rb") as handle:
        records = [orjson.loads(line) for line in handle]
    return [r for r in records if END_KEY not in r]


def engine_run(server, params, *, sleeps=None, problems=PROBLEMS, **kwargs):
    """Sample through the library (sleep injected), returning records."""
    delays = sleeps if sleeps is not None else []

    async def sleep(seconds):
        delays.append(seconds)

    engine = OpenAIRollout(server.url, "policy", params, sleep=sleep, rng=random.Random(0),
                           **kwargs)
    try:
        def invalid(where, message):
            raise AssertionError(message)

        planned = plan_problems(((dict(p), Where("t", i + 1)) for i, p in enumerate(problems)),
                                params=params, encode=engine.encode_prompt, invalid=invalid)
        return list(rollout_records(planned, engine, params, batch_size=2, model="policy",
                                    extra=engine.describe()))
    finally:
        engine.close()


# --- the record contract ---------------------------------------------------------------------


def test_chat_records_seeds_and_requests(server, problems_file, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-123")
    server.api_key = "sk-secret-123"
    out = str(tmp_path / "out.jsonl")
    result = rollout(problems_file, "--backend", "openai", "--base-url", server.url, "--model",
                     "policy", "-n", "3", "--max-tokens", "6", "--seed", "5", "--top-k", "20",
                     "-o", out)
    assert result.exit_code == 0, result.stderr
    records = records_of(out)
    assert [(r["prompt_id"], r["sample_idx"]) for r in records] == \
        [(p["prompt_id"], i) for p in PROBLEMS for i in range(3)]
    bodies = [b for b in server.generation_bodies() if b["max_tokens"] == 6]
    by_seed = {b["seed"]: b for b in bodies}
    assert len(bodies) == 9 == len(by_seed)  # one request per sample, none repeated
    for record in records:
        seed = sample_seed(5, record["prompt_id"], record["sample_idx"])
        body = by_seed[seed]
        assert body["messages"] == messages_of(record["prompt"])
        assert (body["n"], body["temperature"], body["top_p"], body["top_k"]) == (1, 1.0, 1.0, 20)
        assert (body["min_p"], body["repetition_penalty"]) == (0.0, 1.0)
        words = completion_for(body["messages"], seed, 6)
        assert record["completion"] == " ".join(words)
        assert record["n_completion_tokens"] == len(words)
        assert record["n_prompt_tokens"] == len(json.dumps(body["messages"]).split())
        assert record["finish_reason"] == ("length" if len(words) == 6 else "stop")
        assert "prompt_ids" not in record and "completion_ids" not in record
        assert record["model"] == "policy" and record["seed"] == 5
        assert record["sampling"]["backend"] == "openai"
        assert record["sampling"]["seed_honoured"] == "yes"
        assert record["sampling"]["server"] == server.url
        assert record["sampling"]["server_version"] == "0.33.0-fake"
    assert all(p in ("/v1/models", "/version", "/v1/chat/completions") for p in server.paths)
    assert all(h.get("Authorization") == "Bearer sk-secret-123" for h in server.headers)
    with open(out, "rb") as handle:
        assert b"sk-secret" not in handle.read()
    assert "sk-secret" not in result.stderr


def test_raw_prompts_go_to_completions_and_logprobs(server, tmp_path):
    records = engine_run(server, SamplingParams(n=2, max_tokens=5, seed=1), chat_template=False,
                         logprobs=True, problems=[PROBLEMS[0], PROBLEMS[2]])
    assert len(records) == 4
    bodies = server.generation_bodies()[3:]  # after the three seed-probe requests
    assert {b["prompt"] for b in bodies} == {"What is 2 + 2?", "Add 1 and 1."}
    assert all(b["logprobs"] == 1 for b in bodies)
    for record in records:
        n = record["n_completion_tokens"]
        assert record["old_logprobs"] == [-0.25 * (i % 4) for i in range(n)]


def test_token_ids_with_a_local_tokenizer(server, tiny_checkpoint, tmp_path):
    from rlscale.engines.hf_rollout import PromptEncoder, load_tokenizer

    tokenizer = load_tokenizer(tiny_checkpoint)
    server.vocab = tokenizer.vocab_size
    records = engine_run(server, SamplingParams(n=2, max_tokens=5, seed=3),
                         tokenizer_dir=tiny_checkpoint)
    encoder = PromptEncoder(tokenizer)
    for record in records:
        assert record["prompt_ids"] == encoder(record["prompt"])
        seed = sample_seed(3, record["prompt_id"], record["sample_idx"])
        body = next(b for b in server.generation_bodies() if b.get("seed") == seed)
        assert body["prompt"] == record["prompt_ids"] and body["return_token_ids"] is True
        assert record["completion"] == tokenizer.decode(record["completion_ids"],
                                                        skip_special_tokens=True)
        assert record["n_prompt_tokens"] == len(record["prompt_ids"])
        assert record["n_completion_tokens"] == len(record["completion_ids"])


def test_shards_and_resume_split_the_same_samples(server, problems_file, tmp_path):
    common = ["--backend", "openai", "--base-url", server.url, "--model", "policy", "-n", "2",
              "--max-tokens", "4"]
    full, parts = str(tmp_path / "full.jsonl"), []
    assert rollout(problems_file, *common, "-o", full).exit_code == 0
    for index in range(2):
        part = str(tmp_path / f"part{index}.jsonl")
        assert rollout(problems_file, *common, "--shard", f"{index}/2", "-o", part).exit_code == 0
        parts += records_of(part)
    key = lambda r: (str(r["prompt_id"]), r["sample_idx"])  # noqa: E731
    assert sorted(parts, key=key) == sorted(records_of(full), key=key)


# --- faults ----------------------------------------------------------------------------------


def test_every_transient_fault_is_retried_and_nothing_is_lost(server):
    params = SamplingParams(n=2, max_tokens=4, seed=9)
    seeds = [sample_seed(9, p["prompt_id"], i) for p in PROBLEMS for i in range(2)]
    plans = [["500"], ["429"], ["drop"], ["malformed"], ["slow"], ["500", "429", "drop"]]
    for seed, plan in zip(seeds, plans, strict=True):
        server.faults[seed] = list(plan)
    server.slow_s = 2.0
    sleeps: list[float] = []
    records = engine_run(server, params, sleeps=sleeps, request_timeout=0.3, max_retries=3)
    assert [(r["prompt_id"], r["sample_idx"]) for r in records] == \
        [(p["prompt_id"], i) for p in PROBLEMS for i in range(2)]
    for record in records:
        seed = sample_seed(9, record["prompt_id"], record["sample_idx"])
        prompt = messages_of(record["prompt"])
        assert record["completion"] == " ".join(completion_for(prompt, seed, 4))
    assert all(not plan for plan in server.faults.values())  # every scripted fault was hit
    assert len(sleeps) == 8  # one backoff per failed attempt
    assert sum(1 for s in sleeps if s >= 7) == 2  # the two 429s waited their Retry-After: 7


def test_a_request_that_keeps_failing_names_the_prompt_and_the_server(server):
    params = SamplingParams(n=1, max_tokens=4, seed=0)
    server.faults[sample_seed(0, "b", 0)] = ["500"] * 4
    with pytest.raises(RlscaleError) as info:
        engine_run(server, params, max_retries=3)
    assert str(info.value) == ('/chat/completions for prompt "b" sample 0 failed after 4 '
                               "attempts: HTTP 500: CUDA out of memory")


def test_request_errors_and_wrong_choices_are_not_retried(server, problems_file):
    common = ["--backend", "openai", "--base-url", server.url, "--model", "policy", "-n", "1",
              "--max-tokens", "4"]
    server.faults[sample_seed(0, 7, 0)] = ["400"]
    result = rollout(problems_file, *common)
    assert result.exit_code == 1
    assert result.stderr == ("rlscale rollout: /chat/completions for prompt 7 sample 0: HTTP 400: "
                             "top_k must be -1 or at least 1\n")
    server.faults[sample_seed(0, "a", 0)] = ["choices"]
    result = rollout(problems_file, *common)
    assert result.exit_code == 1
    assert result.stderr == ('rlscale rollout: /chat/completions for prompt "a" sample 0: the '
                             "server returned 2 choices for n=1\n")


def test_a_server_that_ignores_seed_is_said_so(problems_file, tmp_path):
    with FakeServer(honour_seed=False) as server:
        out = str(tmp_path / "out.jsonl")
        result = rollout(problems_file, "--backend", "openai", "--base-url", server.url,
                         "--model", "policy", "-n", "1", "--max-tokens", "8", "-o", out)
    assert result.exit_code == 0
    assert "warning: the server ignores 'seed'" in result.stderr
    assert {r["sampling"]["seed_honoured"] for r in records_of(out)} == {"no"}


def test_concurrency_is_bounded_and_connections_are_reused(problems_file):
    many = [{"prompt_id": i, "prompt": f"What is {i} + 1?"} for i in range(40)]
    with FakeServer() as server:
        result = rollout("--backend", "openai", "--base-url", server.url, "--model", "policy",
                         "-n", "2", "--max-tokens", "3", "--concurrency", "4",
                         input=jsonl(many))
    assert result.exit_code == 0, result.stderr
    assert len(result.records) == 80
    assert server.max_in_flight <= 4
    assert len(server.clients) <= 4  # 83 requests over at most 4 kept-alive connections


# --- fail fast ---------------------------------------------------------------------------------


def test_unreachable_url_and_wrong_model_fail_before_sampling(server, problems_file,
                                                               monkeypatch):
    import socket

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once the socket closes
    result = rollout(problems_file, "--backend", "openai", "--base-url",
                     f"http://user:pw@127.0.0.1:{port}/v1", "--model", "policy")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"rlscale rollout: --base-url http://127.0.0.1:{port}/v1: "
                                    "cannot reach the server (ConnectError")
    assert result.stderr.count("\n") == 1 and "pw" not in result.stderr
    result = rollout(problems_file, "--backend", "openai", "--base-url", server.url, "--model",
                     "polcy")
    assert (result.exit_code, result.stderr) == (1, f"rlscale rollout: --model polcy: not served "
                                                 f"by {server.url} (it serves policy)\n")
    assert server.generation_bodies() == []
    server.api_key = "right"
    result = rollout(problems_file, "--backend", "openai", "--base-url", server.url, "--model",
                     "policy")
    assert (result.exit_code, result.stderr) == (1, f"rlscale rollout: --base-url {server.url}: "
                                                 "the server refused the API key (HTTP 401: "
                                                 "bad key)\n")
    result = rollout(problems_file, "--backend", "openai", "--base-url", server.url, "--model",
                     "policy", "--api-key-env", "RLSCALE_TEST_NO_SUCH_VAR")
    assert (result.exit_code, result.stderr) == (2, "rlscale rollout: --api-key-env "
                                                 "RLSCALE_TEST_NO_SUCH_VAR: the variable is not set\n")


@pytest.mark.parametrize("args, message", [
    (["--backend", "openai", "--model", "m"], "--backend openai needs --base-url URL"),
    (["--backend", "hf", "--model", "m", "--base-url", "http://x/v1"],
     "--base-url needs --backend openai"),
    (["--backend", "openai", "--model", "m", "--base-url", "http://x/v1", "--dtype", "float32"],
     "--tensor-parallel-size, --vllm-arg, --device and --dtype are the server's business with "
     "--backend openai"),
    (["--backend", "openai", "--model", "m", "--base-url", "ftp://x/v1"],
     "--base-url ftp://x/v1: expected http:// or https://"),
    (["--backend", "openai", "--model", "m", "--base-url", "http://x/v1", "--logprobs",
      "--temperature", "0.7"], "--logprobs with --backend openai needs --temperature 1 (servers "
     "report log-probs before temperature scaling by default)"),
    (["--backend", "openai", "--model", "m", "--base-url", "http://x/v1", "--concurrency", "0"],
     "--concurrency must be at least 1, got 0"),
    (["--backend", "openai", "--model", "m", "--base-url", "http://x/v1", "--max-prompt-tokens",
      "9"], "--max-prompt-tokens with --backend openai needs --tokenizer DIR"),
    (["--backend", "hf", "--model", "m", "--tokenizer", "t/"],
     "--tokenizer is for --backend openai (other backends use --model's)"),
])
def test_usage_errors(args, message):
    result = rollout(*args, input="")
    assert (result.exit_code, result.stderr) == (2, f"rlscale rollout: {message}\n")


# --- weights that change every step ------------------------------------------------------------


def test_expect_step_from_the_name_or_the_served_checkpoint(problems_file, tmp_path):
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "rlscale_trainer.json").write_text(json.dumps({"format": 1, "step": 4}))
    models = [{"id": "policy-step-3", "root": "/elsewhere"}, {"id": "full", "root": str(ckpt)},
              {"id": "plain", "root": "/srv/plain"}]
    with FakeServer(models) as server:
        def run(model, step):
            return rollout(problems_file, "--backend", "openai", "--base-url", server.url,
                           "--model", model, "-n", "1", "--max-tokens", "2", "--expect-step",
                           str(step))
        assert run("policy-step-3", 3).exit_code == 0
        assert run("full", 4).exit_code == 0
        result = run("full", 5)
        assert (result.exit_code, result.stderr) == (1, "rlscale rollout: --expect-step 5: the "
                                                     "server has step 4 of full; reload the "
                                                     "weights before sampling\n")
        result = run("plain", 1)
        assert result.exit_code == 1 and "cannot tell which step plain is" in result.stderr
    assert served_step({"id": "run@12"}) == 12 and served_step({"id": "step3x"}) is None


def test_lora_is_loaded_under_the_served_name(server, problems_file, tmp_path):
    adapter = tmp_path / "adapter-step-2"
    adapter.mkdir()
    result = rollout(problems_file, "--backend", "openai", "--base-url", server.url, "--model",
                     "policy-step-2", "--lora", str(adapter), "-n", "1", "--max-tokens", "2",
                     "--expect-step", "2")
    assert result.exit_code == 0, result.stderr
    load = next(b for b in server.bodies if "lora_name" in b)
    assert load == {"lora_name": "policy-step-2", "lora_path": str(adapter)}
    assert {b["model"] for b in server.generation_bodies()} == {"policy-step-2"}


def test_resume_refuses_samples_of_other_served_weights(problems_file, tmp_path):
    out = str(tmp_path / "out.jsonl")
    common = ["--backend", "openai", "--model", "policy", "-n", "1", "--max-tokens", "2",
              "--resume", "-o", out]
    with FakeServer([{"id": "policy", "root": "/ckpt/step-1"}]) as server:
        assert rollout(problems_file, *common, "--base-url", server.url).exit_code == 0
    with FakeServer([{"id": "policy", "root": "/ckpt/step-2"}]) as server:
        result = rollout(problems_file, *common, "--base-url", server.url)
    assert result.exit_code == 1
    assert f"{out}:1: resume: written by other weights" in result.stderr


def test_resume_after_a_kill_loses_and_duplicates_nothing(tmp_path):
    problems = [{"prompt_id": f"q{i}", "prompt": f"What is {i} * 2?"} for i in range(12)]
    path = tmp_path / "problems.jsonl"
    path.write_text(jsonl(problems))
    out = str(tmp_path / "out.jsonl")
    common = [str(path), "--backend", "openai", "--model", "policy", "-n", "2", "--max-tokens",
              "5", "--batch-size", "1", "--concurrency", "2", "-q"]
    with FakeServer(hang_after=9) as server:  # the 3 probes + 6 samples, then no answers
        proc = subprocess.Popen([sys.executable, "-m", "rlscale", "rollout", *common,
                                 "--base-url", server.url, "--resume", "-o", out],
                                cwd=REPO, stderr=subprocess.PIPE)
        try:
            while server.n_generated < 9 or _lines(out) < 6:
                assert proc.poll() is None, proc.stderr.read()
                time.sleep(0.05)  # waiting for progress, not measuring it
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    assert _lines(out) == 6
    with FakeServer() as server:
        result = rollout(*common, "--base-url", server.url, "--resume", "-o", out)
        assert result.exit_code == 0, result.stderr
        assert len(server.generation_bodies()) == 3 + 18  # only the missing samples
        full = str(tmp_path / "full.jsonl")
        assert rollout(*common, "--base-url", server.url, "-o", full).exit_code == 0
    key = lambda r: (r["prompt_id"], r["sample_idx"])  # noqa: E731
    resumed = records_of(out)
    assert len({key(r) for r in resumed}) == len(resumed) == 24
    for record in resumed:  # the killed run's server listened on another port
        record["sampling"].pop("server")
    expected = records_of(full)
    for record in expected:
        record["sampling"].pop("server")
    assert sorted(resumed, key=key) == sorted(expected, key=key)


def _lines(path) -> int:
    if not os.path.exists(path):
        return 0
    with open(path, "rb") as handle:
        return handle.read().count(b"\n")


# --- retry arithmetic and messages -------------------------------------------------------------


@given(st.integers(1, 40), st.integers(0, 2**32), st.none() | st.floats(0, 1e6))
def test_backoff_grows_is_capped_and_honours_retry_after(attempt, seed, retry_after):
    delay = backoff_seconds(attempt, random.Random(seed), retry_after=retry_after)
    plain = min(MAX_BACKOFF_S, 0.5 * 2 ** (attempt - 1))
    if retry_after is None:
        assert plain / 2 <= delay <= plain
    else:
        assert delay >= min(retry_after, 4 * MAX_BACKOFF_S) and delay <= 4 * MAX_BACKOFF_S


def test_retry_after_forms_and_server_messages():
    assert retry_after_seconds("2.5") == 2.5 and retry_after_seconds(None) is None
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert retry_after_seconds("-4") == 0.0 and retry_after_seconds("nan") is None
    assert server_message(500, b'{"error": {"message": "boom\\n  twice"}}') == "HTTP 500: boom twice"
    assert server_message(422, b'{"detail": [1]}') == "HTTP 422: [1]"
    assert server_message(502, b"<html>\nBad gateway") == "HTTP 502: <html>"
    assert server_message(503, b"x" * 500).endswith("...")


def test_engine_arguments_are_checked():
    with pytest.raises(UsageError, match="--max-retries must be >= 0"):
        OpenAIRollout("http://127.0.0.1:1/v1", "m", SamplingParams(), max_retries=-1)


def test_chat_logprobs_are_read_from_the_chat_answer(server):
    records = engine_run(server, SamplingParams(n=1, max_tokens=6, seed=2), logprobs=True)
    bodies = server.generation_bodies()[3:]
    assert all((b["logprobs"], b["top_logprobs"]) == (True, 0) for b in bodies)
    for record in records:
        n = record["n_completion_tokens"]
        assert n >= 1 and record["old_logprobs"] == [-0.25 * (i % 4) for i in range(n)]


def test_served_context_bounds_tokenized_prompts(server, tiny_checkpoint, problems_file):
    from rlscale.engines.hf_rollout import PromptEncoder, load_tokenizer

    n_prompt = len(PromptEncoder(load_tokenizer(tiny_checkpoint))(PROBLEMS[0]["prompt"]))
    result = rollout(problems_file, "--backend", "openai", "--base-url", server.url, "--model",
                     "policy", "--tokenizer", tiny_checkpoint, "-n", "1", "--max-tokens",
                     str(4096 - n_prompt + 1))
    assert result.exit_code == 1
    assert result.stderr == (f"rlscale rollout: {problems_file}:1: prompt has {n_prompt} tokens; "
                             f"with --max-tokens {4096 - n_prompt + 1} it exceeds the model's "
                             "context of 4096 tokens (use --skip-invalid to drop such prompts)\n")
    assert server.generation_bodies()[3:] == []  # refused before sampling
