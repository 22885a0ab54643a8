"""``rlscale rollout``: sample G completions per problem with transformers or vLLM.

Output: one record per sample, in input order then ``sample_idx`` order, with every input field
kept (``answer``, ``data_source``, … so ``rlscale reward`` can grade) plus ``prompt_id``,
``sample_idx``, ``completion``, ``finish_reason`` (stop|length), ``n_prompt_tokens``,
``n_completion_tokens``, ``prompt_ids``, ``completion_ids`` (stop token included when
``finish_reason`` is stop; dropped with ``--no-token-ids``), ``model``, ``seed`` and ``sampling``
(backend, temperature, top_p, top_k, max_tokens, chat_template, lora); with ``--logprobs`` also
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
    InputsArg,
    OutputOpt,
    QuietOpt,
    RejectsOpt,
    SkipInvalidOpt,
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
    "(--backend hf, CPU or GPU) or vLLM (--backend vllm, tensor parallel, LoRA). Writes one record "
    "per sample: prompt_id, sample_idx, completion, finish_reason, token counts and ids, model, "
    "seed, plus every input field. Each sample's seed derives from (--seed, prompt_id, "
    "sample_idx), so results do not depend on batch size, --shard or --resume. Streams: problems "
    "are sampled --batch-size at a time and written before more input is read."
)
EPILOG = (
    "Examples:\n\n"
    "  rlscale curate train.parquet | rlscale rollout --model ckpt/ -n 8 --max-tokens 4096 "
    "| rlscale reward > scored.jsonl\n\n"
    "  rlscale rollout test.jsonl --model Qwen2.5-7B/ -n 1 --temperature 0.7 --backend vllm "
    "--tensor-parallel-size 4 -o eval.jsonl\n\n"
    "  rlscale rollout train.jsonl --model base/ --lora adapter/ --shard 3/8 --resume "
    "-o part3.jsonl\n\n"
    "  rlscale rollout raw.jsonl --model base-model/ --no-chat-template --no-token-ids -n 4"
)


def command(
    inputs: InputsArg = None,
    model: Annotated[str, typer.Option("--model", "-m", metavar="DIR",
                                       help="Checkpoint directory (HF format).")] = ...,
    n: Annotated[int, typer.Option("-n", "--n-samples", help="Samples per problem (G).")] = 8,
    temperature: Annotated[float, typer.Option(help="Sampling temperature; 0 = greedy.")] = 1.0,
    top_p: Annotated[float, typer.Option(help="Nucleus sampling mass (1 = off).")] = 1.0,
    top_k: Annotated[int, typer.Option(help="Top-k filter (-1 = off).")] = -1,
    max_tokens: Annotated[int, typer.Option(help="Most tokens per completion.")] = 4096,
    max_prompt_tokens: Annotated[int | None, typer.Option(
        help="Refuse longer prompts (the paper: 2048; with --skip-invalid: drop them).")] = None,
    seed: Annotated[int, typer.Option(help="Run seed; per-sample seeds derive from it.")] = 0,
    backend: Annotated[str, typer.Option(
        help="hf, vllm, or auto (vllm when installed and a GPU is present).")] = "auto",
    batch_size: Annotated[int | None, typer.Option(
        help="Problems sampled together (default: hf 8, vllm 512).")] = None,
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
    output: OutputOpt = None,
    skip_invalid: SkipInvalidOpt = False,
    rejects: RejectsOpt = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    def body() -> None:
        from rlscale.core.errors import UsageError
        from rlscale.core.jsonl import RecordReader
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
        if output not in (None, "-") and any(
                path != "-" and os.path.exists(path) and os.path.exists(output)
                and os.path.samefile(path, output) for path in inputs or []):
            raise UsageError(f"-o {output} is also an input; write the samples to another file")
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
        if chosen == "hf" and (tensor_parallel_size != 1 or engine_args):
            flag = "--tensor-parallel-size" if tensor_parallel_size != 1 else "--vllm-arg"
            raise UsageError(f"{flag} needs --backend vllm")
        if chosen == "vllm" and device != "auto":
            raise UsageError("--device is for --backend hf; vLLM places the model itself")
        if params.greedy and n > 1:
            say(f"rlscale rollout: warning: --temperature 0 is greedy decoding; the {n} samples "
                "of each problem will be identical", quiet)
        warn_if_waiting_on_tty(inputs, quiet)

        resume_state = (_load_resume(output, params, chat_template, quiet) if resume
                        else None)
        engine = _make_engine(chosen, model, params, chat_template=chat_template, lora=lora,
                              device=device, dtype=dtype, tensor_parallel_size=tensor_parallel_size,
                              engine_args=engine_args, logprobs=logprobs)
        stats = PlanStats()
        started = time.perf_counter()
        n_samples = n_tokens = 0
        with open_rejects(rejects, skip_invalid) as rejects_file:
            reader = RecordReader(inputs, skip_invalid=skip_invalid, rejects=rejects_file)
            problems = plan_problems(reader, params=params, encode=engine.encode_prompt,
                                     invalid=reader.invalid, shard=shard_spec, resume=resume_state,
                                     context_length=engine.context_length,
                                     max_prompt_tokens=max_prompt_tokens, stats=stats)
            records = rollout_records(
                problems, engine, params, model=model, keep_token_ids=token_ids,
                batch_size=batch_size or (512 if chosen == "vllm" else 8),
                extra={"chat_template": chat_template, "lora": lora})
            with _open_writer(output, append=resume) as writer:
                for record in progress(records, description="sampling", quiet=quiet):
                    writer.write(record)
                    n_samples += 1
                    n_tokens += record["n_completion_tokens"]
        seconds = time.perf_counter() - started
        done = f", {stats.complete} already complete" if resume_state is not None else ""
        say(f"rlscale rollout: {stats.planned} problems, {n_samples} samples, {n_tokens} "
            f"completion tokens in {seconds:.1f} s ({n_tokens / max(seconds, 1e-9):.0f} tokens/s, "
            f"{chosen}){done}", quiet)
        report_skipped(NAME, reader.n_skipped, rejects, quiet)

    handle_errors(NAME, debug, body, quiet=quiet)


def _choose_backend(requested: str) -> str:
    import importlib.util

    from rlscale.core.sampling import choose_backend

    if requested == "hf":
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
    from rlscale.core.errors import RlscaleError

    if not os.path.isdir(model) and (os.sep in model or model.startswith(".")):
        raise RlscaleError(f"--model {model}: no such directory")
    if backend == "vllm":
        from rlscale.engines.vllm_rollout import VllmRollout

        return VllmRollout(model, params, chat_template=chat_template, lora=lora, dtype=dtype,
                           tensor_parallel_size=tensor_parallel_size, engine_args=engine_args,
                           logprobs=logprobs)
    from rlscale.engines.hf_rollout import HfRollout

    return HfRollout(model, params, chat_template=chat_template, lora=lora, device=device,
                     dtype=dtype, logprobs=logprobs)


def _load_resume(output: str, params, chat_template: bool, quiet: bool):
    """Read what ``output`` already holds (after dropping a partial last line).

    The backend may change between runs (samples of either backend are samples of the same
    policy); the seed, the sampling parameters and the prompt rendering may not.
    """
    from rlscale.core.jsonl import RecordReader
    from rlscale.core.sampling import ResumeState

    state = ResumeState(seed=params.seed,
                        sampling={**params.describe(), "chat_template": chat_template})
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
    """Appends records to a file and flushes each one, so an interrupted run keeps them."""

    def __init__(self, path: str):
        from rlscale.core.jsonl import dumps

        self._dumps = dumps
        self._handle: IO[bytes] = open(path, "ab")

    def write(self, record) -> None:
        self._handle.write(self._dumps(record))
        self._handle.flush()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self._handle.close()


def _open_writer(output: str | None, *, append: bool):
    from rlscale.core.jsonl import RecordWriter

    if append and output not in (None, "-"):
        directory = os.path.dirname(os.path.abspath(output))
        if not os.path.isdir(directory):
            from rlscale.core.errors import RlscaleError

            raise RlscaleError(f"{output}: directory {directory} does not exist")
        return _AppendWriter(output)
    return RecordWriter(output)

