"""Rollout against an OpenAI-compatible server (``vllm serve``, SGLang, ...) over HTTP.

One request per sample (``n=1``, ``seed`` = the sample's own seed from
:func:`rlscale.core.sampling.sample_seed`): ``usage`` then gives each sample's token counts
exactly, a retry redraws only that sample, and the seed of a sample does not depend on how many
siblings shared its request. The server's prefix cache makes the repeated prompt cheap.

Endpoints
    Chat prompts (message lists, or strings with the chat template) go to
    ``/chat/completions``; ``--no-chat-template`` text goes to ``/completions``. With a local
    tokenizer (``--tokenizer DIR``) prompts are rendered and tokenized here, exactly as the hf
    and vllm backends do, sent as token ids to ``/completions`` with ``return_token_ids`` (a vLLM
    extension), and the returned completion ids are written like the other backends' ids.

Faults
    Requests run on one event loop with an ``httpx.AsyncClient`` (connections reused), at most
    ``concurrency`` at a time. 429, 5xx, timeouts, dropped connections and unreadable bodies are
    retried with exponential backoff and jitter (``Retry-After`` honoured); anything else, or a
    request that still fails after ``max_retries`` retries, is one error naming the prompt and
    what the server said. The sleep and the jitter source are injectable, so tests do not wait.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from rlscale.core.errors import RlscaleError, UsageError
from rlscale.core.identity import prompt_key
from rlscale.core.prompts import render_plan
from rlscale.core.sampling import SampleOutput, SampleRequest, SamplingParams

RETRY_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
MAX_BACKOFF_S = 30.0
PROBE_PROMPT = "Write one random word."
# The step a served model carries in its name: policy-step-12, ckpt_step12, run@12
STEP_IN_NAME = re.compile(r"(?:step[-_]?|@)(\d+)$")


def redact_url(url: str) -> str:
    """The URL without user:password (records and messages never hold credentials)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def server_message(status: int | None, body: bytes | str) -> str:
    """What a server said, in one short line: ``error.message`` of an OpenAI-style body, a
    FastAPI ``detail``, else the first line of the text."""
    import orjson

    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    message = None
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        data = None
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            message = error["message"]
        elif isinstance(error, str):
            message = error
        elif isinstance(data.get("message"), str):
            message = data["message"]
        elif data.get("detail") is not None:
            message = str(data["detail"])
    if message is None:
        lines = text.strip().splitlines()
        message = lines[0] if lines else "(empty body)"
    message = " ".join(message.split())
    if len(message) > 200:
        message = message[:197] + "..."
    return f"HTTP {status}: {message}" if status is not None else message


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds (a number, or an HTTP date); None when absent or unreadable.

    >>> retry_after_seconds("3")
    3.0
    >>> retry_after_seconds("soon") is None
    True
    """
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


def backoff_seconds(attempt: int, rng: random.Random, base: float = 0.5,
                    retry_after: float | None = None) -> float:
    """Delay before retry ``attempt`` (1-based): ``base * 2**(attempt-1)`` capped, times a jitter
    in [0.5, 1); a server's ``Retry-After`` wins when it asks for longer (capped too)."""
    delay = min(MAX_BACKOFF_S, base * 2 ** (attempt - 1)) * (0.5 + rng.random() / 2)
    if retry_after is not None:
        delay = max(delay, min(retry_after, 4 * MAX_BACKOFF_S))
    return delay


class _Retryable(Exception):
    def __init__(self, what: str, retry_after: float | None = None):
        super().__init__(what)
        self.retry_after = retry_after


class OpenAIRollout:
    """The ``openai`` backend of ``rlscale rollout`` (implements ``RolloutEngine``).

    Args:
        base_url: the server's API root, e.g. ``http://127.0.0.1:8000/v1``.
        model: the served model name (a LoRA adapter's served name for ``--lora`` runs).
        api_key: sent as a bearer token; never written anywhere.
        tokenizer_dir: render and tokenize prompts here and keep token ids (see module docstring).
        expect_step: refuse to sample unless the served model is this training step.
        sleep / rng: injectable for tests (retries then do not wait).
    """

    backend = "openai"

    def __init__(self, base_url: str, model: str, params: SamplingParams, *,
                 chat_template: bool = True, api_key: str | None = None,
                 tokenizer_dir: str | None = None, logprobs: bool = False,
                 concurrency: int = 32, max_retries: int = 5, request_timeout: float = 600.0,
                 expect_step: int | None = None, lora: str | None = None,
                 sleep: Callable[[float], Awaitable[None]] | None = None,
                 rng: random.Random | None = None, probe: bool = True):
        import httpx

        if concurrency < 1:
            raise UsageError(f"--concurrency must be at least 1, got {concurrency}")
        if max_retries < 0:
            raise UsageError(f"--max-retries must be >= 0, got {max_retries}")
        if not request_timeout > 0:
            raise UsageError(f"--request-timeout must be > 0, got {request_timeout}")
        if logprobs and params.temperature != 1.0:
            # Servers report log-probs of their own choosing (vLLM: --logprobs-mode, default
            # before temperature); at T = 1 every mode without top-k/p agrees with old_logprobs.
            raise UsageError("--logprobs with --backend openai needs --temperature 1 (servers "
                             "report log-probs before temperature scaling by default)")
        if logprobs and (params.top_k > 0 or params.top_p < 1):
            raise UsageError("--logprobs with --backend openai needs --top-k -1 and --top-p 1 "
                             "(a server may report log-probs after truncation)")
        scheme = urlsplit(base_url).scheme
        if scheme not in ("http", "https"):
            raise UsageError(f"--base-url {redact_url(base_url)}: expected http:// or https://")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.params = params
        self.chat_template = chat_template
        self.logprobs = logprobs
        self.concurrency = concurrency
        self.max_retries = max_retries
        self.sleep = sleep or asyncio.sleep
        self.rng = rng or random.Random()
        self.context_length: int | None = None
        self.tokenizer = None
        self.encoder = None
        self._stop_ids: list[int] = []
        if tokenizer_dir is not None:
            from rlscale.engines.hf_rollout import (
                PromptEncoder,
                checkpoint_stop_ids,
                load_tokenizer,
                quiet_transformers,
            )

            quiet_transformers()
            self.tokenizer = load_tokenizer(tokenizer_dir)
            self.encoder = PromptEncoder(self.tokenizer, chat_template=chat_template,
                                         model=tokenizer_dir)
            self._stop_ids = checkpoint_stop_ids(tokenizer_dir, self.tokenizer)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._loop = asyncio.new_event_loop()
        self._timeout = httpx.Timeout(request_timeout, connect=min(request_timeout, 10.0))
        self._client = httpx.AsyncClient(
            base_url=self.base_url, headers=headers, timeout=self._timeout,
            limits=httpx.Limits(max_connections=concurrency,
                                max_keepalive_connections=concurrency))
        self.served: dict[str, Any] = {}
        self.seed_status = "not checked"
        self.server_version: str | None = None
        try:
            self.served = self._run(self._check_model(lora, expect_step))
            self.server_version = self._run(self._version())
            if probe:
                self.seed_status = self._run(self._probe_seed())
        except BaseException:
            self.close()
            raise

    # --- RolloutEngine --------------------------------------------------------------------

    @property
    def encode_prompt(self):
        """None (prompts go as they are) unless a local tokenizer renders them; then a prompt
        too long for the served ``max_model_len`` is refused by its length before tokenising."""
        return None if self.encoder is None else self._encode_prompt

    def _encode_prompt(self, prompt):
        return self.encoder(prompt, self.context_length)

    def decode(self, completions):
        if self.encoder is None:
            return ["" for _ in completions]  # never used: outputs carry their text
        return self.encoder.decode(completions)

    def stop_ids(self):
        return self._stop_ids

    def describe(self) -> dict[str, Any]:
        """What goes into each record's ``sampling`` beside the shared fields."""
        return {"server": redact_url(self.base_url), "seed_honoured": self.seed_status,
                **({"server_version": self.server_version} if self.server_version else {}),
                **({"served_root": self.served["root"]} if self.served.get("root") else {})}

    def generate(self, requests: Sequence[SampleRequest]) -> list[SampleOutput]:
        if not requests:
            return []
        return self._run(self._generate_all(requests))

    def close(self) -> None:
        if not self._loop.is_closed():
            self._loop.run_until_complete(self._client.aclose())
            self._loop.close()

    # --- internals ------------------------------------------------------------------------

    def _run(self, coroutine):
        return self._loop.run_until_complete(coroutine)

    async def _check_model(self, lora: str | None, expect_step: int | None) -> dict[str, Any]:
        """Fail fast: the server answers, serves ``model`` (loading ``lora`` under that name if
        asked), and serves the expected step."""
        import httpx

        where = redact_url(self.base_url)
        try:
            response = await self._client.get("/models")
        except httpx.HTTPError as exc:
            raise RlscaleError(f"--base-url {where}: cannot reach the server "
                               f"({type(exc).__name__}: {exc or 'no answer'})") from None
        if response.status_code in (401, 403):
            raise RlscaleError(f"--base-url {where}: the server refused the API key "
                               f"({server_message(response.status_code, response.content)})")
        if response.status_code != 200:
            raise RlscaleError(f"--base-url {where}: GET /models failed "
                               f"({server_message(response.status_code, response.content)})")
        try:
            entries = {m["id"]: m for m in response.json()["data"] if isinstance(m, dict)}
        except (ValueError, KeyError, TypeError):
            raise RlscaleError(f"--base-url {where}: GET /models did not answer with an "
                               "OpenAI model list") from None
        if self.model not in entries and lora is not None:
            await self._load_lora(lora)
            return await self._check_model(None, expect_step)
        if self.model not in entries:
            names = ", ".join(sorted(entries)[:10]) or "nothing"
            raise RlscaleError(f"--model {self.model}: not served by {where} (it serves {names})")
        entry = entries[self.model]
        if lora is not None and entry.get("root") not in (None, lora) and \
                _same_path(entry.get("root"), lora) is False:
            raise RlscaleError(f"--model {self.model}: the server serves it from "
                               f"{entry.get('root')}, not --lora {lora}; unload it first "
                               "(POST /v1/unload_lora_adapter) or use another name")
        if isinstance(entry.get("max_model_len"), int):
            self.context_length = entry["max_model_len"]
        if expect_step is not None:
            served = served_step(entry)
            if served is None:
                raise RlscaleError(f"--expect-step {expect_step}: cannot tell which step "
                                   f"{self.model} is (serve it as NAME-step-N, or from an "
                                   "rlscale checkpoint directory)")
            if served != expect_step:
                raise RlscaleError(f"--expect-step {expect_step}: the server has step {served} "
                                   f"of {self.model}; reload the weights before sampling")
        return entry

    async def _version(self) -> str | None:
        """The server's version where it says (vLLM: ``GET /version`` beside ``/v1``)."""
        import httpx

        root = self.base_url[:-3] if self.base_url.endswith("/v1") else self.base_url
        try:
            response = await self._client.get(root + "/version")
            version = response.json().get("version") if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError, AttributeError):
            return None
        return str(version) if isinstance(version, (str, int, float)) else None

    async def _load_lora(self, lora: str) -> None:
        import os

        response = await self._client.post("/load_lora_adapter", json={
            "lora_name": self.model, "lora_path": os.path.abspath(lora)})
        if response.status_code != 200:
            raise RlscaleError(
                f"--lora {lora}: the server did not load it as {self.model} "
                f"({server_message(response.status_code, response.content)}); vLLM needs "
                "VLLM_ALLOW_RUNTIME_LORA_UPDATING=True and --enable-lora")

    async def _probe_seed(self) -> str:
        """Whether the server honours ``seed``: the same seed twice, then another seed."""
        if self.params.greedy:
            return "greedy"
        probe = SampleRequest((), 0, 12345, PROBE_PROMPT, "seed-probe")
        params = {"max_tokens": 16}
        first, again, other = [await self._request(r, params) for r in (
            probe, probe, SampleRequest((), 0, 54321, PROBE_PROMPT, "seed-probe"))]
        if _same(first, again):
            return "yes" if not _same(first, other) else "unverified"
        return "no"

    async def _generate_all(self, requests: Sequence[SampleRequest]) -> list[SampleOutput]:
        gate = asyncio.Semaphore(self.concurrency)

        async def one(request: SampleRequest) -> SampleOutput:
            async with gate:
                return await self._request(request)

        tasks = [asyncio.ensure_future(one(r)) for r in requests]
        try:
            return list(await asyncio.gather(*tasks))
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    def _payload(self, request: SampleRequest, overrides: dict[str, Any] | None = None
                 ) -> tuple[str, dict[str, Any]]:
        params = self.params
        body: dict[str, Any] = {
            "model": self.model, "n": 1, "seed": request.seed,
            "temperature": params.temperature, "top_p": params.top_p, "top_k": params.top_k,
            "max_tokens": params.max_tokens,
            # vLLM and SGLang otherwise apply the checkpoint's generation_config defaults
            "min_p": 0.0, "repetition_penalty": 1.0,
        }
        if request.prompt_ids:
            path = "/completions"
            body.update(prompt=list(request.prompt_ids), return_token_ids=True,
                        stop_token_ids=list(self._stop_ids), skip_special_tokens=True)
            if self.logprobs:
                body["logprobs"] = 1
        else:
            kind, content = render_plan(request.prompt, self.chat_template)
            if kind == "chat":
                path = "/chat/completions"
                body["messages"] = content
                if self.logprobs:
                    body.update(logprobs=True, top_logprobs=0)
            else:
                path = "/completions"
                body["prompt"] = content
                if self.logprobs:
                    body["logprobs"] = 1
        body.update(overrides or {})
        return path, body

    async def _request(self, request: SampleRequest, overrides: dict[str, Any] | None = None
                       ) -> SampleOutput:
        import httpx
        import orjson

        path, body = self._payload(request, overrides)
        name = (f"prompt {prompt_key(request.prompt_id)} sample {request.sample_idx}"
                if request.prompt_id != "seed-probe" else "the seed probe request")
        attempt = 0
        while True:
            try:
                try:
                    response = await self._client.post(path, content=orjson.dumps(body),
                                                       headers={"Content-Type":
                                                                "application/json"})
                except httpx.TimeoutException:
                    raise _Retryable(f"no answer within {self._timeout.read:g} s "
                                     "(--request-timeout)") from None
                except httpx.TransportError as exc:
                    raise _Retryable(f"connection failed ({type(exc).__name__}: "
                                     f"{exc or 'dropped'})") from None
                status = response.status_code
                if status in RETRY_STATUSES:
                    raise _Retryable(server_message(status, response.content),
                                     retry_after_seconds(response.headers.get("Retry-After")))
                if status != 200:
                    raise RlscaleError(f"{path} for {name}: "
                                       f"{server_message(status, response.content)}")
                try:
                    data = orjson.loads(response.content)
                except orjson.JSONDecodeError:
                    raise _Retryable("the server answered with malformed JSON") from None
                return self._parse(data, request, name, path, body["max_tokens"])
            except _Retryable as exc:
                attempt += 1
                if attempt > self.max_retries:
                    raise RlscaleError(f"{path} for {name} failed after {attempt} attempts: "
                                       f"{exc}") from None
                await self.sleep(backoff_seconds(attempt, self.rng,
                                                 retry_after=exc.retry_after))

    def _parse(self, data: Any, request: SampleRequest, name: str, path: str,
               max_tokens: int) -> SampleOutput:
        def bad(what: str) -> RlscaleError:
            return RlscaleError(f"{path} for {name}: {what}")

        if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
            raise bad("the answer has no 'choices' list")
        choices = data["choices"]
        if len(choices) != 1:
            raise bad(f"the server returned {len(choices)} choices for n=1")
        choice = choices[0]
        if not isinstance(choice, dict):
            raise bad("a choice is not an object")
        reason = choice.get("finish_reason")
        if reason not in ("stop", "length"):
            raise bad(f"finish_reason {reason!r} (expected stop or length)")
        if path == "/chat/completions":
            message = choice.get("message")
            text = message.get("content") if isinstance(message, dict) else None
        else:
            text = choice.get("text")
        if not isinstance(text, str):
            raise bad("the choice holds no completion text")
        usage = data.get("usage")
        if not isinstance(usage, dict) or not all(
                isinstance(usage.get(k), int) for k in ("prompt_tokens", "completion_tokens")):
            raise bad("the answer has no usage.prompt_tokens / usage.completion_tokens")
        n_completion = usage["completion_tokens"]
        if n_completion > max_tokens:
            raise bad(f"{n_completion} completion tokens with max_tokens {max_tokens}")
        logprobs = _choice_logprobs(choice, path) if self.logprobs else None
        if self.logprobs and logprobs is None:
            raise bad("the server returned no log-probs (--logprobs)")
        if request.prompt_ids:
            ids = choice.get("token_ids")
            if not isinstance(ids, list) or not all(isinstance(t, int) for t in ids):
                raise bad("the server returned no token_ids (vLLM does with return_token_ids; "
                          "drop --tokenizer to keep text only)")
            if len(ids) != n_completion:
                raise bad(f"{len(ids)} token ids but usage.completion_tokens {n_completion}")
            return SampleOutput(tuple(ids), reason, logprobs)
        return SampleOutput((), reason, logprobs, text=text,
                            n_prompt_tokens=usage["prompt_tokens"],
                            n_completion_tokens=n_completion)


def _choice_logprobs(choice: dict[str, Any], path: str) -> tuple[float, ...] | None:
    block = choice.get("logprobs")
    if not isinstance(block, dict):
        return None
    if path == "/chat/completions":
        content = block.get("content")
        if not isinstance(content, list):
            return None
        values = [entry.get("logprob") if isinstance(entry, dict) else None for entry in content]
    else:
        values = block.get("token_logprobs")
        if not isinstance(values, list):
            return None
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return None
    return tuple(float(v) for v in values)


def _same(a: SampleOutput, b: SampleOutput) -> bool:
    return (a.text, a.completion_ids) == (b.text, b.completion_ids)


def _same_path(a: Any, b: str) -> bool | None:
    import os

    if not isinstance(a, str) or not os.path.exists(a):
        return None
    return os.path.exists(b) and os.path.samefile(a, b)


def served_step(entry: dict[str, Any]) -> int | None:
    """The training step a served model is at: the rlscale trainer state of the directory it is
    served from (``root``, when readable here), else a ``step-N`` / ``@N`` suffix of its name.

    >>> served_step({"id": "policy-step-12"}), served_step({"id": "policy"})
    (12, None)
    """
    import json
    import os

    root = entry.get("root")
    if isinstance(root, str) and os.path.isdir(root):
        from rlscale.engines.checkpoints import TRAINER_STATE_FILE

        try:
            with open(os.path.join(root, TRAINER_STATE_FILE), encoding="utf-8") as handle:
                step = json.load(handle).get("step")
            if isinstance(step, int) and not isinstance(step, bool):
                return step
        except (OSError, ValueError, AttributeError):
            pass
    for name in (entry.get("id"), root):
        if isinstance(name, str):
            match = STEP_IN_NAME.search(name.rstrip("/"))
            if match:
                return int(match.group(1))
    return None
