"""``rlscale.rollout``: sample ``n`` completions per problem record (streaming).

The record format, seeds and token conventions are those of ``rlscale rollout`` (see
:mod:`rlscale.cli.rollout` and :mod:`rlscale.core.sampling`); prompts are rendered by
:func:`rlscale.core.prompts.render_prompt_ids`, the renderer ``grpo-step`` trains with.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from rlscale.api._records import SOURCE, located
from rlscale.core.errors import OptionError, UsageError

DEFAULT_BATCH = {"hf": 8, "vllm": 512, "openai": 256}
_LOG = logging.getLogger("rlscale.rollout")


def rollout(
    records: Iterable[Mapping[str, Any]],
    *,
    model: str,
    n: int = 8,
    temperature: float = 1.0,
    top_p: float = 1.0,
    top_k: int = -1,
    max_tokens: int = 4096,
    max_prompt_tokens: int | None = None,
    seed: int = 0,
    backend: str = "auto",
    batch_size: int | None = None,
    tensor_parallel_size: int = 1,
    lora: str | None = None,
    chat_template: bool = True,
    token_ids: bool = True,
    logprobs: bool = False,
    shard: str | None = None,
    device: str = "auto",
    dtype: str = "auto",
    vllm_arg: Iterable[str] | None = None,
    base_url: str | None = None,
    api_key_env: str = "OPENAI_API_KEY",
    tokenizer: str | None = None,
    concurrency: int = 32,
    max_retries: int = 5,
    request_timeout: float = 600.0,
    expect_step: int | None = None,
    resume_from: Iterable[Mapping[str, Any]] | None = None,
    log: Callable[[str], None] | None = None,
) -> Rollout:
    """Sample ``n`` completions of each record's ``prompt``; iterate to get one record per sample.

    Records: ``prompt`` (a string or ``{role, content}`` messages) and optionally ``prompt_id``
    (else curate's id of a VeRL row, or a hash of the prompt). Each output record keeps every
    input field and adds ``prompt_id``, ``sample_idx``, ``completion``, ``finish_reason``, token
    counts and (``token_ids``) ids, ``model``, ``seed`` and ``sampling``; in input order, then
    ``sample_idx`` order, ``batch_size`` problems at a time. Each sample's seed derives from
    (``seed``, ``prompt_id``, ``sample_idx``). The options are the command's (``rlscale rollout
    --help``): ``backend`` ``hf``, ``vllm``, ``openai`` (a server at ``base_url``) or ``auto``.

    ``resume_from`` (the command's ``--resume``): the records an earlier run of the same
    settings wrote (say, read back from its output); the samples they hold are not drawn again,
    and a record written with another seed, other sampling parameters, prompt rendering or
    weights is refused. ``log`` gets one-line notes (warnings, the resume summary; default: the
    ``rlscale.rollout`` logger).

    Nothing runs until the first sample is asked for (or :meth:`Rollout.start`); the model is
    loaded then and released when the samples run out (or on :meth:`Rollout.close`). Bad options
    raise :class:`~rlscale.core.errors.OptionError` (or UsageError for combinations); a bad
    record raises :class:`~rlscale.core.errors.RecordError` naming its index.

    >>> samples = rollout([{"prompt": "1 + 1 ="}], model="ckpt/", n=0)  # nothing runs yet
    >>> next(samples)
    Traceback (most recent call last):
    ...
    rlscale.core.errors.OptionError: n must be at least 1, got 0
    """
    options = {key: value for key, value in locals().items()
               if key not in ("records", "resume_from", "log")}
    return Rollout(records, options, resume_from=resume_from, log=log)


def _default_log(message: str) -> None:
    if message.startswith("warning: "):
        _LOG.warning(message.removeprefix("warning: "))
    else:
        _LOG.info(message)


class Rollout(Iterator[dict[str, Any]]):
    """The samples of one :func:`rollout` call, and what it did: ``backend`` (the one chosen),
    ``plan`` (problems read, complete, planned: :class:`~rlscale.core.sampling.PlanStats`),
    ``n_samples``, ``n_completion_tokens`` and ``started`` (``time.perf_counter()`` when the
    engine was ready and sampling began)."""

    def __init__(self, records: Iterable[Mapping[str, Any]], options: dict[str, Any], *,
                 resume_from: Iterable[Mapping[str, Any]] | None = None,
                 log: Callable[[str], None] | None = None):
        from rlscale.core.sampling import PlanStats

        self._records, self._options, self._resume = records, options, resume_from
        self._log = log or _default_log
        self._samples: Iterator[dict[str, Any]] | None = None
        self._engine: Any = None
        self.backend: str | None = None
        self.plan = PlanStats()
        self.n_samples = self.n_completion_tokens = 0
        self.started: float | None = None

    def start(self) -> Rollout:
        """Check the options, load the engine and read ``resume_from``; nothing is sampled yet."""
        if self._samples is None:
            try:
                self._samples = self._start(**self._options)
            except BaseException:
                self.close()
                raise
        return self

    def __next__(self) -> dict[str, Any]:
        self.start()
        try:
            record = next(self._samples)
        except BaseException:
            self.close()  # exhausted or failed: the engine is no longer needed
            raise
        self.n_samples += 1
        self.n_completion_tokens += record["n_completion_tokens"]
        return record

    def close(self) -> None:
        """Release the engine (a server connection, a model); idempotent."""
        engine, self._engine = self._engine, None
        close = getattr(engine, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> Rollout:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _start(self, *, model, n, temperature, top_p, top_k, max_tokens, max_prompt_tokens,
               seed, backend, batch_size, tensor_parallel_size, lora, chat_template, token_ids,
               logprobs, shard, device, dtype, vllm_arg, base_url, api_key_env, tokenizer,
               concurrency, max_retries, request_timeout, expect_step):
        from rlscale.core.sampling import (
            SamplingParams,
            check_sampling,
            parse_engine_args,
            parse_shard,
            plan_problems,
            rollout_records,
        )

        check_sampling(n, temperature, top_p, top_k if top_k != 0 else -1, max_tokens, seed)
        params = SamplingParams(n=n, temperature=temperature, top_p=top_p, top_k=top_k,
                                max_tokens=max_tokens, seed=seed)
        shard_spec = parse_shard(shard)
        engine_args = parse_engine_args(vllm_arg)
        for name, value in (("max_prompt_tokens", max_prompt_tokens),
                            ("batch_size", batch_size),
                            ("tensor_parallel_size", tensor_parallel_size)):
            if value is not None and value < 1:
                raise OptionError(name, f"must be at least 1, got {value}")
        if lora is not None and not os.path.isdir(lora):
            raise OptionError("lora", f"{lora}: no such directory")
        chosen = self.backend = _choose_backend(backend, self._log)
        _check_combination(chosen, base_url=base_url, tokenizer=tokenizer,
                           tensor_parallel_size=tensor_parallel_size, engine_args=engine_args,
                           device=device, dtype=dtype, max_prompt_tokens=max_prompt_tokens)
        if params.greedy and n > 1:
            self._log(f"warning: --temperature 0 is greedy decoding; the {n} samples of each "
                      "problem will be identical")

        if chosen == "openai":  # cheap to start, and what it serves identifies the weights
            from rlscale.engines.fingerprint import served_fingerprint

            self._engine = _make_openai(
                base_url, model, params, chat_template=chat_template, lora=lora,
                tokenizer=tokenizer, logprobs=logprobs, concurrency=concurrency,
                max_retries=max_retries, request_timeout=request_timeout,
                expect_step=expect_step, api_key_env=api_key_env, log=self._log)
            weights = served_fingerprint(self._engine.model, self._engine.served.get("root"))
        else:
            _check_model_path(model)
            from rlscale.engines.fingerprint import weights_fingerprint

            weights = weights_fingerprint(model, lora)
        resume_state = None
        if self._resume is not None:
            resume_state = self._read_resume(params, {**params.describe(),
                                                      "chat_template": chat_template,
                                                      "weights": weights})
        if self._engine is None:
            self._engine = _make_engine(
                chosen, model, params, chat_template=chat_template, lora=lora, device=device,
                dtype=dtype, tensor_parallel_size=tensor_parallel_size, engine_args=engine_args,
                logprobs=logprobs)
        engine = self._engine
        describe = getattr(engine, "describe", None)
        extra = {"chat_template": chat_template, "lora": lora, "weights": weights,
                 **(describe() if describe is not None else {})}
        keep_ids = token_ids and (chosen != "openai" or tokenizer is not None)
        items = located(self._records)
        problems = plan_problems(items, params=params, encode=engine.encode_prompt,
                                 invalid=items.invalid, shard=shard_spec, resume=resume_state,
                                 context_length=engine.context_length,
                                 max_prompt_tokens=max_prompt_tokens, stats=self.plan)
        self.started = time.perf_counter()
        return rollout_records(problems, engine, params, model=model, keep_token_ids=keep_ids,
                               batch_size=batch_size or DEFAULT_BATCH[chosen], extra=extra)

    def _read_resume(self, params, sampling: dict[str, Any]):
        """The samples ``resume_from`` holds, each checked against this run.

        The backend may change between runs (samples of either backend are samples of the same
        policy); the seed, the sampling parameters, the prompt rendering and the weights (their
        fingerprint, :mod:`rlscale.engines.fingerprint`) may not.
        """
        from rlscale.core.sampling import ResumeState
        from rlscale.io.jsonl import RecordReader

        state = ResumeState(seed=params.seed, sampling=sampling)
        for record, where in located(self._resume):
            state.add(record, where.source, where.line)
        complete, partial = state.summary(params.n)
        name = (", ".join(self._resume.inputs) if isinstance(self._resume, RecordReader)
                else SOURCE)
        self._log(f"resuming {name}: {state.n_records} samples, {complete} problems complete, "
                  f"{partial} partial")
        return state


def _check_combination(chosen: str, *, base_url, tokenizer, tensor_parallel_size, engine_args,
                       device, dtype, max_prompt_tokens) -> None:
    """Refuse options that the chosen backend does not take."""
    if (base_url is not None) != (chosen == "openai"):
        raise UsageError("--base-url needs --backend openai" if base_url is not None
                         else "--backend openai needs --base-url URL")
    if chosen != "openai" and tokenizer is not None:
        raise UsageError("--tokenizer is for --backend openai (other backends use --model's)")
    if chosen == "openai" and (tensor_parallel_size != 1 or engine_args or device != "auto"
                               or dtype != "auto"):
        raise UsageError("--tensor-parallel-size, --vllm-arg, --device and --dtype are the "
                         "server's business with --backend openai")
    if chosen == "openai" and max_prompt_tokens is not None and tokenizer is None:
        raise UsageError("--max-prompt-tokens with --backend openai needs --tokenizer DIR")
    if chosen == "hf" and (tensor_parallel_size != 1 or engine_args):
        flag = "--tensor-parallel-size" if tensor_parallel_size != 1 else "--vllm-arg"
        raise UsageError(f"{flag} needs --backend vllm")
    if chosen == "vllm" and device != "auto":
        raise UsageError("--device is for --backend hf; vLLM places the model itself")


def _check_model_path(model: str) -> None:
    from rlscale.core.errors import RlscaleError

    if not os.path.isdir(model) and (os.sep in model or model.startswith(".")):
        raise RlscaleError(f"--model {model}: no such directory")


def _choose_backend(requested: str, log: Callable[[str], None]) -> str:
    """``backend`` resolved: ``auto`` is vLLM when it is installed, imports and has a GPU."""
    import importlib.util

    from rlscale.core.sampling import choose_backend

    if requested in ("hf", "openai"):
        if requested == "openai":
            return "openai"
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
            log(f"warning: {exc}; using --backend hf")
            vllm_installed = False
    return choose_backend(requested, vllm_installed=vllm_installed, gpu_available=gpu)


def _make_openai(base_url, model, params, *, api_key_env: str, log: Callable[[str], None],
                 **kwargs):
    from rlscale.engines.openai_rollout import OpenAIRollout

    api_key = os.environ.get(api_key_env)
    if api_key is None and api_key_env != "OPENAI_API_KEY":
        raise OptionError("api_key_env", f"{api_key_env}: the variable is not set")
    engine = OpenAIRollout(base_url, model, params, api_key=api_key,
                           tokenizer_dir=kwargs.pop("tokenizer"), **kwargs)
    if engine.seed_status == "no":
        log("warning: the server ignores 'seed' (the same seed gave different samples); "
            "samples are not reproducible and records say seed_honoured: no")
    return engine


def _make_engine(backend: str, model: str, params, *, chat_template: bool, lora: str | None,
                 device: str, dtype: str, tensor_parallel_size: int, engine_args: dict,
                 logprobs: bool):
    if backend == "vllm":
        from rlscale.engines.vllm_rollout import VllmRollout

        return VllmRollout(model, params, chat_template=chat_template, lora=lora, dtype=dtype,
                           tensor_parallel_size=tensor_parallel_size, engine_args=engine_args,
                           logprobs=logprobs)
    from rlscale.engines.hf_rollout import HfRollout

    return HfRollout(model, params, chat_template=chat_template, lora=lora, device=device,
                     dtype=dtype, logprobs=logprobs)
