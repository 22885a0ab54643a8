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
from typing import Annotated

import typer

from rlscale.cli._command import Context, tool
from rlscale.cli._shared import progress

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



@tool(NAME, flags={"n": "-n"}, follow=True)
def command(
    ctx: Context,
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
) -> None:
    options = {k: v for k, v in locals().items() if k not in ("ctx", "resume")}  # the API's
    from rlscale.api.rollout import rollout
    from rlscale.core.errors import UsageError
    from rlscale.io.append import AppendedRecords, AppendWriter

    if resume and ctx.output in (None, "-"):
        raise UsageError("--resume needs -o FILE (the output file to continue)")
    reader = ctx.reader()
    earlier = None
    if resume and os.path.exists(ctx.output):
        earlier = AppendedRecords(ctx.output, dropped=lambda size: ctx.say(
            f"rlscale rollout: {ctx.output}: dropped a partial last line ({size} bytes) left by "
            "an interrupted run"))
    samples = rollout(reader, **options, resume_from=earlier,
                      log=lambda message: ctx.say(f"rlscale rollout: {message}"))
    samples.start()  # options checked and the model loaded before any output file opens
    with samples, (AppendWriter(ctx.output, tool=NAME, source=reader) if resume
                   else ctx.writer(source=reader)) as writer:
        for record in progress(samples, description="sampling", quiet=ctx.quiet):
            writer.write(record)
    seconds = time.perf_counter() - samples.started
    tokens = samples.n_completion_tokens
    done = f", {samples.plan.complete} already complete" if resume else ""
    ctx.say(f"rlscale rollout: {samples.plan.planned} problems, {samples.n_samples} samples, "
            f"{tokens} completion tokens in {seconds:.1f} s ({tokens / max(seconds, 1e-9):.0f} "
            f"tokens/s, {samples.backend}){done}")
