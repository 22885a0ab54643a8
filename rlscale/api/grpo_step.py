"""``rlscale.grpo_step``: one GRPO update of a policy checkpoint from scored rollouts.

The step is the one ``rlscale grpo-step`` takes (see its ``--help``): per-prompt-group advantages
(:func:`rlscale.core.grpo.group_advantages`), the dual-clip PPO loss with a KL term to a frozen
reference, ``mini_batches`` AdamW updates (:class:`rlscale.engines.train.PolicyTrainer`), and the
updated checkpoint published atomically under a lock (:mod:`rlscale.engines.checkpoints`).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import SimpleNamespace
from typing import Any

from rlscale.api._records import located
from rlscale.core.errors import OptionError, OptionsError, RlscaleError

EMITS = ("metrics", "advantages", "verl")
# the fields a scored rollout record gives the step (rollout | reward writes them)
RECORD_REQUIRED = {"prompt_id": "str|number", "reward": "number"}
RECORD_OPTIONAL = {"sample_idx": "int", "prompt_ids": "list", "completion_ids": "list",
                   "old_logprobs": "list", "completion": "str", "finish_reason": "str"}
_LOG = logging.getLogger("rlscale.grpo_step")


def grpo_step(
    records: Iterable[Mapping[str, Any]] | None = None,
    *,
    policy: str | None = None,
    ref: str | None = None,
    out: str | None = None,
    emit: str = "metrics",
    train_batch_size: int = 512,
    group_size: int = 8,
    lora: bool = False,
    lora_rank: int = 32,
    lora_alpha: int = 64,
    lora_dropout: float = 0.0,
    lora_target: str = "all-linear",
    lr: float = 1e-6,
    clip: float = 0.2,
    clip_high: float = 0.2,
    dual_clip: float = 3.0,
    kl_coef: float = 0.001,
    kl: str = "k3",
    loss_agg: str = "token-mean",
    loss_scale: float | None = None,
    entropy_coef: float = 0.0,
    mini_batches: int = 4,
    micro_batch_size: int = 8,
    max_tokens_per_micro_batch: int | None = None,
    max_grad_norm: float = 1.0,
    weight_decay: float = 0.1,
    std: str = "unbiased",
    temperature: float = 1.0,
    shuffle: bool = False,
    chat_template: bool = True,
    device: str = "auto",
    precision: str = "auto",
    gradient_checkpointing: bool = False,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
    progress: Callable[[Iterable], Iterable] | None = None,
) -> dict[str, Any] | Iterator[dict[str, Any]] | None:
    """One GRPO training step of ``policy`` on scored rollouts; the updated checkpoint goes to
    ``out`` (which may be ``policy``) and the step's metrics record is returned.

    Records: ``prompt_id``, ``reward``, token ids ``prompt_ids``/``completion_ids`` (or the
    ``prompt``/``completion`` text, tokenised as ``rollout`` rendered it) and optionally
    ``sample_idx`` and ``old_logprobs``; all of them are read before the model is loaded, and a
    step needs the whole batch (a :class:`~rlscale.io.jsonl.RecordReader` whose input ended
    early is refused). No records: no step, the
    checkpoints are untouched, and None is returned. The options are the command's (``rlscale
    grpo-step --help``); ``ref`` is required when ``kl_coef > 0``; ``dual_clip`` and
    ``max_grad_norm`` are off at 0.

    ``emit="advantages"`` loads no model: it returns an iterator over the records with
    ``advantage`` added (all input is read first; input order is kept). ``emit="verl"`` reads
    no records and returns the equivalent VeRL launch (``rlscale verl launch``) as one record.

    ``log`` gets one-line notes (loading, the step's size, files removed or left out; default:
    the ``rlscale.grpo_step`` logger); ``progress`` wraps the records while they are read. Bad
    options raise :class:`~rlscale.core.errors.OptionError` naming the parameter; a bad record
    raises :class:`~rlscale.core.errors.RecordError` naming its index.

    >>> rows = [{"prompt_id": "a", "reward": r} for r in (1, 0, 0, 0)]
    >>> [round(row["advantage"], 4) for row in grpo_step(rows, emit="advantages")]
    [1.5, -0.5, -0.5, -0.5]
    >>> grpo_step(rows, policy="ckpt", out="ckpt", kl_coef=0, kl="k4")
    Traceback (most recent call last):
    ...
    rlscale.core.errors.OptionError: kl must be one of k1, k2, k3, got 'k4'
    """
    options = {key: value for key, value in locals().items()
               if key not in ("records", "log", "progress")}
    check_options(options)
    o = SimpleNamespace(**options)
    say = log or _LOG.info
    if emit == "verl":
        return _verl(o)
    if emit == "advantages":
        return _advantages(records or (), o.std, say, progress)
    return _train(records or (), o, say, progress)


def check_options(options: Mapping[str, Any]) -> None:
    """Refuse bad :func:`grpo_step` options before anything is read or loaded (OptionError).

    ``options``: every keyword of :func:`grpo_step`, as the command line gives them.
    """
    from rlscale.core.grpo import STD_MODES, check_step_options

    o = SimpleNamespace(**options)
    if o.emit not in EMITS:
        raise OptionError("emit", f"must be one of {', '.join(EMITS)}, got {o.emit!r}")
    if o.std not in STD_MODES:
        raise OptionError("std", f"must be one of {', '.join(STD_MODES)}, got {o.std!r}")
    if o.emit == "verl" and o.policy is None:
        raise OptionsError("{emit} verl needs {policy} (the model VeRL starts from)")
    if o.emit != "metrics":
        return
    if o.policy is None or o.out is None:
        raise OptionsError("{policy} and {out} are required (or use {emit} advantages)")
    if o.kl_coef > 0 and o.ref is None:
        raise OptionsError("{ref} is required when {kl_coef} > 0 (use {kl_coef} 0 to train "
                           "without a reference)")
    if o.ref is not None and os.path.realpath(o.ref) == os.path.realpath(o.out):
        raise OptionsError("{out} must differ from {ref} (the reference is never modified)")
    check_step_options(
        lr=o.lr, clip=o.clip, clip_high=o.clip_high, dual_clip=o.dual_clip, kl_coef=o.kl_coef,
        kl=o.kl, loss_agg=o.loss_agg, loss_scale=o.loss_scale, mini_batches=o.mini_batches,
        micro_batch_size=o.micro_batch_size,
        max_tokens_per_micro_batch=o.max_tokens_per_micro_batch, max_grad_norm=o.max_grad_norm,
        weight_decay=o.weight_decay, temperature=o.temperature)


def _verl(o: SimpleNamespace) -> dict[str, Any]:
    from rlscale.core.meta import run_meta
    from rlscale.integrations.verl_launch import LaunchOptions, launch

    # the same launch as `rlscale verl launch`, whose options add data and trainer settings
    result = launch(LaunchOptions(
        policy=o.policy, lr=o.lr, clip_low=o.clip, clip_high=o.clip_high, dual_clip=o.dual_clip,
        kl_coef=o.kl_coef, kl=o.kl, loss_agg=o.loss_agg, loss_scale=o.loss_scale,
        entropy_coef=o.entropy_coef, mini_batches=o.mini_batches,
        micro_batch_size=o.micro_batch_size,
        max_tokens_per_micro_batch=o.max_tokens_per_micro_batch, max_grad_norm=o.max_grad_norm,
        weight_decay=o.weight_decay, std=o.std, temperature=o.temperature, shuffle=o.shuffle,
        train_batch_size=o.train_batch_size, group_size=o.group_size, lora=o.lora,
        lora_rank=o.lora_rank, lora_alpha=o.lora_alpha, lora_dropout=o.lora_dropout,
        lora_target=o.lora_target, gradient_checkpointing=o.gradient_checkpointing,
        seed=o.seed), data_required=False)
    return {**result, "verl_overrides": result["overrides"], "run_meta": run_meta(o.seed)}


def _advantages(records, std: str, say, progress) -> Iterator[dict[str, Any]]:
    """Pure GRPO math: every record with 'advantage' added (buffers all input; input order)."""
    from rlscale.core.grpo import group_advantages

    rows = [record for record, _ in (progress or iter)(located(records, RECORD_REQUIRED))]
    result = group_advantages([r["reward"] for r in rows], [r["prompt_id"] for r in rows],
                              std_mode=std)
    for record, advantage in zip(rows, result.advantages, strict=True):
        yield {**record, "advantage": float(advantage)}
    say(f"{len(rows)} records, {len(result.group_keys)} groups, "
        f"{result.n_zero_adv_groups} with zero advantage")


def _check_group_count(n_groups: int, mini_batches: int, *, after_skipping: bool = False
                       ) -> None:
    """A step splits whole prompt groups into ``mini_batches`` updates: refuse too few groups
    up front (a usage error), not after the model has loaded."""
    if n_groups < mini_batches:
        valid = " valid" if after_skipping else ""
        raise OptionsError(f"{{mini_batches}} {mini_batches} needs at least {mini_batches} "
                           f"prompt groups; the input has {n_groups}{valid} (lower "
                           "{mini_batches} or give more prompts)")


def _train(records, o: SimpleNamespace, say, progress) -> dict[str, Any] | None:
    from rlscale.engines.checkpoints import CheckpointLock, check_checkpoint_dir, check_output_dir

    started = time.perf_counter()
    check_checkpoint_dir(o.policy, "--policy")
    check_output_dir(o.out)
    if o.ref is not None:
        check_checkpoint_dir(o.ref, "--ref")
    # the lock is held from before anything is read until the new checkpoint is published
    with CheckpointLock(o.out) as lock:
        for path in lock.removed:
            say(f"removed {path} (left by an interrupted save)")
        items = located(records, RECORD_REQUIRED, RECORD_OPTIONAL)
        raw = list((progress or iter)(items))
        if items.from_reader:
            records.require_complete("no step was taken")  # before the model is loaded
        if not raw:  # empty input is valid: no step, checkpoints untouched
            return None
        _check_group_count(len({r["prompt_id"] for r, _ in raw}), o.mini_batches)
        say(f"loading {o.policy}")
        trainer = _trainer(o)
        kept = _tokenised(raw, items, trainer, o)
        metrics = _step(trainer, kept, o, lock, say)
    metrics["wall_s"] = time.perf_counter() - started
    return metrics


def _trainer(o: SimpleNamespace):
    from rlscale.engines.train import LoraSettings, PolicyTrainer, TrainConfig

    targets: Any = o.lora_target
    if o.lora_target != "all-linear":
        targets = [t.strip() for t in o.lora_target.split(",") if t.strip()]
    config = TrainConfig(
        lr=o.lr, clip_low=o.clip, clip_high=o.clip_high, dual_clip=o.dual_clip or None,
        kl_coef=o.kl_coef, kl_estimator=o.kl, loss_agg=o.loss_agg, loss_scale=o.loss_scale,
        entropy_coef=o.entropy_coef, mini_batches=o.mini_batches,
        micro_batch_size=o.micro_batch_size,
        max_tokens_per_micro_batch=o.max_tokens_per_micro_batch,
        max_grad_norm=o.max_grad_norm or None, weight_decay=o.weight_decay,
        temperature=o.temperature, shuffle=o.shuffle, seed=o.seed,
        lora=LoraSettings(rank=o.lora_rank, alpha=o.lora_alpha, dropout=o.lora_dropout,
                          target_modules=targets) if o.lora else None)
    return PolicyTrainer(o.policy, o.ref, config, device=o.device, precision=o.precision,
                         gradient_checkpointing=o.gradient_checkpointing)


def _tokenised(raw, items, trainer, o: SimpleNamespace) -> list[tuple[dict, Any, tuple]]:
    """(record, where, (prompt ids, completion ids, old log-probs)) of every valid record."""
    from rlscale.engines.train import sample_from_record

    kept, seen = [], {}
    for record, where in raw:
        key = (record["prompt_id"], record.get("sample_idx"))
        if key[1] is not None and key in seen:
            items.invalid(where, f"duplicate sample prompt_id={record['prompt_id']!r} "
                          f"sample_idx={key[1]} (first at line {seen[key]})")
            continue
        try:
            ids = sample_from_record(record, trainer.tokenizer, trainer.vocab_size,
                                     chat_template=o.chat_template,
                                     context_length=trainer.context_length)
        except ValueError as exc:
            items.invalid(where, str(exc))
            continue
        seen[key] = where.line
        kept.append((record, where, ids))
    if not kept:
        raise RlscaleError("no valid records on input")
    _check_group_count(len({r["prompt_id"] for r, _, _ in kept}), o.mini_batches,
                       after_skipping=True)
    return kept


def _step(trainer, kept, o: SimpleNamespace, lock, say) -> dict[str, Any]:
    """Advantages, the update and the save of one step; returns the metrics record."""
    import numpy as np

    from rlscale.core.flops import flops_per_token_factor
    from rlscale.core.grpo import group_advantages
    from rlscale.core.meta import run_meta
    from rlscale.engines.train import Sample

    with_old = [k for k in kept if k[2][2] is not None]
    if with_old and len(with_old) != len(kept):
        missing = next(k for k in kept if k[2][2] is None)
        raise RlscaleError(f"{missing[1]}: missing 'old_logprobs' (other records have them; "
                           "give them for all records or for none)")
    rewards = [float(r["reward"]) for r, _, _ in kept]
    adv = group_advantages(rewards, [r["prompt_id"] for r, _, _ in kept], std_mode=o.std)
    samples = [Sample(prompt_ids=p, completion_ids=c, advantage=float(a), group=int(g),
                      old_logprobs=old)
               for (_, _, (p, c, old)), a, g in zip(kept, adv.advantages, adv.group_index,
                                                     strict=True)]
    n_completion = sum(len(s.completion_ids) for s in samples)
    n_tokens = n_completion + sum(len(s.prompt_ids) for s in samples)
    say(f"step {trainer.step + 1}: {len(samples)} samples, {len(adv.group_keys)} groups "
        f"({adv.n_zero_adv_groups} with zero advantage), {o.mini_batches} update(s)")
    metrics = trainer.train_step(samples)
    saved = trainer.save(o.out, expect=lock.identity)
    if saved["dropped"]:
        say(f"note: left out {', '.join(saved['dropped'])} of the old {o.out} (weights, "
            "configs or tokenizer files the new checkpoint replaces)")
    copied = ("step", "loss", "pg_loss", "kl", "clip_frac", "clip_frac_lower", "ppo_kl",
              "grad_norm", "entropy")
    return {
        **{key: metrics[key] for key in copied},
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
        # the update's 6·N·T (core/flops), an integer as the counts are
        "flops_step": flops_per_token_factor() * trainer.n_params * n_tokens,
        "old_logprobs": "records" if with_old else "recomputed",
        "policy": os.path.abspath(o.policy),
        "ref": os.path.abspath(o.ref) if o.ref is not None else None,
        "out": os.path.abspath(o.out),
        "wall_s": None,  # set when the step is done
        "run_meta": run_meta(o.seed, device=str(trainer.device), precision=trainer.precision,
                             lora=bool(o.lora), std=o.std, lr=o.lr, clip=o.clip,
                             clip_high=o.clip_high, dual_clip=o.dual_clip, kl_coef=o.kl_coef,
                             kl=o.kl, loss_agg=o.loss_agg, mini_batches=o.mini_batches,
                             micro_batch_size=o.micro_batch_size,
                             max_grad_norm=o.max_grad_norm, weight_decay=o.weight_decay),
    }
