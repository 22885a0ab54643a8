"""``rlscale rollout``: sample G completions per problem with transformers or vLLM.

Output: one record per sample, in input order then ``sample_idx`` order, with every input field
kept (``answer``, ``data_source``, … so ``rlscale reward`` can grade) plus ``prompt_id``,
``sample_idx``, ``completion``, ``finish_reason`` (stop|length), ``n_prompt_tokens``,
``n_completion_tokens``, ``prompt_ids``, ``completion_ids`` (stop token included when
``finish_reason`` is stop; dropped with ``--no-token-ids``), ``model``, ``seed`` and ``sampling``
(backend, temperature, top_p, top_k, max_tokens, chat_template, lora, weights: a fingerprint of
the weights that ``--resume`` checks, and the engine's own facts); with ``--logprobs`` also
``old_logprobs`` (one per completion token, see ``rlscale.core.sampling.LOGPROBS_DOC``). Input
fields that describe an earlier sample (old_logprobs, reward, pred, verdict, advantage) are
dropped.

Writing: stdout streams batch by batch. ``-o FILE`` alone writes atomically (the file appears
only when every sample is done). ``--resume -o FILE`` appends instead, flushing each sample, so a
killed run keeps what it wrote and the next ``--resume`` draws only the missing samples (a
partial last line is dropped first); ``--resume`` on a file that does not exist starts it.
"""

from __future__ import annotations

import os
import time
from typing import IO, Annotated

import typer

from rlscale.cli._shared import (
    DebugOpt,
    InputFormatOpt,
    InputsArg,
    OutputOpt,
    QuietOpt,
    RejectsOpt,
    SkipInvalidOpt,
    WideOpt,
    check_input_format,
    handle_errors,
    open_rejects,
    progress,
    report_skipped,
    say,
    warn_if_waiting_on_tty,
)

NAME = "rollout"
HELP = (
    "Sample -n completions per problem record (field 'prompt': a string or a list of chat "
    "messages as in VeRL parquet; 'prompt_id', else a hash of the prompt) with transformers "
    "(--backend hf, CPU or GPU), vLLM (--backend vllm, tensor parallel, LoRA) or an "
    "OpenAI-compatible server (--backend openai --base-url URL). Writes one record per sample: "
    "prompt_id, sample_idx, completion, finish_reason, token counts and ids, model, seed, "
    "sampling, plus every input field. Each sample's seed derives from (--seed, prompt_id, "
    "sample_idx); with hf a sample does not depend on batch size, --shard or --resume (vLLM and "
    "servers batch on their own: see README). Streams: problems are sampled --batch-size at a "
    "time and written before more input is read."
)
EPILOG = (
    "Examples:\n\n"
    "  rlscale curate train.parquet | rlscale rollout --model ckpt/ -n 8 --max-tokens 4096 "
    "| rlscale reward > scored.jsonl\n\n"
    "  rlscale rollout test.jsonl --model Qwen2.5-7B/ -n 1 --temperature 0.7 --backend vllm "
    "--tensor-parallel-size 4 -o eval.jsonl\n\n"
    "  rlscale rollout train.jsonl --model base/ --lora adapter/ --shard 3/8 --resume "
    "-o part3.jsonl\n\n"
    "  rlscale rollout raw.jsonl --model base-model/ --no-chat-template --no-token-ids -n 4\n\n"
    "  rlscale rollout train.jsonl --backend openai --base-url http://127.0.0.1:8000/v1 "
    "--model policy-step-3 --tokenizer ckpt/ --expect-step 3 -o rollouts.jsonl"
)


def command(
    inputs: InputsArg = None,
    model: Annotated[str, typer.Option("--model", "-m", metavar="DIR",
                                       help="Checkpoint directory (HF format); with --backend "
                                       "openai the served model name.")] = ...,
    n: Annotated[int, typer.Option("-n", "--n-samples", help="Samples per problem (G).")] = 8,
    temperature: Annotated[float, typer.Option(help="Sampling temperature; 0 = greedy.")] = 1.0,
    top_p: Annotated[float, typer.Option(help="Nucleus sampling mass (1 = off).")] = 1.0,
    top_k: Annotated[int, typer.Option(help="Top-k filter (-1 = off).")] = -1,
    max_tokens: Annotated[int, typer.Option(help="Most tokens per completion.")] = 4096,
    max_prompt_tokens: Annotated[int | None, typer.Option(
        help="Refuse longer prompts (the paper: 2048; with --skip-invalid: drop them).")] = None,
    seed: Annotated[int, typer.Option(help="Run seed; per-sample seeds derive from it.")] = 0,
    backend: Annotated[str, typer.Option(
        help="hf, vllm, openai (an OpenAI-compatible server at --base-url), or auto (vllm when "
        "installed and a GPU is present, else hf).")] = "auto",
    batch_size: Annotated[int | None, typer.Option(
        help="Problems sampled together (default: hf 8, vllm 512, openai 256).")] = None,
    tensor_parallel_size: Annotated[int, typer.Option(
        help="vLLM: GPUs per model replica.")] = 1,
    lora: Annotated[str | None, typer.Option(metavar="DIR",
                                             help="A peft LoRA adapter to apply.")] = None,
    chat_template: Annotated[bool, typer.Option(
        "--chat-template/--no-chat-template",
        help="Render prompts with the tokenizer's chat template (off: raw text, base models).")
    ] = True,
    token_ids: Annotated[bool, typer.Option(
        "--token-ids/--no-token-ids", help="Write prompt_ids and completion_ids.")] = True,
    logprobs: Annotated[bool, typer.Option(
        "--logprobs", help="Write old_logprobs: log-prob of each completion token under "
        "softmax(logits / T), for grpo-step.")] = False,
    shard: Annotated[str | None, typer.Option(
        metavar="I/N", help="Sample only problems at positions p with p % N == I.")] = None,
    resume: Annotated[bool, typer.Option(
        help="With -o FILE: skip samples already in FILE and append the rest.")] = False,
    device: Annotated[str, typer.Option(help="hf: auto, cpu, cuda or cuda:K.")] = "auto",
    dtype: Annotated[str, typer.Option(
        help="auto (the checkpoint's), float32, bfloat16 or float16.")] = "auto",
    vllm_arg: Annotated[list[str] | None, typer.Option(
        metavar="KEY=VALUE",
        help="Extra vllm.LLM argument, repeatable (e.g. max_model_len=8192).")] = None,
    base_url: Annotated[str | None, typer.Option(
        metavar="URL", help="openai: the server's API root, e.g. http://127.0.0.1:8000/v1.")
    ] = None,
    api_key_env: Annotated[str, typer.Option(
        metavar="VAR", help="openai: environment variable holding the API key (never written).")
    ] = "OPENAI_API_KEY",
    tokenizer: Annotated[str | None, typer.Option(
        metavar="DIR", help="openai: tokenize prompts here, send token ids and keep "
        "prompt_ids/completion_ids (vLLM servers).")] = None,
    concurrency: Annotated[int, typer.Option(help="openai: requests in flight at once.")] = 32,
    max_retries: Annotated[int, typer.Option(
        help="openai: retries of a request on 429, 5xx, timeouts and dropped connections.")] = 5,
    request_timeout: Annotated[float, typer.Option(
        help="openai: seconds to wait for one answer.")] = 600.0,
    expect_step: Annotated[int | None, typer.Option(
        metavar="N", help="openai: refuse unless the server serves training step N (model "
        "name NAME-step-N, or served from an rlscale checkpoint).")] = None,
    output: OutputOpt = None,
    input_format: InputFormatOpt = None,
    wide: WideOpt = None,
    skip_invalid: SkipInvalidOpt = False,
    rejects: RejectsOpt = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    def body() -> None:
        check_input_format(input_format)  # a usage error before any model loads
        from rlscale.core.errors import UsageError
        from rlscale.io.jsonl import RecordReader
        from rlscale.core.sampling import (
            PlanStats,
            SamplingParams,
            parse_engine_args,
            parse_shard,
            plan_problems,
            rollout_records,
        )

        params = SamplingParams(n=n, temperature=temperature, top_p=top_p, top_k=top_k,
                                max_tokens=max_tokens, seed=seed)
        shard_spec = parse_shard(shard)
        engine_args = parse_engine_args(vllm_arg)
        if resume and output in (None, "-"):
            raise UsageError("--resume needs -o FILE (the output file to continue)")
        from rlscale.io.jsonl import refuse_overlap

        refuse_overlap({"-o": output, "--rejects": rejects}, inputs)
        if max_prompt_tokens is not None and max_prompt_tokens < 1:
            raise UsageError(f"--max-prompt-tokens must be at least 1, got {max_prompt_tokens}")
        if batch_size is not None and batch_size < 1:
            raise UsageError(f"--batch-size must be at least 1, got {batch_size}")
        if tensor_parallel_size < 1:
            raise UsageError(f"--tensor-parallel-size must be at least 1, got "
                             f"{tensor_parallel_size}")
        if lora is not None and not os.path.isdir(lora):
            raise UsageError(f"--lora {lora}: no such directory")
        chosen = _choose_backend(backend)
        if (base_url is not None) != (chosen == "openai"):
            raise UsageError("--base-url needs --backend openai" if base_url is not None
                             else "--backend openai needs --base-url URL")
        if chosen != "openai" and tokenizer is not None:
            raise UsageError("--tokenizer is for --backend openai (other backends use --model's)")
        if chosen == "openai" and (tensor_parallel_size != 1 or engine_args or device != "auto"
                                   or dtype != "auto"):
            raise UsageError("--tensor-parallel-size, --vllm-arg, --device and --dtype are the "
                             "server's business with --backend openai")
        if chosen == "openai" and max_prompt_tokens is not None and tokenizer is None:
            raise UsageError("--max-prompt-tokens with --backend openai needs --tokenizer DIR")
        if chosen == "hf" and (tensor_parallel_size != 1 or engine_args):
            flag = "--tensor-parallel-size" if tensor_parallel_size != 1 else "--vllm-arg"
            raise UsageError(f"{flag} needs --backend vllm")
        if chosen == "vllm" and device != "auto":
            raise UsageError("--device is for --backend hf; vLLM places the model itself")
        if params.greedy and n > 1:
            say(f"rlscale rollout: warning: --temperature 0 is greedy decoding; the {n} samples "
                "of each problem will be identical", quiet)
        warn_if_waiting_on_tty(inputs, quiet)

        engine = None
        if chosen == "openai":  # cheap to start, and what it serves identifies the weights
            engine = _make_openai(base_url, model, params, chat_template=chat_template,
                                  lora=lora, tokenizer=tokenizer, logprobs=logprobs,
                                  concurrency=concurrency, max_retries=max_retries,
                                  request_timeout=request_timeout, expect_step=expect_step,
                                  api_key_env=api_key_env, quiet=quiet)
            weights = _served_identity(engine)
        else:
            _check_model_path(model)
            from rlscale.engines.fingerprint import weights_fingerprint

            weights = weights_fingerprint(model, lora)
        resume_state = (_load_resume(output, params, chat_template, weights, quiet) if resume
                        else None)
        if engine is None:
            engine = _make_engine(chosen, model, params, chat_template=chat_template, lora=lora,
                                  device=device, dtype=dtype,
                                  tensor_parallel_size=tensor_parallel_size,
                                  engine_args=engine_args, logprobs=logprobs)
        describe = getattr(engine, "describe", None)
        extra = {"chat_template": chat_template, "lora": lora, "weights": weights,
                 **(describe() if describe is not None else {})}
        keep_ids = token_ids and (chosen != "openai" or tokenizer is not None)
        stats = PlanStats()
        started = time.perf_counter()
        n_samples = n_tokens = 0
        with open_rejects(rejects, skip_invalid) as rejects_file:
            reader = RecordReader(inputs, skip_invalid=skip_invalid, rejects=rejects_file,
                                  input_format=input_format, wide=wide)
            problems = plan_problems(reader, params=params, encode=engine.encode_prompt,
                                     invalid=reader.invalid, shard=shard_spec, resume=resume_state,
                                     context_length=engine.context_length,
                                     max_prompt_tokens=max_prompt_tokens, stats=stats)
            records = rollout_records(
                problems, engine, params, model=model, keep_token_ids=keep_ids,
                batch_size=batch_size or DEFAULT_BATCH[chosen], extra=extra)
            try:
                with _open_writer(output, append=resume, source=reader) as writer:
                    for record in progress(records, description="sampling", quiet=quiet):
                        writer.write(record)
                        n_samples += 1
                        n_tokens += record["n_completion_tokens"]
            finally:
                close = getattr(engine, "close", None)
                if close is not None:
                    close()
        seconds = time.perf_counter() - started
        done = f", {stats.complete} already complete" if resume_state is not None else ""
        say(f"rlscale rollout: {stats.planned} problems, {n_samples} samples, {n_tokens} "
            f"completion tokens in {seconds:.1f} s ({n_tokens / max(seconds, 1e-9):.0f} tokens/s, "
            f"{chosen}){done}", quiet)
        report_skipped(NAME, reader.n_skipped, rejects, quiet)

    handle_errors(NAME, debug, body, quiet=quiet)


DEFAULT_BATCH = {"hf": 8, "vllm": 512, "openai": 256}


def _check_model_path(model: str) -> None:
    from rlscale.core.errors import RlscaleError

    if not os.path.isdir(model) and (os.sep in model or model.startswith(".")):
        raise RlscaleError(f"--model {model}: no such directory")


def _make_openai(base_url, model, params, *, api_key_env: str, quiet: bool, **kwargs):
    from rlscale.core.errors import UsageError
    from rlscale.engines.openai_rollout import OpenAIRollout

    api_key = os.environ.get(api_key_env)
    if api_key is None and api_key_env != "OPENAI_API_KEY":
        raise UsageError(f"--api-key-env {api_key_env}: the variable is not set")
    engine = OpenAIRollout(base_url, model, params, api_key=api_key,
                           tokenizer_dir=kwargs.pop("tokenizer"), **kwargs)
    if engine.seed_status == "no":
        say("rlscale rollout: warning: the server ignores 'seed' (the same seed gave different "
            "samples); samples are not reproducible and records say seed_honoured: no", quiet)
    return engine


def _served_identity(engine) -> str:
    """What identifies the served weights: the served name and where it is served from."""
    import hashlib

    root = engine.served.get("root") or ""
    text = f"openai\x00{engine.model}\x00{root}"
    if root and os.path.isdir(root):
        from rlscale.engines.fingerprint import weights_fingerprint

        text += "\x00" + weights_fingerprint(root)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _choose_backend(requested: str) -> str:
    import importlib.util

    from rlscale.core.sampling import choose_backend

    if requested in ("hf", "openai"):
        if requested == "openai":
            return "openai"
        return choose_backend(requested, vllm_installed=False, gpu_available=False)
    vllm_installed = importlib.util.find_spec("vllm") is not None
    gpu = False
    if vllm_installed:
        import torch

        gpu = torch.cuda.is_available()
    if requested == "auto" and vllm_installed and gpu:
        from rlscale.core.errors import RlscaleError
        from rlscale.engines.vllm_rollout import import_vllm

        try:
            import_vllm()  # "auto" means: vLLM if it actually imports
        except RlscaleError as exc:
            say(f"rlscale rollout: warning: {exc}; using --backend hf")
            vllm_installed = False
    return choose_backend(requested, vllm_installed=vllm_installed, gpu_available=gpu)


def _make_engine(backend: str, model: str, params, *, chat_template: bool, lora: str | None,
                 device: str, dtype: str, tensor_parallel_size: int, engine_args: dict,
                 logprobs: bool):
    if backend == "vllm":
        from rlscale.engines.vllm_rollout import VllmRollout

        return VllmRollout(model, params, chat_template=chat_template, lora=lora, dtype=dtype,
                           tensor_parallel_size=tensor_parallel_size, engine_args=engine_args,
                           logprobs=logprobs)
    from rlscale.engines.hf_rollout import HfRollout

    return HfRollout(model, params, chat_template=chat_template, lora=lora, device=device,
                     dtype=dtype, logprobs=logprobs)


def _load_resume(output: str, params, chat_template: bool, weights: str, quiet: bool):
    """Read what ``output`` already holds (after dropping a partial last line).

    The backend may change between runs (samples of either backend are samples of the same
    policy); the seed, the sampling parameters, the prompt rendering and the weights (their
    fingerprint, :mod:`rlscale.engines.fingerprint`) may not.
    """
    from rlscale.io.jsonl import RecordReader
    from rlscale.core.sampling import ResumeState

    state = ResumeState(seed=params.seed,
                        sampling={**params.describe(), "chat_template": chat_template,
                                  "weights": weights})
    if not os.path.exists(output):
        return state
    dropped = drop_partial_last_line(output)
    if dropped:
        say(f"rlscale rollout: {output}: dropped a partial last line ({dropped} bytes) left by an "
            "interrupted run", quiet)
    for record, where in RecordReader([output]):
        state.add(record, where.source, where.line)
    complete, partial = state.summary(params.n)
    say(f"rlscale rollout: resuming {output}: {state.n_records} samples, {complete} problems "
        f"complete, {partial} partial", quiet)
    return state


def drop_partial_last_line(path: str) -> int:
    """Truncate ``path`` after its last newline; return how many bytes were removed.

    A run killed mid-write can leave half a JSON line; appending after it would corrupt the next
    record too.
    """
    with open(path, "rb+") as handle:
        size = handle.seek(0, os.SEEK_END)
        if size == 0:
            return 0
        position = size
        block = 1 << 16
        while position > 0:
            start = max(0, position - block)
            handle.seek(start)
            chunk = handle.read(position - start)
            newline = chunk.rfind(b"\n")
            if newline != -1:
                keep = start + newline + 1
                break
            position = start
        else:
            keep = 0
        if keep < size:
            handle.truncate(keep)
        return size - keep


class _AppendWriter:
    """Appends records to a file and flushes each one, so an interrupted run keeps them.

    On success it ends the file with the end-of-stream record, counting the records since the
    file's last one (the earlier, interrupted runs' samples are part of this batch).
    """

    def __init__(self, path: str, source=None):
        from rlscale.io.jsonl import dumps, records_since_end

        self._dumps = dumps
        self._source = source
        self._count = records_since_end(path) if os.path.exists(path) else 0
        self._handle: IO[bytes] = open(path, "ab")

    def write(self, record) -> None:
        self._handle.write(self._dumps(record))
        self._handle.flush()
        self._count += 1

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc) -> None:
        from rlscale.io.jsonl import END_KEY, end_records_enabled

        if exc_type is None and self._count and end_records_enabled() and not (
                self._source is not None and self._source.problems):
            self._handle.write(self._dumps({END_KEY: {"tool": NAME, "records": self._count}}))
        self._handle.close()


def _open_writer(output: str | None, *, append: bool, source=None):
    from rlscale.io.jsonl import RecordWriter

    if append and output not in (None, "-"):
        directory = os.path.dirname(os.path.abspath(output))
        if not os.path.isdir(directory):
            from rlscale.core.errors import RlscaleError

            raise RlscaleError(f"{output}: directory {directory} does not exist")
        return _AppendWriter(output, source)
    return RecordWriter(output, tool=NAME, source=source)

