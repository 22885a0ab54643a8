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
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from rlscale.core.errors import RlscaleError, UsageError
from rlscale.core.sampling import FINISH_REASONS, SampleOutput, SampleRequest, SamplingParams
from rlscale.engines.hf_rollout import (
    PromptEncoder,
    TokenizedEngine,
    checkpoint_stop_ids,
    load_tokenizer,
    quiet_transformers,
)

LORA_NAME = "rlscale-lora"


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
    ``logprobs``, ``logprobs=0`` asks for the sampled token's log-probability only.
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
        kwargs["logprobs"] = 0
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
               engine_args: dict[str, Any] | None = None) -> dict[str, Any]:
    """Keyword arguments of ``vllm.LLM``; ``--vllm-arg KEY=VALUE`` entries override them."""
    kwargs: dict[str, Any] = {
        "model": model,
        "tokenizer": model,
        "tensor_parallel_size": tensor_parallel_size,
        "dtype": dtype,
        "seed": params.seed,
    }
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
    return SimpleNamespace(LLM=vllm.LLM, SamplingParams=vllm.SamplingParams,
                           LoRARequest=LoRARequest)


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
        if logprobs and params.temperature not in (0.0, 1.0):
            # vLLM V1 reports log-probs of the unscaled distribution ("raw_logprobs")
            raise UsageError("--logprobs with --backend vllm needs --temperature 1 (vLLM reports "
                             "log-probs before temperature scaling); use --backend hf, or let "
                             "grpo-step recompute them")
        self.params = params
        self.logprobs = logprobs
        self.tokenizer = tokenizer if tokenizer is not None else load_tokenizer(model)
        self.encoder = PromptEncoder(self.tokenizer, chat_template=chat_template, model=model)
        self._stop_ids = checkpoint_stop_ids(model, self.tokenizer)
        rank = lora_rank(lora) if lora is not None else None
        self.vllm = vllm if vllm is not None else import_vllm()
        self.llm_kwargs = llm_kwargs(model, params, tensor_parallel_size=tensor_parallel_size,
                                     dtype=dtype, lora_rank=rank, engine_args=engine_args)
        self.llm = self.vllm.LLM(**self.llm_kwargs)
        self.lora_request = (self.vllm.LoRARequest(LORA_NAME, 1, os.path.abspath(lora))
                             if lora is not None else None)
        self.context_length = _max_model_len(self.llm)
        self._sampling_fields: frozenset[str] | None = None

    def generate(self, requests: Sequence[SampleRequest]) -> list[SampleOutput]:
        grouped = group_requests(requests)
        if not grouped:
            return []
        prompts = [{"prompt_token_ids": list(r.prompt_ids)} for r in grouped]
        sampling = [self.vllm.SamplingParams(**self._supported(
            sampling_kwargs(self.params, r, self._stop_ids, self.logprobs))) for r in grouped]
        results = self.llm.generate(prompts, sampling, lora_request=self.lora_request,
                                    use_tqdm=False)
        if len(results) != len(grouped):
            raise RlscaleError(f"vLLM returned {len(results)} results for {len(grouped)} requests")
        outputs: list[SampleOutput] = []
        for request, result in zip(grouped, results, strict=True):
            completions = sorted(result.outputs, key=lambda c: c.index)
            if len(completions) != request.n:
                raise RlscaleError(f"vLLM returned {len(completions)} samples for a request "
                                   f"with n={request.n}")
            outputs.extend(convert_output(c, self.params.max_tokens, self.logprobs)
                           for c in completions)
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
