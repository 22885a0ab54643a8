"""Rollout with vLLM's offline engine (``vllm.LLM``), for GPUs and tensor parallelism.

vLLM is imported only when this backend is constructed, and the module object can be injected
(``vllm=``), so the request building below is unit-tested without a GPU against a fake engine
with the same interface: ``LLM(**kwargs).generate(prompts, sampling_params, lora_request=...,
use_tqdm=False)``, ``SamplingParams(**kwargs)`` and ``LoRARequest(name, int_id, path)``.

Requests
    Prompts are tokenized here, with the same :class:`PromptEncoder` as the hf backend, and
    handed to vLLM as token ids, so both backends see identical prompt tokens. The samples of a
    prompt go out as one request ``SamplingParams(n=k, seed=prompt_seed + first_idx)``: vLLM seeds
    child ``i`` of such a request with ``seed + i`` (``vllm/v1/engine/parallel_sampling.py``),
    which is exactly the per-sample seed of :func:`rlscale.core.sampling.sample_seed`. A resumed
    prompt with gaps in its sample indices becomes one request per run of consecutive indices.
    Detokenization is turned off (``detokenize=False``); completions are decoded here, so the text
    rule (stop token dropped, special tokens skipped) is the same for both backends.

vLLM as it behaves (0.11 to 0.33), checked before the engine starts
    Greedy decoding with ``n > 1`` is rejected by vLLM: one greedy sample per prompt is drawn
    and copied (greedy samples are identical). Temperatures above 2 are rejected, and below
    1e-5 vLLM silently decodes greedily: both are refused here. The engine seed feeds
    ``np.random.seed`` (< 2**32): it gets ``--seed mod 2**32`` (per-request seeds are separate).
    ``--dtype auto`` is made explicit from the checkpoint (vLLM's own ``auto`` turns fp32 into
    bf16). With ``--logprobs``, ``logprobs_mode`` is pinned to the one that gives
    :data:`rlscale.core.sampling.LOGPROBS_DOC` (``raw_logprobs`` at T = 1 or greedy,
    ``processed_logprobs`` without top-k/top-p, otherwise refused) and ``logprobs=1`` is asked
    (the sampled token's entry is always returned; ``logprobs=0`` changed meaning across versions).
    vLLM 0.6.4-0.6.6 gave identical children for seeded ``n > 1`` requests: versions below 0.11
    are refused.

Reproducibility
    A sample's seed is fixed, but vLLM's logits depend on what else is in the batch (kernel
    choice, chunked prefill), so tokens can differ between batch sizes, shards and resumes
    unless the engine is started with ``VLLM_BATCH_INVARIANT=1`` (and
    ``VLLM_ENABLE_V1_MULTIPROCESSING=0`` for a deterministic scheduler). Each record's
    ``sampling`` says which of these were in force.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from rlscale.core.errors import RlscaleError, UsageError
from rlscale.core.sampling import FINISH_REASONS, SampleOutput, SampleRequest, SamplingParams
from rlscale.engines.hf_rollout import (
    PromptEncoder,
    TokenizedEngine,
    checkpoint_dtype,
    checkpoint_stop_ids,
    load_tokenizer,
    quiet_transformers,
)

LORA_NAME = "rlscale-lora"
MIN_VERSION = (0, 11)
MAX_TEMPERATURE = 2.0  # vLLM 0.33's SamplingParams check
GREEDY_BELOW = 1e-5  # vLLM's _SAMPLING_EPS: smaller temperatures decode greedily
ENGINE_SEED_MODULUS = 2**32  # the engine seed goes to np.random.seed


def check_params(params: SamplingParams, logprobs: bool = False) -> str | None:
    """Refuse what vLLM would reject or reinterpret; return the ``logprobs_mode`` to pin."""
    t = params.temperature
    if t > MAX_TEMPERATURE:
        raise UsageError(f"--temperature {t}: vLLM accepts at most {MAX_TEMPERATURE:g}; use "
                         "--backend hf")
    if 0 < t < GREEDY_BELOW:
        raise UsageError(f"--temperature {t}: vLLM decodes greedily below {GREEDY_BELOW:g}; "
                         "pass --temperature 0 for greedy")
    if not logprobs:
        return None
    if params.greedy or t == 1.0:
        return "raw_logprobs"  # log softmax(logits), before top-k/top-p: LOGPROBS_DOC at T = 1
    if params.top_k <= 0 and params.top_p == 1.0:
        return "processed_logprobs"  # after temperature; nothing truncated
    raise UsageError("--logprobs with --backend vllm needs --temperature 1, or --top-k -1 and "
                     "--top-p 1 (vLLM reports log-probs before temperature or after truncation); "
                     "use --backend hf, or let grpo-step recompute them")


def check_version(version: str | None) -> None:
    """Refuse vLLM older than 0.11 (0.6.4-0.6.6 drew identical seeded samples)."""
    if not version:
        return
    try:
        parts = tuple(int(p) for p in re.findall(r"\d+", version)[:2])
    except ValueError:
        return
    if len(parts) == 2 and parts < MIN_VERSION:
        raise RlscaleError(f"--backend vllm: vLLM {version} is older than 0.11 (0.6.4-0.6.6 give "
                           "identical samples for seeded n > 1 requests); pip install "
                           "'rlscale[vllm]'")


@dataclass(frozen=True)
class VllmRequest:
    """One vLLM request: a prompt and ``n`` consecutive samples starting at ``first_sample_idx``."""

    prompt_ids: tuple[int, ...]
    first_sample_idx: int
    n: int
    seed: int


def group_requests(requests: Sequence[SampleRequest]) -> list[VllmRequest]:
    """Merge consecutive samples of one prompt (consecutive indices and seeds) into one request.

    >>> group_requests([SampleRequest((1, 2), 0, 10), SampleRequest((1, 2), 1, 11),
    ...                 SampleRequest((1, 2), 3, 13), SampleRequest((5,), 0, 70)])  # doctest: +NORMALIZE_WHITESPACE
    [VllmRequest(prompt_ids=(1, 2), first_sample_idx=0, n=2, seed=10),
     VllmRequest(prompt_ids=(1, 2), first_sample_idx=3, n=1, seed=13),
     VllmRequest(prompt_ids=(5,), first_sample_idx=0, n=1, seed=70)]
    """
    grouped: list[VllmRequest] = []
    for request in requests:
        last = grouped[-1] if grouped else None
        if (last is not None and last.prompt_ids == request.prompt_ids
                and request.sample_idx == last.first_sample_idx + last.n
                and request.seed == last.seed + last.n):
            grouped[-1] = VllmRequest(last.prompt_ids, last.first_sample_idx, last.n + 1, last.seed)
        else:
            grouped.append(VllmRequest(request.prompt_ids, request.sample_idx, 1, request.seed))
    return grouped


def sampling_kwargs(params: SamplingParams, request: VllmRequest, stop_ids: Sequence[int],
                    logprobs: bool = False) -> dict[str, Any]:
    """Keyword arguments of ``vllm.SamplingParams`` for one request.

    Everything that could differ from the hf backend is pinned: no penalties, no min-p, the
    checkpoint's stop tokens, and no detokenization (decoded by rlscale instead). With
    ``logprobs``, ``logprobs=1``: vLLM returns the sampled token's entry plus the top one.
    """
    kwargs = {
        "n": request.n,
        "seed": request.seed,
        "temperature": params.temperature,
        "top_p": params.top_p,
        "top_k": params.top_k,
        "min_p": 0.0,
        "repetition_penalty": 1.0,
        "presence_penalty": 0.0,
        "frequency_penalty": 0.0,
        "max_tokens": params.max_tokens,
        "stop_token_ids": list(stop_ids),
        "ignore_eos": False,
        "detokenize": False,
    }
    if logprobs:
        kwargs["logprobs"] = 1  # the sampled token's entry is always among them
    return kwargs


def lora_rank(adapter_dir: str) -> int:
    """The rank ``r`` of a peft LoRA adapter (vLLM must be started with ``max_lora_rank >= r``)."""
    path = os.path.join(adapter_dir, "adapter_config.json")
    try:
        with open(path, encoding="utf-8") as handle:
            config = json.load(handle)
    except FileNotFoundError:
        raise RlscaleError(f"--lora {adapter_dir}: not a LoRA adapter directory "
                           "(no adapter_config.json)") from None
    except (OSError, ValueError) as exc:
        raise RlscaleError(f"--lora {adapter_dir}: cannot read adapter_config.json: {exc}") from None
    rank = config.get("r")
    if not isinstance(rank, int) or rank < 1:
        raise RlscaleError(f"--lora {adapter_dir}: adapter_config.json has no positive integer 'r'")
    return rank


def llm_kwargs(model: str, params: SamplingParams, *, tensor_parallel_size: int = 1,
               dtype: str = "auto", lora_rank: int | None = None,
               engine_args: dict[str, Any] | None = None,
               logprobs_mode: str | None = None) -> dict[str, Any]:
    """Keyword arguments of ``vllm.LLM``; ``--vllm-arg KEY=VALUE`` entries override them."""
    kwargs: dict[str, Any] = {
        "model": model,
        "tokenizer": model,
        "tensor_parallel_size": tensor_parallel_size,
        "dtype": dtype,
        "seed": params.seed % ENGINE_SEED_MODULUS,
    }
    if logprobs_mode is not None:
        kwargs["logprobs_mode"] = logprobs_mode
    if lora_rank is not None:
        # vLLM accepts ranks from a fixed ladder; start with the smallest that holds the adapter
        supported = (8, 16, 32, 64, 128, 256, 320, 512)
        kwargs.update(enable_lora=True, max_loras=1,
                      max_lora_rank=next((r for r in supported if r >= lora_rank), lora_rank))
    kwargs.update(engine_args or {})
    return kwargs


def convert_output(completion, max_tokens: int, logprobs: bool = False) -> SampleOutput:
    """A vLLM ``CompletionOutput`` -> :class:`SampleOutput` (token ids keep the stop token).

    With ``logprobs``, ``completion.logprobs[t]`` maps token ids to objects with ``.logprob``
    (vLLM's ``Logprob``); the entry of the sampled token is taken.
    """
    reason = completion.finish_reason
    if reason not in FINISH_REASONS:
        raise RlscaleError(f"vLLM ended a sample with finish_reason {reason!r} (expected stop or "
                           "length); the engine may have aborted the request")
    token_ids = tuple(int(t) for t in completion.token_ids)
    if len(token_ids) > max_tokens:
        raise RlscaleError(f"vLLM returned {len(token_ids)} tokens with max_tokens {max_tokens}")
    values = None
    if logprobs:
        steps = completion.logprobs
        if steps is None or len(steps) != len(token_ids):
            raise RlscaleError(f"vLLM returned {0 if steps is None else len(steps)} log-prob "
                               f"entries for {len(token_ids)} tokens")
        values = []
        for token, entry in zip(token_ids, steps, strict=True):
            if token not in entry:
                raise RlscaleError(f"vLLM returned no log-prob for sampled token {token}")
            values.append(float(entry[token].logprob))
        values = tuple(values)
    return SampleOutput(token_ids, reason, values)


def import_vllm():
    """Import vLLM with its INFO logging turned down; one line of error when it is missing."""
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    try:
        import vllm
        from vllm.lora.request import LoRARequest
    except ImportError as exc:
        raise RlscaleError(f"--backend vllm: cannot import vLLM ({exc}); install it with "
                           "pip install 'rlscale[vllm]' on a GPU machine, or use --backend hf"
                           ) from None
    version = getattr(vllm, "__version__", None)
    check_version(version)
    return SimpleNamespace(LLM=vllm.LLM, SamplingParams=vllm.SamplingParams,
                           LoRARequest=LoRARequest, version=version)


class VllmRollout(TokenizedEngine):
    """The ``vllm`` backend of ``rlscale rollout`` (implements ``RolloutEngine``).

    Args:
        vllm: the vLLM module, or any object with ``LLM``, ``SamplingParams`` and ``LoRARequest``
            (tests pass a fake); imported when omitted.
        tokenizer: reuse a loaded tokenizer (tests); loaded from ``model`` when omitted.
    """

    backend = "vllm"

    def __init__(self, model: str, params: SamplingParams, *, chat_template: bool = True,
                 lora: str | None = None, dtype: str = "auto", tensor_parallel_size: int = 1,
                 engine_args: dict[str, Any] | None = None, logprobs: bool = False, vllm=None,
                 tokenizer=None):
        quiet_transformers()
        self.logprobs_mode = check_params(params, logprobs)
        self.params = params
        self.logprobs = logprobs
        self.tokenizer = tokenizer if tokenizer is not None else load_tokenizer(model)
        self.encoder = PromptEncoder(self.tokenizer, chat_template=chat_template, model=model)
        self._stop_ids = checkpoint_stop_ids(model, self.tokenizer)
        rank = lora_rank(lora) if lora is not None else None
        self.vllm = vllm if vllm is not None else import_vllm()
        self.dtype = checkpoint_dtype(model, dtype)
        self.llm_kwargs = llm_kwargs(model, params, tensor_parallel_size=tensor_parallel_size,
                                     dtype=self.dtype, lora_rank=rank, engine_args=engine_args,
                                     logprobs_mode=self.logprobs_mode)
        self.llm = self.vllm.LLM(**self.llm_kwargs)
        self.lora_request = (self.vllm.LoRARequest(LORA_NAME, 1, os.path.abspath(lora))
                             if lora is not None else None)
        self.context_length = _max_model_len(self.llm)
        self._sampling_fields: frozenset[str] | None = None

    def describe(self) -> dict[str, Any]:
        """Engine facts and the determinism settings in force, for each record's ``sampling``."""
        return {"engine": f"vllm {getattr(self.vllm, 'version', None) or 'unknown'}",
                "dtype": self.llm_kwargs.get("dtype"),
                "batch_invariant": os.environ.get("VLLM_BATCH_INVARIANT", "0") == "1",
                "v1_multiprocessing": os.environ.get("VLLM_ENABLE_V1_MULTIPROCESSING",
                                                     "1") != "0",
                **({"logprobs_mode": self.logprobs_mode} if self.logprobs_mode else {})}

    def generate(self, requests: Sequence[SampleRequest]) -> list[SampleOutput]:
        grouped = group_requests(requests)
        if not grouped:
            return []
        prompts = [{"prompt_token_ids": list(r.prompt_ids)} for r in grouped]
        # vLLM rejects greedy n > 1; greedy samples are identical, so one is drawn and copied
        sent = [VllmRequest(r.prompt_ids, r.first_sample_idx, 1, r.seed)
                if self.params.greedy else r for r in grouped]
        sampling = [self.vllm.SamplingParams(**self._supported(
            sampling_kwargs(self.params, r, self._stop_ids, self.logprobs))) for r in sent]
        results = self.llm.generate(prompts, sampling, lora_request=self.lora_request,
                                    use_tqdm=False)
        if len(results) != len(grouped):
            raise RlscaleError(f"vLLM returned {len(results)} results for {len(grouped)} requests")
        outputs: list[SampleOutput] = []
        for request, asked, result in zip(grouped, sent, results, strict=True):
            completions = sorted(result.outputs, key=lambda c: c.index)
            if len(completions) != asked.n:
                raise RlscaleError(f"vLLM returned {len(completions)} samples for a request "
                                   f"with n={asked.n}")
            converted = [convert_output(c, self.params.max_tokens, self.logprobs)
                         for c in completions]
            outputs.extend(converted * (request.n // asked.n))
        return outputs


    def _supported(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Drop pinned-to-default keys this vLLM version's ``SamplingParams`` does not know.

        The keys that define the samples (n, seed, temperature, top_p, top_k, max_tokens,
        stop_token_ids) are always passed, so an incompatible vLLM fails loudly instead.
        """
        if self._sampling_fields is None:
            self._sampling_fields = accepted_fields(self.vllm.SamplingParams)
        if not self._sampling_fields:
            return kwargs
        return {k: v for k, v in kwargs.items()
                if k in self._sampling_fields or k not in OPTIONAL_SAMPLING_KEYS}


OPTIONAL_SAMPLING_KEYS = frozenset({"min_p", "repetition_penalty", "presence_penalty",
                                    "frequency_penalty", "ignore_eos", "detokenize"})


def accepted_fields(cls) -> frozenset[str]:
    """Field names a class accepts (msgspec struct or plain signature); empty = accepts any."""
    fields = getattr(cls, "__struct_fields__", None)
    if fields:
        return frozenset(fields)
    import inspect

    try:
        parameters = inspect.signature(cls).parameters.values()
    except (TypeError, ValueError):
        return frozenset()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return frozenset()
    return frozenset(p.name for p in parameters)


def _max_model_len(llm) -> int | None:
    """The context vLLM serves (``max_model_len``), if the engine exposes it."""
    for path in (("llm_engine", "model_config", "max_model_len"),
                 ("llm_engine", "vllm_config", "model_config", "max_model_len")):
        value: Any = llm
        for name in path:
            value = getattr(value, name, None)
            if value is None:
                break
        if isinstance(value, int):
            return value
    return None
