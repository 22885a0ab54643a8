"""Single-device GRPO training engine behind ``rlscale grpo-step`` (transformers + torch + peft).

One call of :meth:`PolicyTrainer.train_step` is one GRPO training step as the paper's VeRL runs
did it (docs §1.3): reference and "old" log-probs are computed with frozen / current weights
before any update, the prompt groups are split into ``mini_batches`` consecutive mini-batches,
and each mini-batch is one AdamW update with gradient-norm clipping. Inside a mini-batch the
sequences are packed into micro-batches (sorted by length to cut padding) whose losses are
normalised by mini-batch-wide token/sequence counts, so accumulated gradients equal the
full-mini-batch gradient and memory is bounded by the micro-batch size.

Checkpoints (layout, atomic publication, the lock, carried files) are
:mod:`rlscale.engines.checkpoints`; this module writes their weights, optimizer state
(safetensors, never pickle) and trainer state, and loads them back.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from rlscale.core import grpo
from rlscale.core.errors import OptionError, RlscaleError
from rlscale.core.prompts import check_prompt, has_chat_template, render_prompt_ids
from rlscale.engines import grpo_kernel
from rlscale.engines.checkpoints import (
    ADAPTER_CONFIG,
    MASTER_WEIGHTS_FILE,
    OPTIMIZER_FILE,
    STATE_FORMAT,
    TRAINER_STATE_FILE,
    UNCHECKED,
    is_adapter_dir,
    read_trainer_state,
    save_atomically,
)

# --- configuration and inputs --------------------------------------------------------------


@dataclass(frozen=True)
class LoraSettings:
    """LoRA adapter shape (peft ``LoraConfig``)."""

    rank: int = 32
    alpha: int = 64
    dropout: float = 0.0
    target_modules: str = "all-linear"


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one GRPO step; defaults are the paper's (docs §2.1)."""

    lr: float = 1e-6
    clip_low: float = 0.2
    clip_high: float = 0.2
    dual_clip: float | None = 3.0
    kl_coef: float = 0.001
    kl_estimator: str = "k3"
    loss_agg: str = "token-mean"
    loss_scale: float | None = None  # seq-mean-token-sum-norm normaliser; None: longest completion
    entropy_coef: float = 0.0
    mini_batches: int = 4
    micro_batch_size: int = 8
    max_tokens_per_micro_batch: int | None = None  # padded tokens per forward (VeRL dynamic bsz)
    max_grad_norm: float | None = 1.0
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-8
    temperature: float = 1.0
    shuffle: bool = False
    seed: int = 0
    lora: LoraSettings | None = None

    def __post_init__(self) -> None:
        """Refuse bad values with :class:`~rlscale.core.errors.OptionError`, which names the
        option of ``rlscale grpo-step`` / :func:`rlscale.grpo_step` (``clip`` for
        ``clip_low``, ``kl`` for ``kl_estimator``)."""
        grpo.check_step_options(
            lr=self.lr, clip=self.clip_low, clip_high=self.clip_high, dual_clip=self.dual_clip,
            kl_coef=self.kl_coef, kl=self.kl_estimator, loss_agg=self.loss_agg,
            loss_scale=self.loss_scale, mini_batches=self.mini_batches,
            micro_batch_size=self.micro_batch_size,
            max_tokens_per_micro_batch=self.max_tokens_per_micro_batch,
            max_grad_norm=self.max_grad_norm, weight_decay=self.weight_decay,
            temperature=self.temperature)


@dataclass
class Sample:
    """One scored completion, tokenised.

    Attributes:
        prompt_ids / completion_ids: token ids (the completion is what the loss covers).
        advantage: the GRPO advantage of the whole completion.
        group: index of its prompt group (mini-batches split whole groups).
        old_logprobs: log π_old per completion token when the rollout recorded them.
    """

    prompt_ids: list[int]
    completion_ids: list[int]
    advantage: float
    group: int
    old_logprobs: list[float] | None = None


@dataclass
class _Prepared:
    """Per-sample tensors computed before the updates (CPU, float32)."""

    old_logp: list[torch.Tensor] = field(default_factory=list)
    ref_logp: list[torch.Tensor | None] = field(default_factory=list)


# --- checkpoint inspection -----------------------------------------------------------------


def _loading(path: str, what: str, load: Callable[[], Any]) -> Any:
    """Run a loader; any failure becomes one line naming the file (the cause stays for --debug).

    transformers, torch and safetensors raise many types (OSError, ValueError, SafetensorError,
    UnpicklingError, ...); a user needs the path and the first line, not 60 lines of stack."""
    import pickle
    import re

    try:
        return load()
    except RlscaleError:
        raise
    except pickle.UnpicklingError as exc:
        raise RlscaleError(f"{path}: cannot load the {what}: pickled weights hold objects other "
                           "than tensors (refused by torch.load(weights_only=True); convert "
                           "trusted weights to safetensors)") from exc
    except Exception as exc:  # noqa: BLE001 - see the docstring
        first = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip().splitlines()
        detail = first[0] if first else type(exc).__name__
        raise RlscaleError(f"{path}: cannot load the {what}: {detail}") from exc


def _checkpoint_dtype(path: str) -> torch.dtype:
    try:
        with open(os.path.join(path, "config.json"), encoding="utf-8") as handle:
            config = json.load(handle)
    except (OSError, ValueError):
        return torch.float32
    name = config.get("dtype") or config.get("torch_dtype") or "float32"
    return getattr(torch, str(name), torch.float32) if isinstance(name, str) else torch.float32


def count_parameters(model: torch.nn.Module) -> int:
    """All distinct parameters (tied embeddings counted once), the N of FLOPs = 6·N·T."""
    return sum(p.numel() for p in model.parameters())


_LOGIT_TRANSFORMS = ("final_logit_softcapping", "logit_scale", "logits_scaling",
                     "output_multiplier", "lm_head_multiplier")


def _plain_lm_head(causal_lm) -> bool:
    """True when logits are exactly ``lm_head(hidden)`` (Qwen2, Llama, Mistral, ...)."""
    config = getattr(causal_lm, "config", None)
    head = causal_lm.get_output_embeddings() if hasattr(causal_lm, "get_output_embeddings") \
        else None
    if config is None or not isinstance(head, torch.nn.Linear):
        return False
    if not hasattr(causal_lm, getattr(causal_lm, "base_model_prefix", "") or "-"):
        return False
    return all(getattr(config, name, None) in (None, 1, 1.0) for name in _LOGIT_TRANSFORMS)


# --- batching -----------------------------------------------------------------------------


def collate(samples: Sequence[Sample], pad_id: int, device: torch.device) -> dict[str, torch.Tensor]:
    """Pack samples as ``[left-padded prompt | right-padded completion]`` rows.

    Returns tensors: ``input_ids``/``attention_mask``/``position_ids`` ``(B, P + C)``,
    ``completion_ids``/``completion_mask`` ``(B, C)`` with ``P``/``C`` the longest prompt and
    completion. Completions end at the same column for every row, so the logits of the last
    ``C + 1`` positions cover every completion token (``logits_to_keep``). Position ids count
    only real tokens, so a sequence's log-probs do not depend on its batch neighbours.
    """
    n_prompt = max(len(s.prompt_ids) for s in samples)
    n_completion = max(max(len(s.completion_ids) for s in samples), 1)
    width = n_prompt + n_completion
    input_ids = np.full((len(samples), width), pad_id, dtype=np.int64)
    attention_mask = np.zeros((len(samples), width), dtype=np.int64)
    for row, s in enumerate(samples):
        start, stop = n_prompt - len(s.prompt_ids), n_prompt + len(s.completion_ids)
        input_ids[row, start:n_prompt] = s.prompt_ids
        input_ids[row, n_prompt:stop] = s.completion_ids
        attention_mask[row, start:stop] = 1
    position_ids = np.maximum(attention_mask.cumsum(-1) - 1, 0)
    completion_mask = attention_mask[:, n_prompt:].astype(np.float32)
    tensors = {"input_ids": input_ids, "attention_mask": attention_mask,
               "position_ids": position_ids, "completion_ids": input_ids[:, n_prompt:],
               "completion_mask": completion_mask}
    return {name: torch.from_numpy(np.ascontiguousarray(value)).to(device)
            for name, value in tensors.items()}


def micro_batches(indices: Sequence[int], samples: Sequence[Sample], size: int,
                  max_tokens: int | None = None) -> list[list[int]]:
    """Chunk sample indices into micro-batches, longest sequences first.

    A micro-batch holds at most ``size`` sequences and, with ``max_tokens``, at most that many
    padded tokens (rows × longest row), so memory stays bounded when lengths vary (VeRL's
    ``use_dynamic_bsz``); a single sequence longer than ``max_tokens`` gets a micro-batch of
    its own. Sorting by length cuts padding; the loss is order-independent because every
    micro-batch is normalised by mini-batch-wide counts.

    >>> s = [Sample([1], [2] * n, 0.0, 0) for n in (3, 9, 5, 1)]
    >>> micro_batches(range(4), s, 8, max_tokens=12)
    [[1], [2, 0], [3]]
    """
    def length(i: int) -> int:
        return len(samples[i].prompt_ids) + len(samples[i].completion_ids)

    ordered = sorted(indices, key=lambda i: -length(i))
    chunks: list[list[int]] = []
    current: list[int] = []
    for i in ordered:
        # rows are sorted longest first, so the current chunk's padded width is its first row
        width = length(current[0]) if current else length(i)
        too_many = len(current) >= size
        too_long = max_tokens is not None and (len(current) + 1) * width > max_tokens
        if current and (too_many or too_long):
            chunks.append(current)
            current = []
        current.append(i)
    if current:
        chunks.append(current)
    return chunks


# --- the trainer ---------------------------------------------------------------------------


class PolicyTrainer:
    """Load a policy (and reference), run GRPO steps, save an atomic checkpoint.

    Args:
        policy_dir: transformers checkpoint, or a PEFT adapter directory written by a
            previous LoRA step.
        ref_dir: frozen reference model for the KL term (None: no KL).
        config: hyper-parameters.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``... or ``"auto"``.
        precision: ``"fp32"`` or ``"bf16"`` (autocast forward; weights and optimizer stay fp32).
        gradient_checkpointing: trade compute for activation memory.
    """

    def __init__(self, policy_dir: str, ref_dir: str | None, config: TrainConfig, *,
                 device: str = "auto", precision: str = "auto",
                 gradient_checkpointing: bool = False):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from rlscale.engines.hf_rollout import quiet_transformers

        quiet_transformers()  # stderr belongs to rlscale's own messages, as in rollout
        self.config = config
        self.device = torch.device(("cuda" if torch.cuda.is_available() else "cpu")
                                   if device == "auto" else device)
        if precision == "auto":
            precision = "bf16" if self.device.type == "cuda" else "fp32"
        if precision not in ("fp32", "bf16"):
            raise OptionError("precision", f"must be fp32, bf16 or auto, got {precision!r}")
        self.precision = precision
        self.policy_dir = os.path.abspath(policy_dir)
        self.state = read_trainer_state(self.policy_dir)
        adapter = is_adapter_dir(self.policy_dir)
        if adapter and config.lora is None:
            raise RlscaleError(f"--policy {policy_dir} is a LoRA adapter; add --lora to train it")
        if not adapter and config.lora is not None and self.state.get("step", 0) > 0:
            raise RlscaleError(f"--policy {policy_dir} was trained without --lora; drop --lora")
        self.base_dir = self._adapter_base(self.policy_dir) if adapter else self.policy_dir
        self.save_dtype = _checkpoint_dtype(self.base_dir)
        tokenizer_dir = self.policy_dir if os.path.isfile(
            os.path.join(self.policy_dir, "tokenizer_config.json")) else self.base_dir
        self.tokenizer_dir = tokenizer_dir
        self.tokenizer = _loading(tokenizer_dir, "tokenizer",
                                  lambda: AutoTokenizer.from_pretrained(tokenizer_dir))
        self.pad_id = self._pad_id()
        model = _loading(self.base_dir, "model", lambda: AutoModelForCausalLM.from_pretrained(
            self.base_dir, dtype=torch.float32))
        self.context_length = getattr(model.config, "max_position_embeddings", None)
        master = os.path.join(self.policy_dir, MASTER_WEIGHTS_FILE)
        if not adapter and os.path.isfile(master):
            from safetensors.torch import load_file

            master_state = _loading(master, "float32 master weights", lambda: load_file(master))
            missing, unexpected = model.load_state_dict(master_state, strict=False)
            if unexpected or [k for k in missing if "lm_head" not in k]:
                raise RlscaleError(f"{master}: does not match the model's parameters")
        self.n_params = count_parameters(model)
        if gradient_checkpointing:
            model.gradient_checkpointing_enable()
            model.config.use_cache = False
        if config.lora is not None:
            from peft import LoraConfig, PeftModel, get_peft_model

            torch.manual_seed(config.seed)  # LoRA's random A-matrix init follows --seed
            if adapter:
                model = _loading(self.policy_dir, "LoRA adapter", lambda: PeftModel.from_pretrained(
                    model, self.policy_dir, is_trainable=True))
            else:
                lora = config.lora
                model = get_peft_model(model, LoraConfig(
                    r=lora.rank, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                    target_modules=lora.target_modules, task_type="CAUSAL_LM"))
            if gradient_checkpointing:
                model.enable_input_require_grads()
        self.model = model.to(self.device)
        self.trainable = [(name, p) for name, p in self.model.named_parameters()
                          if p.requires_grad]
        if not self.trainable:
            raise RlscaleError("the policy has no trainable parameters")
        self.optimizer = torch.optim.AdamW(
            [p for _, p in self.trainable], lr=config.lr, betas=config.betas,
            eps=config.adam_eps, weight_decay=config.weight_decay)
        self._load_optimizer_state()

        self.ref_model = None
        self.ref_is_base = False
        if ref_dir is not None:
            ref_abs = os.path.abspath(ref_dir)
            if config.lora is not None and os.path.realpath(ref_abs) == os.path.realpath(
                    self.base_dir):
                # the frozen base under the adapter *is* the reference: no second copy
                self.ref_is_base = True
            else:
                ref = _loading(ref_abs, "reference model", lambda: AutoModelForCausalLM
                               .from_pretrained(ref_abs, dtype=torch.float32))
                ref.requires_grad_(False)
                self.ref_model = ref.to(self.device).eval()
        self.fused_head = True  # chunked LM head; False: the model's own logits (tests compare)
        self._has_dropout = any(isinstance(m, torch.nn.Dropout) and m.p > 0
                                for m in self.model.modules())

    # -- loading helpers --

    @staticmethod
    def _adapter_base(path: str) -> str:
        with open(os.path.join(path, ADAPTER_CONFIG), encoding="utf-8") as handle:
            base = json.load(handle).get("base_model_name_or_path")
        if not base or not os.path.isdir(base):
            raise RlscaleError(f"{path}/{ADAPTER_CONFIG}: base model {base!r} is not a local "
                               "directory")
        return base

    def _pad_id(self) -> int:
        for candidate in (self.tokenizer.pad_token_id, self.tokenizer.eos_token_id, 0):
            if candidate is not None:
                return int(candidate)
        return 0

    @property
    def step(self) -> int:
        return int(self.state.get("step", 0))

    @property
    def vocab_size(self) -> int:
        return int(self.model.get_input_embeddings().weight.shape[0])

    def _load_optimizer_state(self) -> None:
        path = os.path.join(self.policy_dir, OPTIMIZER_FILE)
        if not os.path.isfile(path):
            return
        from safetensors.torch import load_file

        names = self.state.get("param_names")
        current = [name for name, _ in self.trainable]
        if names != current:
            raise RlscaleError(f"{path}: optimizer state is for different parameters "
                               "(was the checkpoint trained with/without --lora or another "
                               "LoRA shape?)")
        tensors = _loading(path, "optimizer state", lambda: load_file(path))
        state: dict[int, dict[str, torch.Tensor]] = {}
        for index, name in enumerate(current):
            entry = {key: tensors[f"{name}::{key}"] for key in ("step", "exp_avg", "exp_avg_sq")
                     if f"{name}::{key}" in tensors}
            shape = self.trainable[index][1].shape
            if any(entry[k].shape != shape for k in ("exp_avg", "exp_avg_sq") if k in entry):
                raise RlscaleError(f"{path}: optimizer state of {name} does not match the "
                                   f"parameter's shape {tuple(shape)}")
            if entry:
                state[index] = entry
        group = self.optimizer.state_dict()["param_groups"][0]
        self.optimizer.load_state_dict({"state": state, "param_groups": [group]})

    # -- forward passes --

    def _autocast(self):
        if self.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        import contextlib

        return contextlib.nullcontext()

    def _forward_logprobs(self, model, batch: dict[str, torch.Tensor], *,
                          want_entropy: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Log-probs ``(B, C)`` of the completion tokens (and entropies if asked).

        The fused path runs the backbone, keeps the hidden states of completion positions only,
        and applies the LM head in chunks (:func:`grpo_kernel.fused_token_logprobs`), so the
        ``(B, C, V)`` logits never exist; other architectures (logit soft-capping or scaling)
        go through the model's own head.
        """
        n_completion = batch["completion_ids"].shape[1]
        mask = batch["completion_mask"] > 0
        causal_lm = model.get_base_model() if hasattr(model, "get_base_model") else model
        entropy = None
        if self.fused_head and _plain_lm_head(causal_lm):
            backbone = getattr(causal_lm, causal_lm.base_model_prefix)
            head = causal_lm.get_output_embeddings()
            with self._autocast():
                out = backbone(input_ids=batch["input_ids"],
                               attention_mask=batch["attention_mask"],
                               position_ids=batch["position_ids"], use_cache=False)
            hidden = out.last_hidden_state[:, -(n_completion + 1):-1, :][mask]
            logp_rows, entropy_rows = grpo_kernel.fused_token_logprobs(
                hidden, head.weight, head.bias, batch["completion_ids"][mask],
                temperature=self.config.temperature, with_entropy=want_entropy,
                compute_dtype=torch.bfloat16 if self.precision == "bf16" else None)
            logp = logp_rows.new_zeros(mask.shape).masked_scatter(mask, logp_rows)
            if want_entropy:
                entropy = entropy_rows.new_zeros(mask.shape).masked_scatter(mask, entropy_rows)
                if not self.config.entropy_coef:
                    entropy = entropy.detach()
            return logp, entropy
        with self._autocast():
            out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                        position_ids=batch["position_ids"], use_cache=False,
                        logits_to_keep=n_completion + 1)
        logits = out.logits[:, :-1, :].float()
        if self.config.temperature != 1.0:
            logits = logits / self.config.temperature
        logp = grpo_kernel.token_logprobs(logits, batch["completion_ids"]) * mask
        if want_entropy:
            if self.config.entropy_coef:
                entropy = grpo_kernel.entropy_from_logits(logits)
            else:
                with torch.no_grad():
                    entropy = grpo_kernel.entropy_from_logits(logits.detach())
        return logp, entropy

    @torch.no_grad()
    def prepare(self, samples: Sequence[Sample], first_minibatch: set[int]) -> _Prepared:
        """Reference and old log-probs of every sample, before any weight changes."""
        prepared = _Prepared(old_logp=[None] * len(samples),  # type: ignore[list-item]
                             ref_logp=[None] * len(samples))
        need_ref = self.ref_model is not None or self.ref_is_base
        need_old = [i for i, s in enumerate(samples) if s.old_logprobs is None
                    # first mini-batch: the policy has not moved yet, so π_old = π_θ exactly;
                    # its log-probs are taken from the update's own forward pass
                    and (i not in first_minibatch or self._has_dropout)]
        for i, s in enumerate(samples):
            if s.old_logprobs is not None:
                prepared.old_logp[i] = torch.tensor(s.old_logprobs, dtype=torch.float32)
        self.model.eval()
        todo = sorted(set(range(len(samples))) if need_ref else set(need_old))
        need_old_set = set(need_old)
        for chunk in micro_batches(todo, samples, self.config.micro_batch_size,
                                   self.config.max_tokens_per_micro_batch):
            batch = collate([samples[i] for i in chunk], self.pad_id, self.device)
            if need_ref:
                if self.ref_is_base:
                    with self.model.disable_adapter():
                        ref_logp, _ = self._forward_logprobs(self.model, batch, want_entropy=False)
                else:
                    ref_logp, _ = self._forward_logprobs(self.ref_model, batch,
                                                         want_entropy=False)
                ref_logp = ref_logp.cpu()  # one device-to-host copy per micro-batch
                for row, i in enumerate(chunk):
                    prepared.ref_logp[i] = ref_logp[row, :len(samples[i].completion_ids)]
            old_rows = [(row, i) for row, i in enumerate(chunk) if i in need_old_set]
            if old_rows:
                old_logp, _ = self._forward_logprobs(self.model, batch, want_entropy=False)
                old_logp = old_logp.cpu()
                for row, i in old_rows:
                    prepared.old_logp[i] = old_logp[row, :len(samples[i].completion_ids)]
        return prepared

    # -- one training step --

    def train_step(self, samples: Sequence[Sample],
                   on_update: Callable[[int, int], None] | None = None) -> dict[str, Any]:
        """One GRPO step (``mini_batches`` optimizer updates) over ``samples``.

        Args:
            samples: every completion of the step, with advantages already computed.
            on_update: called as ``on_update(done, total)`` after each optimizer update.

        Returns:
            metrics: ``loss``, ``pg_loss``, ``kl`` (aggregated like the loss and averaged over
            updates), ``clip_frac``/``clip_frac_lower``/``entropy``/``ppo_kl`` (token means over
            the step), ``grad_norm`` (mean pre-clip norm over updates), ``n_updates``,
            ``n_skipped_updates`` (non-finite gradient), ``step``.
        """
        cfg = self.config
        started = time.perf_counter()
        new_step = self.step + 1
        torch.manual_seed(cfg.seed * 1_000_003 + new_step)  # dropout, if any; stable across runs
        groups: dict[int, list[int]] = {}
        for i, s in enumerate(samples):
            groups.setdefault(s.group, []).append(i)
        group_order = list(groups)
        if cfg.shuffle:
            rng = np.random.default_rng([cfg.seed, new_step])
            group_order = [group_order[k] for k in rng.permutation(len(group_order))]
        try:
            parts = grpo.split_groups(len(group_order), cfg.mini_batches)
        except ValueError as exc:
            raise RlscaleError(f"--mini-batches {cfg.mini_batches}: {exc}") from None
        minibatches = [[i for g in part for i in groups[group_order[g]]] for part in
                       (list(p) for p in parts)]
        prepared = self.prepare(samples, set(minibatches[0]))
        loss_scale = cfg.loss_scale
        if loss_scale is None:
            loss_scale = max(max(len(s.completion_ids) for s in samples), 1)

        totals = {"loss": 0.0, "pg_loss": 0.0, "kl": 0.0, "grad_norm": 0.0}
        token_sums = {"clip_frac": 0.0, "clip_frac_lower": 0.0, "entropy": 0.0, "ppo_kl": 0.0}
        n_tokens_step = 0
        n_skipped = 0
        use_kl = self.ref_model is not None or self.ref_is_base
        params = [p for _, p in self.trainable]
        self.model.train()
        for update, members in enumerate(minibatches):
            self.optimizer.zero_grad(set_to_none=True)
            sums = self.accumulate_gradients(samples, members, prepared, loss_scale)
            for key in totals:
                totals[key] += sums.get(key, 0.0)
            for key in token_sums:
                token_sums[key] += sums[key]
            n_tokens = int(sums["n_tokens"])
            n_tokens_step += n_tokens
            if cfg.max_grad_norm is not None:
                grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            else:
                grad_norm = torch.nn.utils.clip_grad_norm_(params, float("inf"))
            grad_norm = float(grad_norm)
            if math.isfinite(grad_norm):
                self.optimizer.step()
                totals["grad_norm"] += grad_norm
            else:  # as VeRL: never apply a NaN/Inf gradient
                n_skipped += 1
            self.optimizer.zero_grad(set_to_none=True)
            if on_update is not None:
                on_update(update + 1, len(minibatches))
        n_updates = len(minibatches)
        self.state["step"] = new_step
        applied = max(n_updates - n_skipped, 1)
        denominator = max(n_tokens_step, 1)
        metrics = {
            "step": new_step,
            "loss": totals["loss"] / n_updates,
            "pg_loss": totals["pg_loss"] / n_updates,
            "kl": totals["kl"] / n_updates if use_kl else None,
            "clip_frac": token_sums["clip_frac"] / denominator,
            "clip_frac_lower": token_sums["clip_frac_lower"] / denominator,
            "ppo_kl": token_sums["ppo_kl"] / denominator,
            "grad_norm": totals["grad_norm"] / applied if n_skipped < n_updates else None,
            "entropy": token_sums["entropy"] / denominator,
            "n_updates": n_updates,
            "n_skipped_updates": n_skipped,
            "train_wall_s": time.perf_counter() - started,
        }
        self.state["last_metrics"] = metrics
        return metrics

    def accumulate_gradients(self, samples: Sequence[Sample], members: Sequence[int],
                             prepared: _Prepared, loss_scale: float) -> dict[str, float]:
        """Forward/backward one mini-batch in micro-batches, adding to ``.grad``.

        Each micro-batch's loss is normalised by the mini-batch's token and sequence counts,
        so the accumulated gradient equals the gradient of the whole mini-batch's loss.

        Returns:
            the mini-batch's ``loss``/``pg_loss``/``kl`` and token sums of ``clip_frac``,
            ``clip_frac_lower``, ``entropy``, ``ppo_kl``, plus ``n_tokens``.
        """
        cfg = self.config
        n_tokens = sum(len(samples[i].completion_ids) for i in members)
        n_seqs = sum(1 for i in members if samples[i].completion_ids)
        norms = {"n_tokens": n_tokens, "n_seqs": n_seqs, "scale": loss_scale}
        use_kl = self.ref_model is not None or self.ref_is_base
        zero = torch.zeros((), device=self.device)
        totals = {key: zero.clone() for key in ("loss", "pg_loss", "kl", "clip_frac",
                                                 "clip_frac_lower", "entropy", "ppo_kl")}
        for chunk in micro_batches(members, samples, cfg.micro_batch_size,
                                   cfg.max_tokens_per_micro_batch):
            batch = collate([samples[i] for i in chunk], self.pad_id, self.device)
            mask = batch["completion_mask"]
            logp, entropy = self._forward_logprobs(self.model, batch, want_entropy=True)
            # old / reference log-probs padded on the host, moved in one copy each
            old_host = torch.zeros(logp.shape)
            ref_host = torch.zeros(logp.shape) if use_kl else None
            recompute = torch.zeros(len(chunk), 1, dtype=torch.bool)
            for row, i in enumerate(chunk):
                length = len(samples[i].completion_ids)
                if prepared.old_logp[i] is None:
                    recompute[row] = True  # first mini-batch: π_old is the current policy
                else:
                    old_host[row, :length] = prepared.old_logp[i]
                if ref_host is not None:
                    ref_host[row, :length] = prepared.ref_logp[i]
            old = torch.where(recompute.to(self.device), logp.detach(),
                              old_host.to(self.device, non_blocking=True))
            ref = ref_host.to(self.device, non_blocking=True) if ref_host is not None else None
            adv = torch.tensor([[samples[i].advantage] for i in chunk], dtype=torch.float32,
                               device=self.device)
            terms = grpo_kernel.policy_loss_terms(logp, old, adv, clip_low=cfg.clip_low,
                                                  clip_high=cfg.clip_high,
                                                  dual_clip=cfg.dual_clip)
            pg = grpo_kernel.aggregate_loss(terms.losses, mask, cfg.loss_agg, **norms)
            loss = pg
            if ref is not None:
                kl = grpo_kernel.aggregate_loss(
                    grpo_kernel.kl_estimate(logp, ref, cfg.kl_estimator), mask, cfg.loss_agg,
                    **norms)
                loss = loss + cfg.kl_coef * kl
                totals["kl"] += kl.detach()
            if cfg.entropy_coef:
                loss = loss - cfg.entropy_coef * grpo_kernel.aggregate_loss(
                    entropy, mask, cfg.loss_agg, **norms)
            loss.backward()
            with torch.no_grad():  # metrics stay on the device: one sync per mini-batch
                totals["loss"] += loss.detach()
                totals["pg_loss"] += pg.detach()
                totals["clip_frac"] += (terms.clipped * mask).sum()
                totals["clip_frac_lower"] += (terms.dual_clipped * mask).sum()
                totals["entropy"] += (entropy * mask).sum()
                totals["ppo_kl"] += ((old - logp.detach()) * mask).sum()
        values = torch.stack(list(totals.values())).cpu().tolist()
        sums = dict(zip(totals, values, strict=True))
        sums["n_tokens"] = float(n_tokens)
        return sums

    # -- saving --

    def save(self, out_dir: str, *, hyperparameters: dict[str, Any] | None = None,
             expect: Any = UNCHECKED,
             _before_publish: Callable[[str], None] | None = None) -> dict[str, list[str]]:
        """Write the checkpoint to ``out_dir`` atomically (:func:`save_atomically`: temp dir +
        exchange-rename, files the save does not own carried over).

        With ``expect`` (a :func:`checkpoint_identity`, e.g. ``CheckpointLock.identity``),
        refuses to publish when ``out_dir`` is no longer that checkpoint: another run saved it
        after this one loaded.

        Returns:
            ``{"carried": [...], "dropped": [...]}``: entry names brought over / left out.
        """
        return save_atomically(out_dir, lambda tmp: self._write(tmp, hyperparameters),
                               tokenizer_dir=self.tokenizer_dir, expect=expect,
                               before_publish=_before_publish)

    def _write(self, directory: str, hyperparameters: dict[str, Any] | None) -> None:
        """Weights (or adapter), tokenizer, optimizer state and trainer state into ``directory``."""
        from safetensors.torch import save_file

        if self.config.lora is not None:
            self.model.save_pretrained(directory)
            self._point_adapter_at_base(directory)
        else:
            self._save_full_weights(directory)
        self.tokenizer.save_pretrained(directory)
        tensors, names = {}, []
        for index, (name, _) in enumerate(self.trainable):
            names.append(name)
            for key, value in self.optimizer.state.get(self.trainable[index][1], {}).items():
                if torch.is_tensor(value):
                    tensors[f"{name}::{key}"] = value.detach().to("cpu").contiguous()
        save_file(tensors, os.path.join(directory, OPTIMIZER_FILE))
        state = dict(self.state)
        state.update({
            "format": STATE_FORMAT,
            "param_names": names,
            "lora": asdict(self.config.lora) if self.config.lora else None,
            "base_model": self.base_dir if self.config.lora else None,
            "hyperparameters": hyperparameters or _config_json(self.config),
        })
        with open(os.path.join(directory, TRAINER_STATE_FILE), "w", encoding="utf-8") as handle:
            json.dump(state, handle, indent=1, allow_nan=False, default=str)

    def _save_full_weights(self, directory: str) -> None:
        from safetensors.torch import save_file

        model = self.model
        state = {k: v.detach() for k, v in model.state_dict().items()}
        if self.save_dtype != torch.float32:
            # the checkpoint keeps its dtype for rollout; the fp32 master copy keeps training exact
            master = {k: v.to("cpu").contiguous() for k, v in state.items()
                      if not (k == "lm_head.weight"
                              and getattr(model.config, "tie_word_embeddings", False))}
            save_file(master, os.path.join(directory, MASTER_WEIGHTS_FILE))
            state = {k: v.to(self.save_dtype) for k, v in state.items()}
        previous_dtype = getattr(model.config, "dtype", None)
        model.config.dtype = self.save_dtype
        try:
            model.save_pretrained(directory, state_dict=state, safe_serialization=True)
        finally:
            model.config.dtype = previous_dtype

    def _point_adapter_at_base(self, directory: str) -> None:
        path = os.path.join(directory, ADAPTER_CONFIG)
        with open(path, encoding="utf-8") as handle:
            config = json.load(handle)
        config["base_model_name_or_path"] = self.base_dir
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(config, handle, indent=2)


def _config_json(config: TrainConfig) -> dict[str, Any]:
    data = asdict(config)
    data["betas"] = list(config.betas)
    return data


# --- records -> samples ----------------------------------------------------------------------


def _token_ids(value: list, field_name: str, vocab_size: int) -> list[int]:
    for token in value:
        if isinstance(token, bool) or not isinstance(token, int):
            raise ValueError(f"field '{field_name}' must hold integer token ids, got "
                             f"{json.dumps(token)[:40]}")
        if not 0 <= token < vocab_size:
            raise ValueError(f"field '{field_name}': token id {token} is outside the policy's "
                             f"vocabulary [0, {vocab_size})")
    return list(value)


def _token_chars(tokenizer) -> int:
    """:func:`longest_token_chars` of a tokenizer, computed once per tokenizer object."""
    from rlscale.core.sampling import longest_token_chars

    cached = getattr(tokenizer, "_rlscale_token_chars", None)
    if cached is None:
        cached = longest_token_chars(tokenizer.get_vocab())
        tokenizer._rlscale_token_chars = cached
    return cached


def sample_from_record(record: dict[str, Any], tokenizer, vocab_size: int, *,
                       chat_template: bool = True, context_length: int | None = None
                       ) -> tuple[list[int], list[int], list[float] | None]:
    """Token ids (prompt, completion) and optional old log-probs of one scored rollout record.

    Token ids are taken from ``prompt_ids``/``completion_ids`` when present (exact: what the
    sampler produced). Otherwise the text is re-tokenised with the policy tokenizer: the prompt
    by :func:`rlscale.core.prompts.render_prompt_ids`, exactly as ``rollout`` rendered it for
    sampling (with ``chat_template``: the template; without: the raw text with the
    tokenizer's special tokens), the completion without special tokens plus the EOS token when
    ``finish_reason`` is ``"stop"``. Re-tokenisation need not reproduce the sampled tokens
    exactly, so keep token ids in the rollout output for training.

    With ``context_length``, a prompt text too long to fit is refused by its length before it
    is tokenised, and prompt plus completion must fit the context.

    Raises:
        ValueError: with a user-facing message for a bad record.
    """
    if record.get("prompt_ids") is not None:
        prompt_ids = _token_ids(record["prompt_ids"], "prompt_ids", vocab_size)
    elif "prompt" in record:
        if isinstance(record["prompt"], (str, list)):
            from rlscale.core.sampling import check_prompt_chars

            check_prompt_chars(record["prompt"], context_length, _token_chars(tokenizer))
        prompt = check_prompt(record["prompt"])
        if chat_template and not has_chat_template(tokenizer):
            raise ValueError("the policy tokenizer has no chat template; add prompt_ids to the "
                             "records or use --no-chat-template")
        prompt_ids = render_prompt_ids(tokenizer, prompt, chat_template=chat_template)
    else:
        raise ValueError("missing 'prompt_ids' (or 'prompt' text to tokenise)")
    if not prompt_ids:
        raise ValueError("the prompt has no tokens")
    if record.get("completion_ids") is not None:
        completion_ids = _token_ids(record["completion_ids"], "completion_ids", vocab_size)
    elif isinstance(record.get("completion"), str):
        if context_length is not None and \
                len(record["completion"]) > context_length * _token_chars(tokenizer):
            raise ValueError(f"completion has {len(record['completion'])} characters: more "
                             f"than the model's context of {context_length} tokens")
        completion_ids = list(tokenizer(record["completion"], add_special_tokens=False)
                              ["input_ids"])
        if record.get("finish_reason") == "stop" and tokenizer.eos_token_id is not None:
            completion_ids.append(int(tokenizer.eos_token_id))
    else:
        raise ValueError("missing 'completion_ids' (or 'completion' text to tokenise)")
    if context_length is not None and len(prompt_ids) + len(completion_ids) > context_length:
        raise ValueError(f"prompt and completion have {len(prompt_ids) + len(completion_ids)} "
                         f"tokens, more than the model's context of {context_length}")
    old = record.get("old_logprobs")
    if old is not None:
        if len(old) != len(completion_ids):
            raise ValueError(f"field 'old_logprobs' has {len(old)} values for "
                             f"{len(completion_ids)} completion tokens")
        for value in old:
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value) or value > 0:
                raise ValueError("field 'old_logprobs' must hold finite log-probabilities <= 0")
        old = [float(v) for v in old]
    return prompt_ids, completion_ids, old
