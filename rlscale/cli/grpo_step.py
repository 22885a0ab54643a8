"""`rlscale grpo-step`: one GRPO update of a policy checkpoint from scored rollouts."""

from __future__ import annotations

import functools
from typing import Annotated

import typer

from rlscale.cli._command import Context, tool
from rlscale.cli._shared import SeedOpt, progress

NAME = "grpo-step"
HELP = (
    "One GRPO training step of a policy checkpoint from scored rollouts (records with "
    "prompt_id, sample_idx, prompt_ids, completion_ids, reward; optional old_logprobs), as the "
    "paper's VeRL runs computed it: per-prompt-group advantages (r - mean)/(std + 1e-6), "
    "dual-clip PPO loss with k1/k2/k3 KL to a frozen reference, --mini-batches AdamW updates "
    "with gradient accumulation over micro-batches. Writes the updated checkpoint (with "
    "optimizer state and step counter, atomically; --out may equal --policy; other files in "
    "--out are kept; a second step on the same --out while one runs fails) and prints one "
    "metrics record. With --emit advantages: no model, prints every input record with "
    "'advantage' added. Needs all input (groups may be interleaved). Single device; for "
    "multi-GPU runs, --emit verl prints the equivalent VeRL settings."
)
EPILOG = (
    "Examples:\n\n"
    "  rlscale rollout --model ckpt train.jsonl | rlscale reward | rlscale grpo-step --policy "
    "ckpt --ref base --out ckpt >> metrics.jsonl\n\n"
    "  rlscale grpo-step scored.jsonl --policy base --ref base --out step1 --lora "
    "--lr 1e-5 --micro-batch-size 4\n\n"
    "  rlscale grpo-step --emit advantages --std none scored.jsonl > with_adv.jsonl\n\n"
    "  rlscale grpo-step --emit verl --policy Qwen2.5-7B-Instruct --train-batch-size 512"
)


def _check(follow: bool = False, **options) -> None:  # usage errors before any file is opened
    from rlscale.api.grpo_step import check_options
    from rlscale.core.errors import UsageError
    if follow and options["emit"] != "metrics":
        raise UsageError(f"--follow trains on each batch (--emit metrics), not --emit "
                         f"{options['emit']}")
    check_options(options)


@tool(NAME, check=_check, follow=True)
def command(
    ctx: Context,
    policy: Annotated[str | None, typer.Option(
        "--policy", help="Policy checkpoint directory (transformers model or LoRA adapter from "
        "an earlier --lora step).", metavar="DIR")] = None,
    ref: Annotated[str | None, typer.Option(
        "--ref", help="Frozen reference model for the KL term (never modified). Needed when "
        "--kl-coef > 0.", metavar="DIR")] = None,
    out: Annotated[str | None, typer.Option(
        "--out", help="Where to write the updated checkpoint (may equal --policy).",
        metavar="DIR")] = None,
    emit: Annotated[str, typer.Option(
        "--emit", help="metrics: train and print one metrics record; advantages: no model, "
        "print the records with 'advantage' added; verl: no input, print the VeRL main_ppo "
        "overrides for these settings (multi-GPU hand-off).")] = "metrics",
    train_batch_size: Annotated[int, typer.Option(
        "--train-batch-size", help="With --emit verl: prompts per step.")] = 512,
    group_size: Annotated[int, typer.Option(
        "--group-size", help="With --emit verl: samples per prompt (rollout -n).")] = 8,
    lora: Annotated[bool, typer.Option("--lora", help="Train a LoRA adapter (peft) instead of "
                                       "all weights.")] = False,
    lora_rank: Annotated[int, typer.Option("--lora-rank", help="LoRA rank r.")] = 32,
    lora_alpha: Annotated[int, typer.Option("--lora-alpha", help="LoRA alpha.")] = 64,
    lora_dropout: Annotated[float, typer.Option("--lora-dropout", help="LoRA dropout.")] = 0.0,
    lora_target: Annotated[str, typer.Option(
        "--lora-target", help="peft target_modules: 'all-linear' or comma-separated names.")
    ] = "all-linear",
    lr: Annotated[float, typer.Option("--lr", help="AdamW learning rate (constant).")] = 1e-6,
    clip: Annotated[float, typer.Option("--clip", help="PPO clip epsilon, low side.")] = 0.2,
    clip_high: Annotated[float, typer.Option("--clip-high", help="PPO clip epsilon, high side "
                                             "(DAPO clip-higher).")] = 0.2,
    dual_clip: Annotated[float, typer.Option(
        "--dual-clip", help="Dual-clip constant c for negative advantages (0: off).")] = 3.0,
    kl_coef: Annotated[float, typer.Option("--kl-coef", help="KL loss coefficient beta.")] = 0.001,
    kl: Annotated[str, typer.Option("--kl", help="KL estimator: k1, k2 or k3 (low-var, "
                                    "clamped to [-10, 10]).")] = "k3",
    loss_agg: Annotated[str, typer.Option(
        "--loss-agg", help="token-mean, seq-mean-token-mean, seq-mean-token-sum or "
        "seq-mean-token-sum-norm.")] = "token-mean",
    loss_scale: Annotated[float | None, typer.Option(
        "--loss-scale", help="Normaliser of seq-mean-token-sum-norm (default: longest "
        "completion of the step; VeRL uses the rollout's max response length).")] = None,
    entropy_coef: Annotated[float, typer.Option("--entropy-coef",
                                                help="Entropy bonus coefficient.")] = 0.0,
    mini_batches: Annotated[int, typer.Option(
        "--mini-batches", help="Optimizer updates per step (prompt groups split evenly).")] = 4,
    micro_batch_size: Annotated[int, typer.Option(
        "--micro-batch-size", help="Sequences per forward/backward (gradient accumulation).")
    ] = 8,
    max_tokens_per_micro_batch: Annotated[int | None, typer.Option(
        "--max-tokens-per-micro-batch", help="Also cap padded tokens per forward/backward "
        "(bounds memory when completion lengths vary; VeRL's dynamic batch size).")] = None,
    max_grad_norm: Annotated[float, typer.Option(
        "--max-grad-norm", help="Clip the gradient norm (0: no clipping).")] = 1.0,
    weight_decay: Annotated[float, typer.Option("--weight-decay", help="AdamW weight decay.")
                            ] = 0.1,
    std: Annotated[str, typer.Option(
        "--std", help="Advantage std: unbiased (VeRL), biased, or none (Dr. GRPO).")
    ] = "unbiased",
    temperature: Annotated[float, typer.Option(
        "--temperature", help="Sampling temperature of the rollouts (logits are divided by "
        "it, as VeRL and TRL do).")] = 1.0,
    shuffle: Annotated[bool, typer.Option(
        "--shuffle", help="Shuffle prompt groups before splitting mini-batches (seeded by "
        "--seed and the step).")] = False,
    chat_template: Annotated[bool, typer.Option(
        "--chat-template/--no-chat-template",
        help="When records lack prompt_ids: render string prompts with the chat template.")
    ] = True,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:N.")] = "auto",
    precision: Annotated[str, typer.Option(
        "--precision", help="auto (bf16 on GPU, fp32 on CPU), fp32 or bf16 autocast.")
    ] = "auto",
    gradient_checkpointing: Annotated[bool, typer.Option(
        "--gradient-checkpointing", help="Recompute activations in backward to save memory.")
    ] = False,
    seed: SeedOpt = 0,
) -> None:
    options = {key: value for key, value in locals().items() if key != "ctx"}
    from rlscale.api.grpo_step import grpo_step
    from rlscale.io.jsonl import RecordWriter
    if emit == "verl":
        record = grpo_step(**options)
        with RecordWriter(ctx.output) as writer:
            writer.write(record)
        for caveat in record["caveats"]:
            ctx.say(f"rlscale {NAME}: note: {caveat}")
        return
    reader = ctx.reader()
    step = functools.partial(grpo_step, reader, **options, log=lambda note: ctx.say(
        f"rlscale {NAME}: {note}"), progress=lambda rows: progress(
            rows, description="reading", quiet=ctx.quiet))
    if emit == "advantages":  # the skipped count comes before the summary, as it did
        rows = step(log=lambda note: (ctx.report_skipped(), ctx.say(f"rlscale {NAME}: {note}")))
        with RecordWriter(ctx.output) as writer:  # the rows come once all input is read
            writer.write_all(rows)
        return
    with ctx.writer(source=reader) as writer:  # before the lock and reading: path errors first
        metrics = step()
        if metrics is None:
            writer.close(ok=False)  # no step: no output file
        else:
            writer.write(metrics)
    ctx.report_skipped()
    ctx.say(f"rlscale {NAME}: no records on input: no step taken" if metrics is None else
            f"rlscale {NAME}: step {metrics['step']}: loss {metrics['loss']:.5g}, reward "
            f"{metrics['reward_mean']:.4g}, {metrics['wall_s']:.1f} s -> {out}")
