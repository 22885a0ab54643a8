"""`rlscale grpo-step`: one GRPO update of a policy checkpoint from scored rollouts."""

from __future__ import annotations

import os
import time
from typing import Annotated, Any

import typer

from rlscale.cli._shared import (
    DebugOpt,
    InputFormatOpt,
    InputsArg,
    OutputOpt,
    QuietOpt,
    RejectsOpt,
    SeedOpt,
    SkipInvalidOpt,
    WideOpt,
    check_choice,
    check_input_format,
    handle_errors,
    open_rejects,
    progress,
    report_skipped,
    run_meta,
    say,
    warn_if_waiting_on_tty,
)
from rlscale.core.errors import RlscaleError, UsageError

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



def command(
    inputs: InputsArg = None,
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
    output: OutputOpt = None,
    input_format: InputFormatOpt = None,
    wide: WideOpt = None,
    skip_invalid: SkipInvalidOpt = False,
    rejects: RejectsOpt = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    def body() -> None:
        from rlscale.core.grpo import STD_MODES

        check_choice(emit, ("metrics", "advantages", "verl"), "--emit")
        check_choice(std, STD_MODES, "--std")
        check_input_format(input_format)
        if emit == "verl":
            _emit_verl()
            return
        warn_if_waiting_on_tty(inputs, quiet)
        if emit == "advantages":
            _emit_advantages(inputs, std, output, skip_invalid, rejects, quiet,
                             input_format, wide)
            return
        if policy is None or out is None:
            raise UsageError("--policy and --out are required (or use --emit advantages)")
        if kl_coef > 0 and ref is None:
            raise UsageError("--ref is required when --kl-coef > 0 (use --kl-coef 0 to train "
                             "without a reference)")
        if ref is not None and os.path.realpath(ref) == os.path.realpath(out):
            raise UsageError("--out must differ from --ref (the reference is never modified)")
        config = _train_config()
        _train(config)

    def _emit_verl() -> None:
        from rlscale.io.jsonl import RecordWriter
        from rlscale.integrations.verl_launch import LaunchOptions, launch

        if policy is None:
            raise UsageError("--emit verl needs --policy (the model VeRL starts from)")
        # the same launch as `rlscale verl launch`, whose options add data and trainer settings
        result = launch(LaunchOptions(
            policy=policy, lr=lr, clip_low=clip, clip_high=clip_high, dual_clip=dual_clip,
            kl_coef=kl_coef, kl=kl, loss_agg=loss_agg, loss_scale=loss_scale,
            entropy_coef=entropy_coef, mini_batches=mini_batches,
            micro_batch_size=micro_batch_size,
            max_tokens_per_micro_batch=max_tokens_per_micro_batch, max_grad_norm=max_grad_norm,
            weight_decay=weight_decay, std=std, temperature=temperature, shuffle=shuffle,
            train_batch_size=train_batch_size, group_size=group_size, lora=lora,
            lora_rank=lora_rank, lora_alpha=lora_alpha, lora_dropout=lora_dropout,
            lora_target=lora_target, gradient_checkpointing=gradient_checkpointing,
            seed=seed), data_required=False)
        with RecordWriter(output) as writer:
            writer.write({**result, "verl_overrides": result["overrides"],
                          "run_meta": run_meta(seed)})
        for caveat in result["caveats"]:
            say(f"rlscale grpo-step: note: {caveat}", quiet)

    def _train_config():
        from rlscale.engines.train import LoraSettings, TrainConfig

        targets: Any = lora_target
        if lora_target != "all-linear":
            targets = [t.strip() for t in lora_target.split(",") if t.strip()]
        try:
            return TrainConfig(
                lr=lr, clip_low=clip, clip_high=clip_high,
                dual_clip=dual_clip if dual_clip else None, kl_coef=kl_coef, kl_estimator=kl,
                loss_agg=loss_agg, loss_scale=loss_scale, entropy_coef=entropy_coef,
                mini_batches=mini_batches, micro_batch_size=micro_batch_size,
                max_tokens_per_micro_batch=max_tokens_per_micro_batch,
                max_grad_norm=max_grad_norm if max_grad_norm else None,
                weight_decay=weight_decay, temperature=temperature, shuffle=shuffle, seed=seed,
                lora=LoraSettings(rank=lora_rank, alpha=lora_alpha, dropout=lora_dropout,
                                  target_modules=targets) if lora else None,
            )
        except ValueError as exc:
            raise UsageError(str(exc)) from None

    def _train(config) -> None:
        from rlscale.io.jsonl import RecordReader, RecordWriter
        from rlscale.engines.train import (
            RECORD_OPTIONAL,
            CheckpointLock,
            check_checkpoint_dir,
            check_output_dir,
        )

        started = time.perf_counter()
        check_checkpoint_dir(policy, "--policy")
        check_output_dir(out)
        from rlscale.io.jsonl import refuse_overlap

        refuse_overlap({"-o": output, "--rejects": rejects}, inputs)
        if ref is not None:
            check_checkpoint_dir(ref, "--ref")
        # -o is opened and the checkpoint locked before anything is read or loaded: path and
        # overlap errors come first, and the lock is held until the new checkpoint is published
        try:
            with RecordWriter(output, tool=NAME, inputs=inputs) as writer, \
                    CheckpointLock(out) as lock, \
                    open_rejects(rejects, skip_invalid) as rejects_file:
                for path in lock.removed:
                    say(f"rlscale grpo-step: removed {path} (left by an interrupted save)", quiet)
                reader = RecordReader(inputs, required={"prompt_id": "str|number",
                                                        "reward": "number"},
                                      optional=RECORD_OPTIONAL, skip_invalid=skip_invalid,
                                      rejects=rejects_file, input_format=input_format,
                                      wide=wide)
                raw = list(progress(reader, description="reading", quiet=quiet))
                reader.require_complete("no step was taken")  # before the model is loaded
                writer.follow(reader)
                if not raw:
                    raise _NoStep  # leaves the writer unpublished: no output file
                record = _read_and_step(raw, reader, lock, config)
                record["wall_s"] = time.perf_counter() - started
                writer.write(record)
        except _NoStep:  # empty input is valid: no step, no output, checkpoints untouched
            report_skipped(NAME, reader.n_skipped, rejects, quiet)
            say("rlscale grpo-step: no records on input: no step taken", quiet)
            return
        report_skipped(NAME, reader.n_skipped, rejects, quiet)
        say(f"rlscale grpo-step: step {record['step']}: loss {record['loss']:.5g}, reward "
            f"{record['reward_mean']:.4g}, {record['wall_s']:.1f} s -> {out}", quiet)

    def _read_and_step(raw, reader, lock, config) -> dict[str, Any]:
        """Tokenise the records with the loaded policy, then take the step."""
        from rlscale.engines.train import PolicyTrainer, check_group_count, sample_from_record

        check_group_count(len({r["prompt_id"] for r, _ in raw}), mini_batches)
        say(f"rlscale grpo-step: loading {policy}", quiet)
        try:
            trainer = PolicyTrainer(policy, ref, config, device=device, precision=precision,
                                    gradient_checkpointing=gradient_checkpointing)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        kept, seen = [], {}
        for record, where in raw:
            key = (record["prompt_id"], record.get("sample_idx"))
            if key[1] is not None and key in seen:
                reader.invalid(where, f"duplicate sample prompt_id={record['prompt_id']!r} "
                               f"sample_idx={key[1]} (first at line {seen[key]})")
                continue
            try:
                ids = sample_from_record(record, trainer.tokenizer, trainer.vocab_size,
                                         chat_template=chat_template,
                                         context_length=trainer.context_length)
            except ValueError as exc:
                reader.invalid(where, str(exc))
                continue
            seen[key] = where.line
            kept.append((record, where, ids))
        if not kept:
            raise RlscaleError("no valid records on input")
        check_group_count(len({r["prompt_id"] for r, _, _ in kept}), mini_batches,
                          after_skipping=True)
        return _step(trainer, kept, config, lock)

    def _step(trainer, kept, config, lock) -> dict[str, Any]:
        """Advantages, the update and the save of one step; returns the metrics record."""
        import numpy as np

        from rlscale.core.grpo import group_advantages
        from rlscale.engines.train import Sample

        with_old = [k for k in kept if k[2][2] is not None]
        if with_old and len(with_old) != len(kept):
            missing = next(k for k in kept if k[2][2] is None)
            raise RlscaleError(f"{missing[1]}: missing 'old_logprobs' (other records have them; "
                               "give them for all records or for none)")
        rewards = [float(r["reward"]) for r, _, _ in kept]
        adv = group_advantages(rewards, [r["prompt_id"] for r, _, _ in kept], std_mode=std)
        samples = [Sample(prompt_ids=p, completion_ids=c, advantage=float(a), group=int(g),
                          old_logprobs=o)
                   for (_, _, (p, c, o)), a, g in zip(kept, adv.advantages, adv.group_index,
                                                       strict=True)]
        n_completion = sum(len(s.completion_ids) for s in samples)
        n_tokens = n_completion + sum(len(s.prompt_ids) for s in samples)
        say(f"rlscale grpo-step: step {trainer.step + 1}: {len(samples)} samples, "
            f"{len(adv.group_keys)} groups ({adv.n_zero_adv_groups} with zero advantage), "
            f"{config.mini_batches} update(s)", quiet)
        metrics = trainer.train_step(samples)
        saved = trainer.save(out, expect=lock.identity)
        if saved["dropped"]:
            say(f"rlscale grpo-step: note: left out {', '.join(saved['dropped'])} of the old "
                f"{out} (weights, configs or tokenizer files the new checkpoint replaces)", quiet)
        record = {
            "step": metrics["step"],
            "loss": metrics["loss"],
            "pg_loss": metrics["pg_loss"],
            "kl": metrics["kl"],
            "clip_frac": metrics["clip_frac"],
            "clip_frac_lower": metrics["clip_frac_lower"],
            "ppo_kl": metrics["ppo_kl"],
            "grad_norm": metrics["grad_norm"],
            "entropy": metrics["entropy"],
            "reward_mean": float(np.mean(rewards)),
            "reward_std": float(np.std(rewards)),
            "advantage_abs_mean": float(np.mean(np.abs(adv.advantages))),
            "n_samples": len(samples),
            "n_groups": len(adv.group_keys),
            "n_zero_adv_groups": adv.n_zero_adv_groups,
            "n_updates": metrics["n_updates"],
            "n_skipped_updates": metrics["n_skipped_updates"],
            "n_tokens": n_tokens,
            "n_completion_tokens": n_completion,
            "n_params": trainer.n_params,
            "flops_step": 6 * trainer.n_params * n_tokens,
            "old_logprobs": "records" if with_old else "recomputed",
            "policy": os.path.abspath(policy),
            "ref": os.path.abspath(ref) if ref is not None else None,
            "out": os.path.abspath(out),
            "wall_s": None,
            "run_meta": run_meta(seed, device=str(trainer.device), precision=trainer.precision,
                                 lora=bool(lora), std=std, lr=lr, clip=clip, clip_high=clip_high,
                                 dual_clip=dual_clip, kl_coef=kl_coef, kl=kl, loss_agg=loss_agg,
                                 mini_batches=mini_batches, micro_batch_size=micro_batch_size,
                                 max_grad_norm=max_grad_norm, weight_decay=weight_decay),
        }
        return record

    handle_errors(NAME, debug, body, quiet=quiet)


class _NoStep(Exception):
    """Raised inside the step's ``with`` block on empty input: nothing is published."""


def _emit_advantages(inputs, std: str, output, skip_invalid: bool, rejects, quiet: bool,
                     input_format: str | None = None, wide: str | None = None) -> None:
    """Pure GRPO math: add 'advantage' to every record (buffers all input; keeps input order)."""
    from rlscale.core.grpo import group_advantages
    from rlscale.io.jsonl import RecordReader, RecordWriter

    with open_rejects(rejects, skip_invalid) as rejects_file:
        reader = RecordReader(inputs, required={"prompt_id": "str|number", "reward": "number"},
                              skip_invalid=skip_invalid, rejects=rejects_file,
                              input_format=input_format, wide=wide)
        records = [record for record, _ in progress(reader, description="reading", quiet=quiet)]
    result = group_advantages([r["reward"] for r in records], [r["prompt_id"] for r in records],
                              std_mode=std)
    with RecordWriter(output) as writer:
        for record, advantage in zip(records, result.advantages, strict=True):
            writer.write({**record, "advantage": float(advantage)})
    report_skipped(NAME, reader.n_skipped, rejects, quiet)
    say(f"rlscale grpo-step: {len(records)} records, {len(result.group_keys)} groups, "
        f"{result.n_zero_adv_groups} with zero advantage", quiet)
