"""``rollout --backend openai`` throughput against a local OpenAI-compatible server.

The server is tests/fake_openai_server.py on 127.0.0.1, in its own process (its own GIL), with a
fixed latency per answer (a stand-in for a GPU server's time per request). Three clients
send the same chat requests (one per sample, n=1) and parse the answers:

- rlscale: the whole pipeline minus start-up: planning, request building, retries machinery,
  answer checks and record assembly (``OpenAIRollout`` + ``rollout_records``), 32 in flight;
- raw: a bare ``httpx.AsyncClient`` with a semaphore of 32, same payloads, JSON parsed;
- sequential: one ``httpx.Client`` request at a time.

Runs alternate; records/s medians. Targets (issue 15): rlscale >= 0.95x raw, >= 10x sequential.
"""

from __future__ import annotations

import asyncio
import statistics
import time

N_PROBLEMS = 64
N_SAMPLES = 8
CONCURRENCY = 32
LATENCY_S = 0.1  # a GPU server takes seconds per request; the shorter, the harder for a client
MAX_TOKENS = 8
REPEATS = 5
SEQUENTIAL_REQUESTS = 32  # enough for a rate; the whole set would take ~1 min one at a time


def _problems():
    return [{"prompt_id": f"q{i}", "prompt": f"What is {i} + {i + 1}?"} for i in range(N_PROBLEMS)]


def _bodies(seed_of):
    return [{"model": "policy", "n": 1, "seed": seed_of(p["prompt_id"], k), "temperature": 1.0,
             "top_p": 1.0, "top_k": -1, "max_tokens": MAX_TOKENS, "min_p": 0.0,
             "repetition_penalty": 1.0, "messages": [{"role": "user", "content": p["prompt"]}]}
            for p in _problems() for k in range(N_SAMPLES)]


def _rlscale(url, params) -> float:
    from rlscale.core.sampling import plan_problems, rollout_records
    from rlscale.engines.openai_rollout import OpenAIRollout
    from rlscale.io.jsonl import Where

    engine = OpenAIRollout(url, "policy", params, concurrency=CONCURRENCY, probe=False)
    try:
        def invalid(where, message):
            raise RuntimeError(message)

        start = time.perf_counter()
        planned = plan_problems(((p, Where("b", i)) for i, p in enumerate(_problems())),
                                params=params, encode=None, invalid=invalid)
        n = sum(1 for _ in rollout_records(planned, engine, params, batch_size=N_PROBLEMS,
                                           model="policy"))
        return n / (time.perf_counter() - start)
    finally:
        engine.close()


def _raw(url, bodies) -> float:
    import httpx

    async def run() -> int:
        gate = asyncio.Semaphore(CONCURRENCY)
        limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
            async def one(body):
                async with gate:
                    response = await client.post("/chat/completions", json=body)
                    return response.json()["choices"][0]["message"]["content"]

            return len(await asyncio.gather(*(one(b) for b in bodies)))

    start = time.perf_counter()
    n = asyncio.run(run())
    return n / (time.perf_counter() - start)


def _sequential(url, bodies) -> float:
    import httpx

    start = time.perf_counter()
    with httpx.Client(base_url=url, timeout=60) as client:
        for body in bodies[:SEQUENTIAL_REQUESTS]:
            client.post("/chat/completions", json=body).json()
    return SEQUENTIAL_REQUESTS / (time.perf_counter() - start)


def _serve(urls, stop) -> None:
    from tests.fake_openai_server import FakeServer

    with FakeServer(delay_s=LATENCY_S) as server:
        urls.put(server.url)
        stop.wait()


def main() -> None:
    import multiprocessing

    from rlscale.core.sampling import SamplingParams, sample_seed

    params = SamplingParams(n=N_SAMPLES, max_tokens=MAX_TOKENS, seed=0)
    bodies = _bodies(lambda pid, k: sample_seed(0, pid, k))
    rates: dict[str, list[float]] = {"rlscale": [], "raw": [], "sequential": []}
    context = multiprocessing.get_context("spawn")
    urls, stop = context.Queue(), context.Event()
    process = context.Process(target=_serve, args=(urls, stop), daemon=True)
    process.start()
    try:
        url = urls.get(timeout=60)
        _raw(url, bodies[:64])  # warm-up
        for _ in range(REPEATS):
            rates["rlscale"].append(_rlscale(url, params))
            rates["raw"].append(_raw(url, bodies))
            rates["sequential"].append(_sequential(url, bodies))
    finally:
        stop.set()
        process.join(10)
    print(f"local server, {LATENCY_S * 1000:.0f} ms per answer; {N_PROBLEMS} problems x "
          f"{N_SAMPLES} samples = {N_PROBLEMS * N_SAMPLES} requests, {CONCURRENCY} in flight; "
          f"{REPEATS} alternating runs; medians")
    median = {name: statistics.median(values) for name, values in rates.items()}
    for name, label in (("rlscale", "rlscale rollout --backend openai"),
                        ("raw", f"raw httpx.AsyncClient, {CONCURRENCY} in flight"),
                        ("sequential", "sequential httpx.Client")):
        print(f"{label:40} {median[name]:>8.0f} records/s")
    print(f"ratio rlscale / raw: {median['rlscale'] / median['raw']:.3f} (target >= 0.95); "
          f"rlscale / sequential: {median['rlscale'] / median['sequential']:.1f}x (target >= 10)")


if __name__ == "__main__":
    main()
