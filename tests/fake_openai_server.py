"""A small OpenAI-compatible server on 127.0.0.1 for rollout tests and the HTTP benchmark.

Real HTTP (stdlib ``ThreadingHTTPServer``, HTTP/1.1 keep-alive), canned but seed-determined
completions with ``usage``, and scripted faults per request seed: ``"500"``, ``"429"`` (with
``Retry-After``), ``"drop"`` (close the connection without answering), ``"malformed"`` (a 200
whose body is not JSON), ``"slow"`` (answer after ``slow_s``), ``"400"`` (a request error),
``"choices"`` (two choices for n=1). It serves ``/v1/models``, ``/v1/completions``,
``/v1/chat/completions`` and vLLM's ``/v1/load_lora_adapter``.
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

WORDS = ["the", "answer", "is", "\\boxed{4}", "so", "we", "add", "two", "and", "get", "four"]


def completion_for(prompt: Any, seed: int, max_tokens: int) -> list[str]:
    """The words a seeded request gets: a function of (prompt, seed) only."""
    key = json.dumps(prompt, sort_keys=True) + f"\x00{seed}"
    rng = random.Random(hashlib.sha256(key.encode()).digest())
    length = rng.randint(1, max_tokens)
    return [rng.choice(WORDS) for _ in range(length)]


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # the default 5 resets connections when 32 clients connect at once
    daemon_threads = True
    errors: list[str] = []

    def handle_error(self, request, client_address):
        # a client that gives up closes its connections mid-answer (broken pipe): expected here,
        # and printing it would land in the CLI's captured stderr
        import traceback

        self.errors.append(traceback.format_exc(limit=1))


class FakeServer:
    def __init__(self, models: list[dict[str, Any]] | None = None, *, honour_seed: bool = True,
                 api_key: str | None = None, slow_s: float = 1.0, retry_after: str = "7",
                 vocab: int = 100, delay_s: float = 0.0, hang_after: int | None = None):
        self.models = models if models is not None else [{"id": "policy", "root": "/srv/policy"}]
        self.honour_seed = honour_seed
        self.api_key = api_key
        self.slow_s = slow_s
        self.retry_after = retry_after
        self.vocab = vocab
        self.delay_s = delay_s  # every answer waits this long (benchmark: a server's latency)
        self.hang_after = hang_after  # generation requests after this many never get answered
        self.faults: dict[int, list[str]] = {}
        self.bodies: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.headers: list[dict[str, str]] = []
        self.clients: set[tuple[str, int]] = set()
        self.in_flight = 0
        self.max_in_flight = 0
        self.n_generated = 0
        self._lock = threading.Lock()
        self._unseeded = random.Random(0)
        self._release = threading.Event()
        self.httpd = _Server(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._release.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def generation_bodies(self) -> list[dict[str, Any]]:
        return [b for b, p in zip(self.bodies, self.paths, strict=True)
                if p in ("/v1/completions", "/v1/chat/completions")]

    # --- answers ------------------------------------------------------------------------

    def answer(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes | None]:
        if path == "/v1/load_lora_adapter":
            self.models.append({"id": body["lora_name"], "root": body["lora_path"]})
            return 200, {}, b"Success: LoRA adapter loaded"
        models = {m["id"] for m in self.models}
        if body.get("model") not in models:
            return 404, {}, json.dumps({"error": {"message": f"The model `{body.get('model')}` "
                                                  "does not exist."}}).encode()
        seed = body.get("seed")
        with self._lock:
            plan = self.faults.get(seed)
            fault = plan.pop(0) if plan else None
            if self.hang_after is not None and self.n_generated >= self.hang_after:
                fault = "hang"
        if fault == "hang":
            self._release.wait()
            return 503, {}, b"shutting down"
        if fault == "500":
            return 500, {}, json.dumps({"error": {"message": "CUDA out of memory"}}).encode()
        if fault == "429":
            return 429, {"Retry-After": self.retry_after}, b'{"error": "rate limited"}'
        if fault == "400":
            return 400, {}, json.dumps({"object": "error", "message":
                                        "top_k must be -1 or at least 1"}).encode()
        if fault == "drop":
            return 0, {}, None
        if fault == "malformed":
            return 200, {}, b'{"choices": [{"text": "trunc'
        if fault == "slow":
            threading.Event().wait(self.slow_s)
        if self.delay_s:
            threading.Event().wait(self.delay_s)
        if not self.honour_seed:
            with self._lock:
                seed = self._unseeded.randrange(1 << 30)
        prompt = body.get("messages", body.get("prompt"))
        words = completion_for(prompt, seed, body["max_tokens"])
        reason = "length" if len(words) == body["max_tokens"] else "stop"
        choice: dict[str, Any] = {"index": 0, "finish_reason": reason}
        n_prompt = len(prompt) if isinstance(prompt, list) and all(
            isinstance(t, int) for t in prompt) else len(json.dumps(prompt).split())
        if path == "/v1/chat/completions":
            choice["message"] = {"role": "assistant", "content": " ".join(words)}
            if body.get("logprobs"):
                choice["logprobs"] = {"content": [{"token": w, "logprob": -0.25 * (i % 4)}
                                                  for i, w in enumerate(words)]}
        else:
            choice["text"] = " ".join(words)
            if body.get("logprobs") is not None:
                choice["logprobs"] = {"tokens": words,
                                      "token_logprobs": [-0.25 * (i % 4) for i in range(len(words))]}
        if body.get("return_token_ids"):
            choice["token_ids"] = [3 + (WORDS.index(w) * 7) % (self.vocab - 3) for w in words]
        choices = [choice, dict(choice, index=1)] if fault == "choices" else [choice]
        with self._lock:
            self.n_generated += 1
        return 200, {}, json.dumps({
            "id": "cmpl-1", "object": "text_completion", "model": body["model"],
            "choices": choices,
            "usage": {"prompt_tokens": n_prompt, "completion_tokens": len(words),
                      "total_tokens": n_prompt + len(words)}}).encode()

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep pytest output clean
                pass

            def _auth_ok(self) -> bool:
                if server.api_key is None:
                    return True
                return self.headers.get("Authorization") == f"Bearer {server.api_key}"

            def _send(self, status: int, headers: dict[str, str], data: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                with server._lock:
                    server.clients.add(self.client_address)
                    server.paths.append(self.path)
                    server.bodies.append({})
                    server.headers.append(dict(self.headers))
                if not self._auth_ok():
                    return self._send(401, {}, b'{"error": {"message": "bad key"}}')
                if self.path == "/version":  # vLLM's, beside /v1
                    return self._send(200, {}, b'{"version": "0.33.0-fake"}')
                if self.path != "/v1/models":
                    return self._send(404, {}, b'{"detail": "Not Found"}')
                data = [{"object": "model", "max_model_len": 4096, **m} for m in server.models]
                self._send(200, {}, json.dumps({"object": "list", "data": data}).encode())

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                with server._lock:
                    server.clients.add(self.client_address)
                    server.paths.append(self.path)
                    server.bodies.append(body)
                    server.headers.append(dict(self.headers))
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    if not self._auth_ok():
                        return self._send(401, {}, b'{"error": {"message": "bad key"}}')
                    status, headers, data = server.answer(self.path, body)
                    if data is None:  # drop the connection without an answer
                        self.close_connection = True
                        self.connection.shutdown(2)
                        return
                    self._send(status, headers, data)
                finally:
                    with server._lock:
                        server.in_flight -= 1

        return Handler
