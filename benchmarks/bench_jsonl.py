"""JSONL read + write throughput: rlscale.io.jsonl against the standard library json module.

Both sides do the same work on the same file in the same run: read every line of a JSONL file of
rollout-like records (prompt and completion text, token ids, numbers), parse each into a dict,
and write it to a second file. rlscale's side goes through RecordReader (line numbers, field
checks: the contract every subcommand uses) and RecordWriter (atomic file output); the peer is a
plain ``json.loads`` / ``json.dumps`` loop. Reported in records/s with the ratio.
"""

from __future__ import annotations

import json
import os
import random
import tempfile
import time

N_RECORDS = 50_000
REPEATS = 3


def make_records(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    words = ["the", "sum", "of", "integers", "prime", "\\frac{1}{2}", "x^2", "boxed", "let", "we"]
    records = []
    for i in range(n):
        completion = " ".join(rng.choice(words) for _ in range(rng.randint(20, 120)))
        records.append({
            "prompt_id": f"p{i // 8}", "sample_idx": i % 8, "step": i // 4096,
            "prompt": "Solve: " + " ".join(rng.choice(words) for _ in range(30)),
            "completion": completion + f" \\boxed{{{rng.randint(0, 999)}}}",
            "answer": str(rng.randint(0, 999)),
            "completion_ids": [rng.randint(0, 151_000) for _ in range(rng.randint(20, 60))],
            "reward": float(rng.random() < 0.4), "logprob": -rng.random() * 50,
            "data_source": "math__deepscaler_preview", "N": 7e9,
        })
    return records


def rlscale_roundtrip(src: str, dst: str) -> int:
    from rlscale.io.jsonl import RecordReader, RecordWriter

    reader = RecordReader([src], required={"prompt_id": "str", "reward": "number"})
    with RecordWriter(dst) as writer:
        for record, _ in reader:
            writer.write(record)
    return writer.n_written


def stdlib_roundtrip(src: str, dst: str) -> int:
    n = 0
    with open(src, encoding="utf-8") as inp, open(dst, "w", encoding="utf-8") as out:
        for line in inp:
            if not line.strip():
                continue
            record = json.loads(line)
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            n += 1
    return n


def rlscale_read(src: str, dst: str) -> int:
    from rlscale.io.jsonl import RecordReader

    return sum(1 for _ in RecordReader([src], required={"prompt_id": "str", "reward": "number"}))


def stdlib_read(src: str, dst: str) -> int:
    with open(src, encoding="utf-8") as inp:
        return sum(1 for line in inp if line.strip() and json.loads(line) is not None)


def best_rate(fn, src: str, dst: str) -> float:
    best = float("inf")
    for _ in range(REPEATS):
        start = time.perf_counter()
        n = fn(src, dst)
        best = min(best, time.perf_counter() - start)
    return n / best


def main() -> None:
    records = make_records(N_RECORDS)
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "in.jsonl")
        with open(src, "w", encoding="utf-8") as handle:
            for record in records:
                handle.write(json.dumps(record) + "\n")
        size_mb = os.path.getsize(src) / 1e6
        ours = best_rate(rlscale_roundtrip, src, os.path.join(tmp, "a.jsonl"))
        peer = best_rate(stdlib_roundtrip, src, os.path.join(tmp, "b.jsonl"))
        ours_read = best_rate(rlscale_read, src, "")
        peer_read = best_rate(stdlib_read, src, "")
        with open(os.path.join(tmp, "a.jsonl"), "rb") as a, \
                open(os.path.join(tmp, "b.jsonl"), "rb") as b:
            same = [json.loads(x) for x in a] == [json.loads(y) for y in b]
    print(f"JSONL read+write, {N_RECORDS:,} rollout-like records ({size_mb:.0f} MB), "
          f"best of {REPEATS}")
    print(f"{'':<14}{'rlscale rec/s':>15}{'stdlib rec/s':>15}{'ratio':>8}")
    print(f"{'read+write':<14}{ours:>15,.0f}{peer:>15,.0f}{ours / peer:>7.2f}x")
    print(f"{'read only':<14}{ours_read:>15,.0f}{peer_read:>15,.0f}{ours_read / peer_read:>7.2f}x")
    print(f"outputs identical: {same}")


if __name__ == "__main__":
    main()
