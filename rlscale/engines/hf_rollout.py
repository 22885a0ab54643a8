"""Rollout with transformers ``generate``: batched, left-padded, CPU or GPU.

Sampling runs inside ``generate`` through :class:`RowSampler`, a logits processor that draws the
next token of every row from that row's own ``torch.Generator`` (seeded per sample, see
:func:`rlscale.core.sampling.sample_seed`) and hands ``generate`` scores whose argmax is that
token, which its greedy step then picks. A row's tokens therefore depend only on its prompt and its seed, never
on which other rows share the batch. The draw is the one ``torch.multinomial`` makes for a single
row (for one sample it takes ``argmax(p / q)`` with ``q ~ Exp(1)``, the exponential-race form of
the Gumbel-max trick), so a sample equals ``torch.manual_seed(seed); model.generate(prompt,
do_sample=True, ...)`` on that prompt alone (tested), up to floating-point differences between
padded-batch and single-prompt logits.

Temperature, top-k and top-p use transformers' own warpers, in ``generate``'s order. The
checkpoint's ``generation_config`` (which for instruct models often sets a repetition penalty,
top-k or temperature) is replaced by a neutral one, so the sampling parameters of the command
line are the only ones in force, as in vLLM when it is handed explicit ``SamplingParams``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from rlscale.core.errors import RlscaleError, UsageError
from rlscale.core.prompts import has_chat_template, render_prompt_ids
from rlscale.core.sampling import (
    SampleOutput,
    SampleRequest,
    SamplingParams,
    check_prompt_chars,
    finish_from_ids,
    longest_token_chars,
    stop_token_ids,
)


def quiet_transformers() -> None:
    """Silence transformers' and huggingface_hub's own progress bars and warnings on stderr."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def load_tokenizer(model: str):
    """Load the fast tokenizer of a checkpoint directory, as one line of error on failure."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(model)
    except (OSError, ValueError) as exc:
        raise RlscaleError(f"--model {model}: cannot load a tokenizer: "
                           f"{str(exc).splitlines()[0]}") from None


def checkpoint_stop_ids(model: str, tokenizer) -> list[int]:
    """EOS ids of a checkpoint: the tokenizer's EOS plus ``generation_config.json``'s ``eos_token_id``.

    Qwen2.5-Instruct, for example, stops at both ``<|im_end|>`` and ``<|endoftext|>``.
    """
    from transformers import GenerationConfig

    try:
        generation_eos = GenerationConfig.from_pretrained(model).eos_token_id
    except (OSError, ValueError):
        generation_eos = None
    ids = stop_token_ids(tokenizer.eos_token_id, generation_eos)
    if not ids:
        raise RlscaleError(f"--model {model}: the tokenizer has no EOS token and "
                           "generation_config.json names none; cannot tell where a completion ends")
    return ids


class PromptEncoder:
    """Prompt (string or chat messages) -> token ids by the one rule of
    :func:`rlscale.core.prompts.render_prompt_ids` (the ids ``grpo-step`` trains on too).

    A tokenizer without a chat template is refused here, once, unless ``chat_template`` is off.
    With ``context_length``, a prompt with more characters than that many tokens can cover is
    refused by its length before it is rendered or tokenised (a 10 MB prompt would otherwise
    take seconds and gigabytes to refuse).
    """

    def __init__(self, tokenizer, *, chat_template: bool = True, model: str = "the model"):
        self.tokenizer = tokenizer
        self.chat_template = chat_template
        self._token_chars: int | None = None
        if chat_template and not has_chat_template(tokenizer):
            raise UsageError(f"the tokenizer of {model} has no chat template; pass "
                             "--no-chat-template to sample from raw prompts (base models)")

    @property
    def token_chars(self) -> int:
        """The most characters one token covers (:func:`longest_token_chars`), computed once."""
        if self._token_chars is None:
            self._token_chars = longest_token_chars(self.tokenizer.get_vocab())
        return self._token_chars

    def __call__(self, prompt: str | list[dict[str, str]],
                 context_length: int | None = None) -> list[int]:
        if context_length is not None:
            try:
                check_prompt_chars(prompt, context_length, self.token_chars)
            except ValueError as exc:
                raise ValueError(f"{exc} (use --skip-invalid to drop such prompts)") from None
        return render_prompt_ids(self.tokenizer, prompt, chat_template=self.chat_template)

    def decode(self, completions: Sequence[Sequence[int]]) -> list[str]:
        return self.tokenizer.batch_decode([list(ids) for ids in completions],
                                           skip_special_tokens=True)


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"--device {device}: no CUDA device is available")
    return device


DTYPES = ("auto", "float32", "bfloat16", "float16")


def checkpoint_dtype(model: str, dtype: str = "auto") -> str:
    """``--dtype`` made explicit, the same for every backend: ``auto`` is the checkpoint's own
    (``config.json``'s ``torch_dtype``/``dtype``; float32 when it names none, as transformers).

    vLLM's own ``auto`` would serve an fp32 checkpoint in bf16 while transformers keeps fp32, so
    both backends get this name instead.
    """
    import json

    if dtype not in DTYPES:
        raise UsageError(f"--dtype {dtype}: expected one of {', '.join(DTYPES)}")
    if dtype != "auto":
        return dtype
    try:
        with open(os.path.join(model, "config.json"), encoding="utf-8") as handle:
            config = json.load(handle)
    except (OSError, ValueError):
        return "float32"
    named = config.get("dtype") or config.get("torch_dtype") if isinstance(config, dict) else None
    named = str(named).removeprefix("torch.") if named else "float32"
    return named if named in DTYPES[1:] else "float32"


def resolve_dtype(dtype: str):
    import torch

    names = {"auto": "auto", "float32": torch.float32, "bfloat16": torch.bfloat16,
             "float16": torch.float16}
    if dtype not in names:
        raise UsageError(f"--dtype {dtype}: expected one of {', '.join(names)}")
    return names[dtype]


def dtype_kwarg(dtype) -> dict[str, Any]:
    """``from_pretrained``'s dtype argument: ``dtype`` since transformers 4.56, ``torch_dtype`` before
    (vLLM may pin an older transformers on a GPU machine)."""
    import transformers

    major, minor = (int(part) for part in transformers.__version__.split(".")[:2])
    return {"dtype": dtype} if (major, minor) >= (4, 56) else {"torch_dtype": dtype}


class RowSampler:
    """Logits processor that samples each row with its own generator (see the module docstring).

    Args:
        seeds: one seed per row of the batch.
        params: temperature / top-k / top-p; with ``params.greedy`` it picks the argmax and only
            records log-probs.
        stop_ids: rows whose last token is one of these have finished; they draw nothing more.
        device: where the generators live (the model's device).
        record_logprobs: keep, per step, the log-probability of each row's chosen token under
            ``softmax(logits / T)`` (``rlscale.core.sampling.LOGPROBS_DOC``).
    """

    def __init__(self, seeds: Sequence[int], params: SamplingParams, stop_ids: Sequence[int],
                 device, *, record_logprobs: bool = False):
        import torch
        from transformers.generation.logits_process import (
            LogitsProcessorList,
            TemperatureLogitsWarper,
            TopKLogitsWarper,
            TopPLogitsWarper,
        )

        self.greedy = params.greedy
        self.scale = 1.0 if params.greedy else params.temperature
        self.generators = [] if self.greedy else [
            torch.Generator(device=device).manual_seed(int(s)) for s in seeds]
        warpers: list[Any] = []
        if params.temperature not in (0.0, 1.0):
            warpers.append(TemperatureLogitsWarper(params.temperature))
        if params.top_k > 0:
            warpers.append(TopKLogitsWarper(params.top_k))
        if params.top_p < 1.0:
            warpers.append(TopPLogitsWarper(params.top_p))
        self.warpers = LogitsProcessorList(warpers)
        self.stop_ids = torch.tensor(list(stop_ids), device=device)
        self.finished = torch.zeros(len(seeds), dtype=torch.bool, device=device)
        self.prompt_length: int | None = None
        self.record_logprobs = record_logprobs
        self.steps: list[Any] = []  # (B,) log-probs per generated position

    def __call__(self, input_ids, scores):
        import torch

        if self.prompt_length is None:
            self.prompt_length = input_ids.shape[1]
        else:
            self.finished |= torch.isin(input_ids[:, -1], self.stop_ids)
        if self.greedy:
            choice = scores
        else:
            probs = torch.softmax(self.warpers(input_ids, scores), dim=-1)
            race = torch.ones_like(probs)
            rows = race.unbind(0)
            for row in torch.nonzero(~self.finished).flatten().tolist():
                rows[row].exponential_(generator=self.generators[row])
            # generate's greedy step takes the argmax of what we return: the sampled token
            choice = probs.div_(race)
        if self.record_logprobs:
            chosen = choice.argmax(dim=-1, keepdim=True)
            logp = torch.log_softmax(scores / self.scale, dim=-1).gather(1, chosen)
            self.steps.append(logp.squeeze(1))
        return choice

    def logprobs(self) -> list[list[float]]:
        """Per row, the recorded log-probs of every generated position."""
        import torch

        if not self.steps:
            return [[] for _ in range(len(self.finished))]
        return torch.stack(self.steps, dim=1).float().cpu().tolist()


class TokenizedEngine:
    """What both rollout backends share: prompts rendered and tokenised by one ``PromptEncoder``
    (``self.encoder``), and the checkpoint's stop token ids (``self._stop_ids``). A prompt too
    long for ``self.context_length`` is refused by its length before it is tokenised."""

    encoder: PromptEncoder
    _stop_ids: list[int]
    context_length: int | None = None

    def encode_prompt(self, prompt):
        return self.encoder(prompt, self.context_length)

    def decode(self, completions):
        return self.encoder.decode(completions)

    def stop_ids(self):
        return self._stop_ids


class HfRollout(TokenizedEngine):
    """The ``hf`` backend of ``rlscale rollout`` (implements ``RolloutEngine``)."""

    backend = "hf"

    def __init__(self, model: str, params: SamplingParams, *, chat_template: bool = True,
                 lora: str | None = None, device: str = "auto", dtype: str = "auto",
                 logprobs: bool = False):
        quiet_transformers()
        import torch
        from transformers import AutoModelForCausalLM, GenerationConfig

        self.params = params
        self.logprobs = logprobs
        self.tokenizer = load_tokenizer(model)
        self.encoder = PromptEncoder(self.tokenizer, chat_template=chat_template, model=model)
        self._stop_ids = checkpoint_stop_ids(model, self.tokenizer)
        self.device = torch.device(resolve_device(device))
        self.dtype = checkpoint_dtype(model, dtype)
        try:
            net = AutoModelForCausalLM.from_pretrained(
                model, **dtype_kwarg(resolve_dtype(self.dtype)))
        except (OSError, ValueError) as exc:
            raise RlscaleError(f"--model {model}: cannot load the model: "
                               f"{str(exc).splitlines()[0]}") from None
        if lora is not None:
            net = _merge_lora(net, lora)
        self.model = net.to(self.device).eval()
        pad = self.tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else self._stop_ids[0]
        # A neutral generation config: nothing from the checkpoint's defaults leaks into sampling.
        self.model.generation_config = GenerationConfig(
            eos_token_id=list(self._stop_ids), pad_token_id=self.pad_id,
            bos_token_id=self.tokenizer.bos_token_id)
        self.context_length = getattr(self.model.config, "max_position_embeddings", None)

    def describe(self) -> dict[str, Any]:
        """Engine facts for each record's ``sampling``: a sample depends on its prompt and seed
        (and these versions, device and dtype), not on its batch, up to float rounding."""
        import torch
        import transformers

        return {"engine": f"transformers {transformers.__version__}, torch {torch.__version__}",
                "dtype": self.dtype, "device": self.device.type}

    def generate(self, requests: Sequence[SampleRequest]) -> list[SampleOutput]:
        import torch
        from transformers import GenerationConfig, LogitsProcessorList

        if not requests:
            return []
        width = max(len(r.prompt_ids) for r in requests)
        input_ids = torch.full((len(requests), width), self.pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(requests), width), dtype=torch.long)
        for row, request in enumerate(requests):
            start = width - len(request.prompt_ids)  # left padding: prompts end where text begins
            input_ids[row, start:] = torch.tensor(request.prompt_ids)
            attention_mask[row, start:] = 1
        config = GenerationConfig(
            do_sample=False, num_beams=1, max_new_tokens=self.params.max_tokens,
            eos_token_id=list(self._stop_ids), pad_token_id=self.pad_id)
        processors = LogitsProcessorList()
        sampler = None
        if not self.params.greedy or self.logprobs:
            sampler = RowSampler([r.seed for r in requests], self.params, self._stop_ids,
                                 self.device, record_logprobs=self.logprobs)
            processors.append(sampler)
        with torch.inference_mode():
            sequences = self.model.generate(
                input_ids=input_ids.to(self.device), attention_mask=attention_mask.to(self.device),
                generation_config=config, logits_processor=processors)
        generated = sequences[:, width:].tolist()
        stops = set(self._stop_ids)
        logprobs = sampler.logprobs() if self.logprobs else [None] * len(generated)
        return [finish_from_ids(ids, stops, self.params.max_tokens, lp)
                for ids, lp in zip(generated, logprobs, strict=True)]


def _merge_lora(net, lora: str):
    """Apply a peft LoRA adapter and merge it into the weights (faster sampling, same function)."""
    if not os.path.isfile(os.path.join(lora, "adapter_config.json")):
        raise RlscaleError(f"--lora {lora}: not a LoRA adapter directory (no adapter_config.json)")
    from peft import PeftModel

    try:
        return PeftModel.from_pretrained(net, lora).merge_and_unload()
    except (OSError, ValueError, KeyError) as exc:
        raise RlscaleError(f"--lora {lora}: cannot load the adapter: "
                           f"{str(exc).splitlines()[0]}") from None
