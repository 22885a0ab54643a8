"""Pure logic of ``rlscale rollout``: sampling parameters, seeds, shards, resume, prompt
lengths, batching.

Nothing here imports torch, transformers or vLLM. The engines (``rlscale.engines.hf_rollout``,
``vllm_rollout``, ``openai_rollout``) implement the small :class:`RolloutEngine` interface; this
module plans which samples to draw, derives their seeds and turns engine outputs into records.
How a prompt becomes token ids is :mod:`rlscale.core.prompts`; the whole run (options, engine,
resume) is :func:`rlscale.rollout`.

Reproducibility contract
    Every sample has its own seed, derived only from the run seed, the ``prompt_id`` and the
    ``sample_idx`` (:func:`sample_seed`). Samples therefore do not depend on the batch size, on
    the order of the input, on sharding or on resuming. The seeds of one prompt are consecutive
    (``prompt_seed + sample_idx``), which is exactly how vLLM seeds the ``n`` children of a
    request ``SamplingParams(n=k, seed=s)`` (child ``i`` gets ``s + i``), so one vLLM request per
    prompt reproduces the per-sample seeds.

Token conventions (the same as VeRL's rollout)
    ``completion_ids`` include the stop token (EOS) when ``finish_reason`` is ``"stop"``: the
    policy must learn to emit it, so it belongs to the response that ``grpo-step`` trains on.
    ``completion`` is the decoded text without that stop token and without special tokens.
    ``finish_reason`` is ``"length"`` when ``max_tokens`` tokens were generated without a stop.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from rlscale.core.errors import OptionError, RecordError, UsageError
from rlscale.core.identity import prompt_key
from rlscale.core.prompts import check_prompt
from rlscale.core.records import json_type_name

FINISH_REASONS = ("stop", "length")
# Seeds live in [0, 2**62) so that prompt_seed + sample_idx still fits a signed 64-bit integer,
# which is what torch.Generator.manual_seed and vLLM accept.
SEED_BITS = 62
BACKENDS = ("auto", "hf", "vllm", "openai")
# Fields that describe one earlier sample of a record; a new sample must not inherit them.
STALE_SAMPLE_FIELDS = ("old_logprobs", "reward", "pred", "verdict", "advantage")
LOGPROBS_DOC = (
    "old_logprobs[t] = log softmax(logits_t / T)[completion_ids[t]] under the sampling model, "
    "before top-k/top-p truncation (T = 1 for greedy): the log pi_old that GRPO's ratio uses, "
    "as VeRL's actor computes it."
)


# --- sampling parameters ---------------------------------------------------------------------

SAMPLING_FLAGS = {"n": "-n"}  # the command's flag for a parameter, where it is not --name


def check_sampling(n: int, temperature: float, top_p: float, top_k: int, max_tokens: int,
                   seed: int) -> None:
    """Refuse bad sampling parameters with :class:`OptionError` naming the parameter.

    >>> check_sampling(0, 1.0, 1.0, -1, 16, 0)
    Traceback (most recent call last):
    ...
    rlscale.core.errors.OptionError: n must be at least 1, got 0
    """
    if n < 1:
        raise OptionError("n", f"must be at least 1, got {n}")
    if not temperature >= 0 or temperature == float("inf"):
        raise OptionError("temperature", f"must be a finite number >= 0, got {temperature}")
    if not 0 < top_p <= 1:
        raise OptionError("top_p", f"must be in (0, 1], got {top_p}")
    if top_k < -1:
        raise OptionError("top_k", f"must be -1 (off) or a positive integer, got {top_k}")
    if max_tokens < 1:
        raise OptionError("max_tokens", f"must be at least 1, got {max_tokens}")
    if seed < 0:
        raise OptionError("seed", f"must be >= 0, got {seed}")


@dataclass(frozen=True)
class SamplingParams:
    """What to sample, independent of the backend.

    ``temperature == 0`` means greedy decoding; ``top_k == -1`` means no top-k filter (vLLM's
    convention); ``top_p == 1`` means no nucleus filter. Defaults are the paper's training rollout
    (T = 1.0, top-p 1.0, top-k off, G = 8, 4096 response tokens; paper-method.md §2.1).
    """

    n: int = 8
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = -1
    max_tokens: int = 4096
    seed: int = 0

    def __post_init__(self) -> None:
        if self.top_k == 0:
            object.__setattr__(self, "top_k", -1)  # 0 and -1 both mean "off"
        try:
            check_sampling(self.n, self.temperature, self.top_p, self.top_k, self.max_tokens,
                           self.seed)
        except OptionError as exc:
            raise UsageError(exc.with_flag(SAMPLING_FLAGS)) from None

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def describe(self) -> dict[str, Any]:
        """What every output record's ``sampling`` object echoes (and resume checks)."""
        return {"temperature": self.temperature, "top_p": self.top_p, "top_k": self.top_k,
                "max_tokens": self.max_tokens}


# --- seeds and ids -------------------------------------------------------------------------


def derive_prompt_id(prompt: str | list[dict[str, str]]) -> str:
    """Stable id for a prompt: 16 hex digits of SHA-256 of the prompt.

    The prompt is hashed as compact JSON with sorted keys, so a string prompt and the same text
    as a chat message list get different ids (they render differently).

    >>> derive_prompt_id("What is 1 + 1?")
    'f9f244e3d4f2199b'
    """
    canonical = orjson.dumps(prompt, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()[:16]


def default_prompt_id(record: Mapping[str, Any], prompt: str | list[dict[str, str]]) -> str:
    """The ``prompt_id`` of a record that has none, chosen the way ``rlscale curate`` chooses it.

    A VeRL row (``data_source`` and an integer ``extra_info.index``, paper-method.md §5.1) gets
    ``"<data_source>#<index>"``, the id ``curate`` gives the same row; anything else gets
    :func:`derive_prompt_id` of its prompt.

    >>> default_prompt_id({"data_source": "math__x", "extra_info": {"index": 13}}, "Q")
    'math__x#13'
    """
    extra = record.get("extra_info")
    source = record.get("data_source")
    if isinstance(extra, Mapping) and isinstance(source, str) and source:
        index = extra.get("index")
        if isinstance(index, int) and not isinstance(index, bool):
            return f"{source}#{index}"
    return derive_prompt_id(prompt)


def prompt_seed(seed: int, prompt_id: str | int | float) -> int:
    """Base seed of one prompt's samples: a hash of (run seed, prompt_id) in [0, 2**62).

    The id enters as :func:`rlscale.core.identity.prompt_key`, so ``1`` and ``1.0`` are one
    prompt with one seed and ``"1"`` is another.

    >>> prompt_seed(0, "p1") == prompt_seed(0, "p1") != prompt_seed(1, "p1")
    True
    """
    text = f"rlscale-rollout\x00{seed}\x00{prompt_key(prompt_id)}"
    digest = hashlib.sha256(text.encode()).digest()
    return int.from_bytes(digest[:8], "big") >> (64 - SEED_BITS)


def sample_seed(seed: int, prompt_id: str | int | float, sample_idx: int) -> int:
    """Seed of one sample: ``prompt_seed(seed, prompt_id) + sample_idx`` (see module docstring)."""
    return prompt_seed(seed, prompt_id) + sample_idx


def contiguous_runs(indices: Sequence[int]) -> list[tuple[int, int]]:
    """Split sorted sample indices into ``(start, count)`` runs of consecutive integers.

    One vLLM request ``SamplingParams(n=count, seed=prompt_seed + start)`` covers each run.

    >>> contiguous_runs([0, 1, 2, 5, 6, 9])
    [(0, 3), (5, 2), (9, 1)]
    """
    runs: list[tuple[int, int]] = []
    for index in indices:
        if runs and runs[-1][0] + runs[-1][1] == index:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((index, 1))
    return runs


# --- shards --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shard:
    """``--shard i/n``: this invocation samples the problems at positions ``p`` with ``p % n == i``.

    Positions count every record read from the input (0-based, in input order), so ``n``
    machines given the same input and shards ``0/n`` … ``n-1/n`` split it exactly.
    """

    index: int = 0
    count: int = 1

    def selects(self, position: int) -> bool:
        return position % self.count == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str | None) -> Shard:
    """Parse ``--shard i/n`` (0 <= i < n).

    >>> parse_shard("1/4")
    Shard(index=1, count=4)
    >>> parse_shard("4/4")
    Traceback (most recent call last):
    ...
    rlscale.core.errors.UsageError: --shard 4/4: the index must be in 0..3
    """
    if text is None:
        return Shard()
    parts = text.strip().split("/")
    try:
        if len(parts) != 2:
            raise ValueError
        index, count = int(parts[0]), int(parts[1])
    except ValueError:
        raise UsageError(f"--shard {text}: expected INDEX/COUNT, e.g. 0/4") from None
    if count < 1:
        raise UsageError(f"--shard {text}: the count must be at least 1")
    if not 0 <= index < count:
        raise UsageError(f"--shard {text}: the index must be in 0..{count - 1}")
    return Shard(index, count)


# --- engine arguments ----------------------------------------------------------------------


def parse_engine_args(items: Iterable[str] | None, option: str = "--vllm-arg") -> dict[str, Any]:
    """Parse repeated ``KEY=VALUE`` options; VALUE is read as JSON when it parses, else a string.

    >>> parse_engine_args(["max_model_len=8192", "enforce_eager=true", "dtype=bfloat16"])
    {'max_model_len': 8192, 'enforce_eager': True, 'dtype': 'bfloat16'}
    """
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key.isidentifier():
            raise UsageError(f"{option} {item!r}: expected KEY=VALUE, e.g. max_model_len=8192")
        try:
            out[key] = orjson.loads(value)
        except orjson.JSONDecodeError:
            out[key] = value
    return out


# --- prompt lengths and stop tokens ---------------------------------------------------------


def longest_token_chars(vocab: Iterable[str]) -> int:
    """The most characters one token of ``vocab`` (``tokenizer.get_vocab()``) can cover.

    A token's vocabulary string is at least as long as the text it stands for (byte-level BPE:
    one character per byte; SentencePiece: ``▁`` for the space), so a text of ``n`` characters
    needs at least ``n / longest_token_chars`` tokens.

    >>> longest_token_chars(["a", "Ġthe", "<|im_end|>"])
    10
    """
    return max((len(token) for token in vocab), default=1) or 1


def check_prompt_chars(prompt: str | list[dict[str, str]], context_length: int | None,
                       token_chars: int) -> None:
    """Refuse, before rendering or tokenising it, a prompt too long for the context.

    Tokenising a 10 MB prompt only to refuse it takes seconds and gigabytes; counting its
    characters is enough to know it cannot fit.

    Raises:
        ValueError: the prompt has more characters than ``context_length`` tokens can cover.
    """
    if context_length is None:
        return
    n_chars = len(prompt) if isinstance(prompt, str) else \
        sum(len(m.get("content", "")) for m in prompt if isinstance(m, dict)
            and isinstance(m.get("content"), str))
    if n_chars > context_length * token_chars:
        at_least = -(-n_chars // token_chars)
        raise ValueError(f"prompt has {n_chars} characters, at least {at_least} tokens: more "
                         f"than the model's context of {context_length} tokens")


def stop_token_ids(*sources: int | Sequence[int] | None) -> list[int]:
    """Merge EOS ids from the tokenizer and the generation config, in order, without repeats.

    >>> stop_token_ids(151645, [151645, 151643], None)
    [151645, 151643]
    """
    out: list[int] = []
    for source in sources:
        if source is None:
            continue
        for token in [source] if isinstance(source, int) else source:
            if token is not None and int(token) not in out:
                out.append(int(token))
    return out


# --- resume --------------------------------------------------------------------------------


@dataclass
class ResumeState:
    """Which samples an existing output file already holds, checked against this run.

    Feed it the records of the file (:meth:`add`); a prompt is complete when it has every
    ``sample_idx`` in ``0..n-1``; :meth:`missing` lists the ones still to draw. Records written
    with another seed or other sampling parameters are refused: mixing them would silently
    change the experiment.
    """

    seed: int
    sampling: Mapping[str, Any]
    done: dict[str, set[int]] = field(default_factory=dict)
    n_records: int = 0

    def add(self, record: Mapping[str, Any], source: str, line: int) -> None:
        prompt_id = record.get("prompt_id")
        if not isinstance(prompt_id, (str, int, float)) or isinstance(prompt_id, bool):
            raise RecordError(source, line, "resume: missing or invalid 'prompt_id'")
        sample_idx = record.get("sample_idx")
        if not isinstance(sample_idx, int) or isinstance(sample_idx, bool) or sample_idx < 0:
            raise RecordError(source, line, "resume: missing or invalid 'sample_idx'")
        if "seed" in record and record["seed"] != self.seed:
            raise RecordError(source, line, f"resume: written with --seed {record['seed']}, this "
                              f"run has --seed {self.seed}; use the same seed or another -o file")
        previous = record.get("sampling")
        if isinstance(previous, Mapping):
            for key, value in self.sampling.items():
                if key == "weights" and previous.get(key) != value:
                    # the same path can hold other weights (a cron loop's --model ckpt)
                    raise RecordError(source, line, f"resume: written by other weights "
                                      f"({previous.get(key) or 'not recorded'}), this run's "
                                      f"model is {value}; use another -o file")
                if key in previous and previous[key] != value:
                    raise RecordError(source, line, f"resume: written with "
                                      f"{_as_option(key, previous[key])}, this run has "
                                      f"{_as_option(key, value)}")
        self.done.setdefault(prompt_key(prompt_id), set()).add(sample_idx)
        self.n_records += 1

    def missing(self, prompt_id: str | int | float, n: int) -> list[int]:
        have = self.done.get(prompt_key(prompt_id), set())
        return [i for i in range(n) if i not in have]

    def summary(self, n: int) -> tuple[int, int]:
        """(complete prompts, partial prompts) for ``n`` samples per prompt."""
        complete = sum(1 for have in self.done.values() if all(i in have for i in range(n)))
        return complete, len(self.done) - complete


def _as_option(key: str, value: Any) -> str:
    """How a ``sampling`` entry is spelled on the command line, for resume errors."""
    option = "--" + key.replace("_", "-")
    if isinstance(value, bool):
        return option if value else option.replace("--", "--no-", 1)
    return f"{option} {value}"


# --- the engine interface and the pipeline -------------------------------------------------


@dataclass(frozen=True)
class SampleRequest:
    """One sequence to generate: prompt tokens, which sample of the prompt, and its seed.

    ``prompt`` (the checked prompt: text or messages) and ``prompt_id`` are for engines that send
    the prompt itself rather than its tokens (an HTTP server) and name it in their errors.
    """

    prompt_ids: tuple[int, ...]
    sample_idx: int
    seed: int
    prompt: Any = None
    prompt_id: Any = None


@dataclass(frozen=True)
class SampleOutput:
    """What an engine returns per request: generated ids (stop token included), why it ended, and
    with ``--logprobs`` the log-probability of each generated token (see :data:`LOGPROBS_DOC`)."""

    completion_ids: tuple[int, ...]
    finish_reason: str
    logprobs: tuple[float, ...] | None = None
    # Set by engines that get text and token counts from a server instead of token ids.
    text: str | None = field(default=None, repr=False)
    n_prompt_tokens: int | None = field(default=None, repr=False)
    n_completion_tokens: int | None = field(default=None, repr=False)


class RolloutEngine(Protocol):
    """What the pipeline needs from a backend (HF transformers, vLLM, or a test fake)."""

    backend: str
    context_length: int | None

    def encode_prompt(self, prompt: str | list[dict[str, str]]) -> list[int]: ...

    def generate(self, requests: Sequence[SampleRequest]) -> list[SampleOutput]: ...

    def decode(self, completions: Sequence[Sequence[int]]) -> list[str]: ...

    def stop_ids(self) -> Sequence[int]: ...


@dataclass
class Problem:
    """One input record planned for sampling."""

    record: dict[str, Any]
    prompt_id: str | int | float
    prompt_ids: list[int]
    sample_indices: list[int]
    prompt: Any = None


@dataclass
class PlanStats:
    read: int = 0
    in_shard: int = 0
    complete: int = 0
    planned: int = 0


def plan_problems(
    records: Iterable[tuple[dict[str, Any], Any]],
    *,
    params: SamplingParams,
    encode: Callable[[str | list[dict[str, str]]], list[int]] | None,
    invalid: Callable[[Any, str], None],
    shard: Shard = Shard(),
    resume: ResumeState | None = None,
    context_length: int | None = None,
    max_prompt_tokens: int | None = None,
    stats: PlanStats | None = None,
) -> Iterator[Problem]:
    """Select, validate and tokenize the problems this invocation samples, streaming.

    Args:
        records: ``(record, where)`` pairs, as :class:`rlscale.io.jsonl.RecordReader` yields.
        encode: prompt (string or messages) -> prompt token ids (chat template already decided);
            None when the engine sends the prompt itself (no token checks here then).
        invalid: called with ``(where, message)`` for a bad record; raises or skips (see
            ``RecordReader.invalid``).
        shard: which positions to keep. Duplicate ``prompt_id``s are refused over the whole
            input, so every shard of a file agrees on what is valid.
        resume: samples already written; fully written prompts are skipped.
        context_length: the model's context; prompts that cannot fit ``max_tokens`` more tokens
            are refused (VeRL filters them too, ``filter_overlong_prompts``).
        max_prompt_tokens: refuse longer prompts (VeRL's ``max_prompt_length``, 2048 in the
            paper's runs, paper-method.md §2.1).
    """
    stats = stats if stats is not None else PlanStats()
    first_seen: dict[str, str] = {}
    for position, (record, where) in enumerate(records):
        stats.read += 1
        in_shard = shard.selects(position)
        prompt_id = record.get("prompt_id")
        try:
            if prompt_id is None:
                prompt = check_prompt(record.get("prompt"))
                prompt_id = default_prompt_id(record, prompt)
            elif not isinstance(prompt_id, (str, int, float)) or isinstance(prompt_id, bool):
                raise ValueError(f"field 'prompt_id' must be a string or a number, got "
                                 f"{json_type_name(prompt_id)}")
            elif in_shard:
                if "prompt" not in record:
                    raise ValueError("missing required field 'prompt'")
                prompt = check_prompt(record["prompt"])
        except ValueError as exc:
            if in_shard:
                invalid(where, str(exc))
            continue
        key = prompt_key(prompt_id)
        if key in first_seen:
            if in_shard:
                invalid(where, f"duplicate prompt_id {key} (first at {first_seen[key]}); give "
                        "every problem its own prompt_id")
            continue
        first_seen[key] = str(where)  # not the Where itself: it holds the raw line
        if not in_shard:
            continue
        stats.in_shard += 1
        sample_indices = resume.missing(prompt_id, params.n) if resume else list(range(params.n))
        if not sample_indices:
            stats.complete += 1
            continue
        try:
            prompt_ids = encode(prompt) if encode is not None else None
        except ValueError as exc:
            invalid(where, str(exc))
            continue
        if prompt_ids is None:
            stats.planned += 1
            out = dict(record)
            out["prompt_id"] = prompt_id
            yield Problem(out, prompt_id, [], sample_indices, prompt)
            continue
        if not prompt_ids:
            invalid(where, "the prompt renders to zero tokens")
            continue
        if max_prompt_tokens is not None and len(prompt_ids) > max_prompt_tokens:
            invalid(where, f"prompt has {len(prompt_ids)} tokens, more than --max-prompt-tokens "
                    f"{max_prompt_tokens} (use --skip-invalid to drop such prompts)")
            continue
        if context_length is not None and len(prompt_ids) + params.max_tokens > context_length:
            invalid(where, f"prompt has {len(prompt_ids)} tokens; with --max-tokens "
                    f"{params.max_tokens} it exceeds the model's context of {context_length} "
                    "tokens (use --skip-invalid to drop such prompts)")
            continue
        stats.planned += 1
        out = dict(record)
        out["prompt_id"] = prompt_id
        yield Problem(out, prompt_id, prompt_ids, sample_indices, prompt)


def batched(items: Iterable[Problem], size: int) -> Iterator[list[Problem]]:
    """Group problems into lists of ``size`` (the last one may be shorter)."""
    batch: list[Problem] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def rollout_records(
    problems: Iterable[Problem],
    engine: RolloutEngine,
    params: SamplingParams,
    *,
    batch_size: int,
    model: str,
    keep_token_ids: bool = True,
    extra: Mapping[str, Any] | None = None,
) -> Iterator[dict[str, Any]]:
    """Sample every planned problem and yield one record per sample, batch by batch.

    Only one batch of ``batch_size`` problems is in memory at a time. Within a batch, records
    come in input order, then ``sample_idx`` order. Each record keeps every input field and adds
    the fields listed in the module docstring of :mod:`rlscale.cli.rollout`.
    """
    sampling = {"backend": engine.backend, **params.describe(), **(extra or {})}
    stops = set(engine.stop_ids())
    for batch in batched(problems, batch_size):
        requests = [
            SampleRequest(tuple(problem.prompt_ids), sample_idx,
                          sample_seed(params.seed, problem.prompt_id, sample_idx),
                          problem.prompt, problem.prompt_id)
            for problem in batch for sample_idx in problem.sample_indices
        ]
        outputs = engine.generate(requests)
        if len(outputs) != len(requests):
            raise RuntimeError(f"{engine.backend} returned {len(outputs)} outputs for "
                               f"{len(requests)} requests")
        undecoded = [i for i, out in enumerate(outputs) if out.text is None]
        decoded = iter(engine.decode([_strip_stop(outputs[i], stops) for i in undecoded])
                       if undecoded else [])
        texts = [out.text if out.text is not None else next(decoded) for out in outputs]
        position = 0
        for problem in batch:
            for sample_idx in problem.sample_indices:
                out, text = outputs[position], texts[position]
                position += 1
                n_completion = (out.n_completion_tokens if out.n_completion_tokens is not None
                                else len(out.completion_ids))
                record = dict(problem.record)
                for stale in STALE_SAMPLE_FIELDS:
                    record.pop(stale, None)
                record.update({
                    "prompt_id": problem.prompt_id,
                    "sample_idx": sample_idx,
                    "completion": text,
                    "finish_reason": out.finish_reason,
                    "n_prompt_tokens": (out.n_prompt_tokens if out.n_prompt_tokens is not None
                                        else len(problem.prompt_ids)),
                    "n_completion_tokens": n_completion,
                })
                if keep_token_ids and problem.prompt_ids:
                    record["prompt_ids"] = list(problem.prompt_ids)
                    record["completion_ids"] = list(out.completion_ids)
                else:
                    record.pop("prompt_ids", None)
                    record.pop("completion_ids", None)
                if out.logprobs is not None:
                    if len(out.logprobs) != n_completion:
                        raise RuntimeError(f"{engine.backend} returned {len(out.logprobs)} "
                                           f"log-probs for {n_completion} tokens")
                    record["old_logprobs"] = list(out.logprobs)
                record["model"] = model
                record["seed"] = params.seed
                record["sampling"] = sampling
                yield record


def _strip_stop(out: SampleOutput, stops: set[int]) -> tuple[int, ...]:
    ids = out.completion_ids
    if out.finish_reason == "stop" and ids and ids[-1] in stops:
        return ids[:-1]
    return ids


def finish_from_ids(generated: Sequence[int], stops: set[int], max_tokens: int,
                    logprobs: Sequence[float] | None = None) -> SampleOutput:
    """Cut generated ids (and their log-probs) at the first stop token (kept); classify the finish.

    Used by engines that return padded or over-long sequences (HF ``generate``).

    >>> finish_from_ids([5, 6, 2, 0, 0], {2}, 5, [-1.0, -2.0, -0.5, 0.0, 0.0])
    SampleOutput(completion_ids=(5, 6, 2), finish_reason='stop', logprobs=(-1.0, -2.0, -0.5))
    >>> finish_from_ids([5, 6, 7], {2}, 3).finish_reason
    'length'
    """
    end = next((i + 1 for i, token in enumerate(generated[:max_tokens]) if token in stops), None)
    reason = "stop" if end is not None else "length"
    end = end if end is not None else min(len(generated), max_tokens)
    kept = tuple(float(x) for x in logprobs[:end]) if logprobs is not None else None
    return SampleOutput(tuple(generated[:end]), reason, kept)


def choose_backend(requested: str, *, vllm_installed: bool, gpu_available: bool) -> str:
    """Resolve ``--backend``: ``auto`` is vLLM when it is installed and a GPU is present, else hf.

    >>> choose_backend("auto", vllm_installed=True, gpu_available=False)
    'hf'
    """
    if requested not in BACKENDS:
        raise UsageError(f"--backend {requested}: expected one of {', '.join(BACKENDS)}")
    if requested == "auto":
        return "vllm" if vllm_installed and gpu_available else "hf"
    if requested == "vllm":
        if not vllm_installed:
            raise UsageError("--backend vllm: vLLM is not installed (pip install 'rlscale[vllm]' "
                             "on a GPU machine); use --backend hf")
        if not gpu_available:
            raise UsageError("--backend vllm: no GPU is available; use --backend hf")
    return requested
