"""Parameter counts and training compute (FLOPs) for RL post-training runs.

Symbols (paper, App. C.1, and paper-method.md §1.4-1.5):

* ``N`` - model parameters. The paper's text says "non-embedding parameters", but its analysis
  code multiplies by the *nominal* size label (7e9 for Qwen2.5-7B, whose real count is 7.62e9
  total / 6.53e9 non-embedding). rlscale defaults to the nominal label, so it reproduces the
  published numbers; ``total`` and ``non-embedding`` are options. Changing the definition
  shifts the fitted intercepts by k*log10(N_new/N_old) and never the exponent k.
* ``T_step`` (``n_tokens``) - tokens processed in one step: prompt + response tokens of every
  sequence (VeRL ``perf/total_num_tokens``; a prompt is counted once per rollout).
* ``flops_step = 6 * N * T_step`` - forward (2NT) plus backward (4NT) of the policy update.
* ``C`` - cumulative FLOPs, ``sum of flops_step`` over the steps of one run; step 0 (the
  evaluation before training) adds nothing, so C = 0 there.
* ``D`` - cumulative prompts consumed (512 per step in the paper: D = 512 * step).
* ``T`` - cumulative tokens.

6NT omits the rollout (generation) forward pass and the forward passes that recompute old and
reference log-probabilities, about 2NT each; :data:`EXTRA_PASSES` names them so they can be
counted on request. The paper's analysis omits them, which scales C by a near-constant factor.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from rlscale.core.errors import RlscaleError

# FLOPs per parameter per token: forward 2, backward 4 (Kaplan et al. 2020; paper App. C.1).
TRAIN_FLOPS_PER_PARAM_TOKEN = 6
# One extra forward pass costs 2 FLOPs per parameter per token.
FORWARD_FLOPS_PER_PARAM_TOKEN = 2
# Extra forward passes a GRPO step runs besides the policy update (not in the paper's 6NT).
EXTRA_PASSES = ("rollout", "reference", "old-logprob")
# Prompts per step used by the paper for every run (data.train_batch_size; paper-method §1.5).
PAPER_PROMPTS_PER_STEP = 512
N_DEFINITIONS = ("nominal", "total", "non-embedding")

# Decoder-only architectures whose parameters follow the Llama layout. Per model_type: which
# attention projections carry a bias, and whether q/k have a per-head RMSNorm (Qwen3).
_ARCHITECTURES: dict[str, dict[str, Any]] = {
    "llama": {"qkv_bias": "attention_bias", "o_bias": "attention_bias", "mlp_bias": "mlp_bias"},
    "mistral": {"qkv_bias": False, "o_bias": False, "mlp_bias": False},
    "qwen2": {"qkv_bias": True, "o_bias": False, "mlp_bias": False},
    "qwen3": {"qkv_bias": "attention_bias", "o_bias": "attention_bias", "mlp_bias": False,
              "qk_norm": True},
}
SUPPORTED_MODEL_TYPES = tuple(sorted(_ARCHITECTURES))


@dataclass(frozen=True)
class ParamCount:
    """Parameter counts of a decoder-only transformer.

    ``embedding`` counts the input embedding matrix plus an untied output head (the head
    is a vocabulary-sized matrix too, and Kaplan et al. exclude both); with tied embeddings
    the shared matrix is counted once.
    """

    total: int
    embedding: int
    tied_embeddings: bool
    model_type: str

    @property
    def non_embedding(self) -> int:
        return self.total - self.embedding


def _flag(config: Mapping[str, Any], rule: bool | str) -> bool:
    if isinstance(rule, bool):
        return rule
    return bool(config.get(rule, False))


def _int_field(config: Mapping[str, Any], name: str, default: int | None = None) -> int:
    value = config.get(name, default)
    if value is None:
        raise RlscaleError(f"config has no '{name}'")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) \
            or value < 0:
        raise RlscaleError(f"config field '{name}' must be a non-negative integer, got {value!r}")
    return int(value)


def count_params(config: Mapping[str, Any]) -> ParamCount:
    """Count parameters from a Hugging Face ``config.json`` dict, without weights.

    Supports the Llama-layout decoder models (``model_type`` llama, mistral, qwen2, qwen3):
    embeddings (V*h), per layer q/k/v/o projections with grouped-query attention and the
    architecture's biases, a gated MLP (3*h*I), two RMSNorms, a final RMSNorm, and an output head
    unless ``tie_word_embeddings``. Multimodal wrappers with a ``text_config`` are read through
    their text model.

    >>> qwen25_7b = {"model_type": "qwen2", "vocab_size": 152064, "hidden_size": 3584,
    ...     "intermediate_size": 18944, "num_hidden_layers": 28, "num_attention_heads": 28,
    ...     "num_key_value_heads": 4, "tie_word_embeddings": False}
    >>> c = count_params(qwen25_7b); (c.total, c.non_embedding)
    (7615616512, 6525621760)
    """
    if "hidden_size" not in config and isinstance(config.get("text_config"), Mapping):
        config = config["text_config"]
    model_type = config.get("model_type")
    if model_type not in _ARCHITECTURES:
        raise RlscaleError(
            f"cannot count parameters of model_type {model_type!r}; supported: "
            f"{', '.join(SUPPORTED_MODEL_TYPES)} (pass --n-params instead)")
    arch = _ARCHITECTURES[model_type]
    vocab = _int_field(config, "vocab_size")
    hidden = _int_field(config, "hidden_size")
    intermediate = _int_field(config, "intermediate_size")
    layers = _int_field(config, "num_hidden_layers")
    heads = _int_field(config, "num_attention_heads")
    kv_heads = _int_field(config, "num_key_value_heads", heads)
    if heads == 0:
        raise RlscaleError("config field 'num_attention_heads' must be positive")
    head_dim = config.get("head_dim")
    head_dim = hidden // heads if head_dim is None else _int_field(config, "head_dim")
    tied = bool(config.get("tie_word_embeddings", False))

    q_out, kv_out = heads * head_dim, kv_heads * head_dim
    attention = hidden * q_out + 2 * hidden * kv_out + q_out * hidden
    if _flag(config, arch["qkv_bias"]):
        attention += q_out + 2 * kv_out
    if _flag(config, arch["o_bias"]):
        attention += hidden
    if arch.get("qk_norm"):
        attention += 2 * head_dim
    mlp = 3 * hidden * intermediate
    if _flag(config, arch["mlp_bias"]):
        mlp += 2 * intermediate + hidden
    norms = 2 * hidden
    per_layer = attention + mlp + norms

    embedding = vocab * hidden * (1 if tied else 2)
    total = layers * per_layer + hidden + embedding  # + hidden: the final norm
    return ParamCount(total=total, embedding=embedding, tied_embeddings=tied,
                      model_type=str(model_type))


# A size label in a model name: "Qwen2.5-7B-Instruct" -> 7e9, "Qwen2.5-0.5B" -> 0.5e9,
# "SmolLM-135M" -> 1.35e8. The label must start a dash/underscore/slash-separated word, so
# "Qwen2.5" or a commit hash does not match.
_SIZE_LABEL = re.compile(r"(?:^|[-_/ ])(\d+(?:\.\d+)?)([bBmM])(?=$|[-_/ .])")


def size_label(name: str) -> float | None:
    """Parse the nominal size label of a model name, or None.

    >>> size_label("Qwen2.5-7B-Instruct"), size_label("Qwen/Qwen2.5-0.5B"), size_label("gpt2")
    (7000000000.0, 500000000.0, None)
    >>> size_label("Meta-Llama-3.1-70B"), size_label("SmolLM2-135M-Instruct")
    (70000000000.0, 135000000.0)
    """
    match = _SIZE_LABEL.search(name)
    if match is None:
        return None
    scale = 1e9 if match.group(2) in "bB" else 1e6
    return float(match.group(1)) * scale


def round_significant(value: float, digits: int = 2) -> float:
    """Round to ``digits`` significant figures: 7615616512 -> 7.6e9."""
    if value == 0:
        return 0.0
    return float(f"{value:.{digits - 1}e}")


def nominal_size(names: Iterable[str], config: Mapping[str, Any],
                 total: int) -> tuple[float, str]:
    """The nominal N of a model given only its config: a size label in one of its ``names``
    (the directory names that name the model, see
    :func:`rlscale.io.model_config.model_names`), else in the config's ``_name_or_path``, else
    the total count rounded to two significant figures (7.62e9 -> 7.6e9): a size label is a
    naming convention, not a function of the architecture. Returns (N, how it was found).

    >>> nominal_size(["Qwen2.5-7B"], {}, 7615616512)
    (7000000000.0, "size label in 'Qwen2.5-7B'")
    >>> nominal_size(["checkpoint"], {"_name_or_path": "Qwen/Qwen2.5-3B"}, 1)[0]
    3000000000.0
    >>> nominal_size(["checkpoint"], {}, 7615616512)[0]
    7600000000.0
    """
    for part in names:
        label = size_label(part.replace("--", "/"))
        if label is not None:
            return label, f"size label in '{part}'"
    name = config.get("_name_or_path")
    if isinstance(name, str) and (label := size_label(name)) is not None:
        return label, f"size label in _name_or_path '{name}'"
    return (round_significant(total),
            "no size label in the model name: total rounded to 2 significant figures")


def flops_per_token_factor(extra_passes: Iterable[str] = ()) -> int:
    """FLOPs per parameter per token: 6 for the update, +2 per extra forward pass.

    >>> flops_per_token_factor(), flops_per_token_factor(["rollout", "reference"])
    (6, 10)
    """
    extras = list(extra_passes)
    for name in extras:
        if name not in EXTRA_PASSES:
            raise ValueError(f"unknown pass {name!r}; expected one of {', '.join(EXTRA_PASSES)}")
    return TRAIN_FLOPS_PER_PARAM_TOKEN + FORWARD_FLOPS_PER_PARAM_TOKEN * len(set(extras))


def step_flops(n_params: float, n_tokens: float, extra_passes: Iterable[str] = ()) -> float:
    """FLOPs of one step: ``6 * N * T_step`` (paper App. C.1), plus ``2 * N * T_step`` per extra
    forward pass.

    >>> step_flops(7e9, 4096 * 800)
    1.376256e+17
    """
    return float(flops_per_token_factor(extra_passes)) * float(n_params) * float(n_tokens)


@dataclass
class RunTotals:
    """Running sums of one run: the last step seen and the cumulative C, D, T up to it."""

    last_step: int | None = None
    last_step_tokens: float | None = None
    last_step_prompts: float | None = None
    last_step_flops: float = 0.0
    C: float = 0.0
    D: float = 0.0
    T: float = 0.0
    n_steps: int = 0


class StepAccumulator:
    """Cumulative compute per run, fed one step record at a time (streaming, input order kept).

    A record is one step of one run (``run_id``; records of several runs may interleave). With a
    ``step`` field, records that repeat the last step of their run (e.g. one eval record per data
    source) share that step's values and must agree on ``n_tokens``; a step smaller than the
    last one is an error. Without ``step``, every record is a new step. Step 0 is the evaluation
    before training: it adds nothing to C, D or T.
    """

    def __init__(self, extra_passes: Iterable[str] = ()):
        self.extra_passes = tuple(extra_passes)
        self.factor = flops_per_token_factor(self.extra_passes)
        self.runs: dict[Any, RunTotals] = {}
        self.gaps: list[tuple[Any, int | None, int]] = []  # (run, previous step, step)

    def add(self, run_key: Any, step: int | None, n_tokens: float, n_prompts: float,
            n_params: float) -> dict[str, float]:
        """Account one step record; return its fields ``flops_step``, ``C``, ``D``, ``T``.

        Raises ValueError (with a user-facing message) on steps going backwards or on a
        repeated step whose ``n_tokens`` differs.
        """
        totals = self.runs.setdefault(run_key, RunTotals())
        if step is not None and totals.last_step is not None and step <= totals.last_step:
            if step < totals.last_step:
                raise ValueError(
                    f"step {step} comes after step {totals.last_step} of the same run "
                    "(sort records by step within each run_id)")
            if n_tokens != totals.last_step_tokens:
                raise ValueError(
                    f"step {step} repeats with n_tokens {n_tokens:g}, an earlier record of this "
                    f"step has {totals.last_step_tokens:g}")
            return self._fields(totals)
        if step is not None and step > 0:
            expected = 1 if totals.last_step is None else totals.last_step + 1
            if step != expected:
                self.gaps.append((run_key, totals.last_step, step))
        counts = step != 0
        flops = self.factor * float(n_params) * float(n_tokens) if counts else 0.0
        totals.last_step_flops = flops
        totals.C += flops
        if counts:
            totals.D += float(n_prompts)
            totals.T += float(n_tokens)
        totals.last_step = step if step is not None else (totals.last_step or 0) + 1
        totals.last_step_tokens = n_tokens
        totals.last_step_prompts = n_prompts
        totals.n_steps += 1
        return self._fields(totals)

    @staticmethod
    def _fields(totals: RunTotals) -> dict[str, float]:
        return {"flops_step": totals.last_step_flops, "C": totals.C, "D": _count(totals.D),
                "T": _count(totals.T)}


def _count(value: float) -> float | int:
    """Counts (prompts, tokens) as integers when they are whole, so 512 prints as 512."""
    return int(value) if value.is_integer() and abs(value) < 2**53 else value


def check_count(value: float, what: str) -> float:
    """A finite, non-negative count as float, or ValueError naming it."""
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{what} must be a finite number >= 0, got {value!r}")
    return float(value)


def estimate_phi(points: Iterable[tuple[float, float, float, float]],
                 tail_fraction: float = 0.5) -> tuple[float, dict[float, float]]:
    """The paper's tokens-per-prompt compute factor phi (paper-method.md §1.4, check A-F2).

    ``points`` are ``(N, step, C, D)`` rows of any number of runs. Per model size N, all runs'
    rows are pooled and sorted by step; ``phi_N`` is the median of ``C / (N * D)`` over the last
    ``tail_fraction`` of them (rows with D = 0, i.e. step 0, are left out); ``phi_global`` is the
    median of ``phi_N`` over model sizes. The idealised compute is then ``C_ideal = N * D * phi``
    (the analysis code's column ``C``, as opposed to the measured ``C_raw``).

    With a constant ``t`` tokens per step and 512 prompts per step, phi = 6 * t / 512:

    >>> rows = [(n, s, 6 * n * 1024 * s, 512 * s) for n in (1e9, 7e9) for s in range(0, 11)]
    >>> estimate_phi(rows)
    (12.0, {1000000000.0: 12.0, 7000000000.0: 12.0})
    """
    if not 0 < tail_fraction <= 1:
        raise ValueError(f"tail_fraction must be in (0, 1], got {tail_fraction}")
    by_size: dict[float, list[tuple[float, float]]] = {}
    for n_params, step, compute, prompts in points:
        if prompts > 0 and n_params > 0:
            by_size.setdefault(float(n_params), []).append((step, compute / (n_params * prompts)))
    if not by_size:
        raise ValueError("no rows with D > 0 to estimate phi from")
    per_size: dict[float, float] = {}
    for n_params, rows in by_size.items():
        rows.sort(key=lambda row: row[0])  # stable: runs keep their order within a step
        tail = rows[len(rows) - max(1, math.ceil(len(rows) * tail_fraction)):]
        per_size[n_params] = float(_median([ratio for _, ratio in tail]))
    return float(_median(list(per_size.values()))), dict(sorted(per_size.items()))


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2
