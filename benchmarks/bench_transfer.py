"""The transfer-study graders: answers per second of ``code``, ``logic`` and ``choice``, and
``rlscale reward --grader paper -j 2`` over 164 HumanEval responses (the issue's bar: < 60 s
on 2 cores).

The 164 code responses are written here, one per HumanEval test program in
``benchmarks/data/humaneval_tests.jsonl``: real solutions for the first problems (passing),
a stub returning ``None`` for most (failing: ``wrong`` or ``error``), and every 8th a hostile
one in turn (sleeps forever, forks 20 sleeping children, allocates 16 GiB, writes an endless
file, opens a socket, kills its parent), each contained by the sandbox. Logic and choice
responses are synthetic (grids of 6 houses x 10 attributes with single quotes and trailing
text; option letters in boxes, phrases and alone), graded by the same ``Grader`` stream.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data", "humaneval_tests.jsonl")

PASSING = {
    "has_close_elements": "def has_close_elements(numbers, threshold):\n    return any(abs(a - b)"
                          " < threshold for i, a in enumerate(numbers) for b in numbers[i + 1:])\n",
    "truncate_number": "def truncate_number(number):\n    return number % 1.0\n",
    "below_zero": "def below_zero(operations):\n    total = 0\n    for op in operations:\n"
                  "        total += op\n        if total < 0:\n            return True\n"
                  "    return False\n",
    "filter_by_substring": "def filter_by_substring(strings, substring):\n    return [s for s in"
                           " strings if substring in s]\n",
    "sum_product": "def sum_product(numbers):\n    product = 1\n    for n in numbers:\n"
                   "        product *= n\n    return (sum(numbers), product)\n",
    "strlen": "def strlen(string):\n    return len(string)\n",
    "greatest_common_divisor": "import math\ndef greatest_common_divisor(a, b):\n"
                               "    return math.gcd(a, b)\n",
    "all_prefixes": "def all_prefixes(string):\n    return [string[:i + 1] for i in "
                    "range(len(string))]\n",
    "string_sequence": "def string_sequence(n):\n    return ' '.join(str(i) for i in "
                       "range(n + 1))\n",
    "count_distinct_characters": "def count_distinct_characters(string):\n    return "
                                 "len(set(string.lower()))\n",
}
HOSTILE = [
    "import time\ntime.sleep(600)\n",
    "import os, time\nfor _ in range(20):\n    if os.fork() == 0:\n        time.sleep(600)\n",
    "blob = bytearray(1 << 34)\n",
    "with open('big', 'wb') as f:\n    while True:\n        f.write(b'x' * 65536)\n",
    "import socket\nsocket.create_connection(('127.0.0.1', 22))\n",
    "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n",
]


def code_records() -> list[dict]:
    records = []
    with open(DATA) as f:
        rows = [json.loads(line) for line in f]
    for i, row in enumerate(rows):
        name = row["entry_point"]
        if name in PASSING:
            code = PASSING[name]
        elif i % 8 == 7:
            code = HOSTILE[(i // 8) % len(HOSTILE)]
        else:
            code = f"def {name}(*args, **kwargs):\n    return None\n"
        records.append({"completion": f"Solution:\n```python\n{code}```\n", "answer": row["answer"],
                        "data_source": "codegen__humaneval", "kind": name in PASSING})
    return records


def logic_pairs(n: int, rng: random.Random) -> list[tuple[str, str]]:
    pairs = []
    for _ in range(n):
        header = ["Position"] + [f"Attr{a}" for a in range(10)]
        rows = [[str(h + 1)] + [f"v{a}_{rng.randrange(6)}" for a in range(10)] for h in range(6)]
        gold = {"header": header, "rows": rows}
        pred = json.loads(json.dumps(gold))
        if rng.random() < 0.5:
            pred["rows"][rng.randrange(6)][1 + rng.randrange(10)] = "other"
        text = json.dumps(pred).replace('"', "'") if rng.random() < 0.5 else json.dumps(pred)
        pairs.append((f"Reasoning about the clues...\n<answer> {text} </answer> Done.",
                      json.dumps(gold)))
    return pairs


def choice_pairs(n: int, rng: random.Random) -> list[tuple[str, str]]:
    templates = ["... so \\boxed{%s}", "Therefore the answer is (%s).", "\n%s", "Answer: **%s**"]
    pairs = []
    for _ in range(n):
        gold, said = rng.choice("ABCDEFGHIJ"), rng.choice("ABCDEFGHIJ")
        pairs.append(("Let me reason step by step. " * 20 + rng.choice(templates) % said, gold))
    return pairs


def rate(grader_name: str, pairs, data_source: str) -> tuple[float, dict]:
    from rlscale.core.grading import Grader, GraderConfig, GradeTask

    counts: dict[str, int] = {}
    with Grader(GraderConfig(grader_name), workers=2, timeout=2.0) as grader:
        start = time.perf_counter()
        for _, result in grader.stream((i, GradeTask(r, a, data_source))
                                       for i, (r, a) in enumerate(pairs)):
            counts[result.verdict] = counts.get(result.verdict, 0) + 1
        elapsed = time.perf_counter() - start
    return len(pairs) / elapsed, counts


def main() -> None:
    rng = random.Random(0)
    records = code_records()
    payload = "".join(json.dumps(r) + "\n" for r in records)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "rlscale", "reward", "--grader", "paper",
                           "-j", "2", "--timeout", "2"], input=payload.encode(),
                          capture_output=True, check=True)
    elapsed = time.perf_counter() - start
    out = [json.loads(line) for line in done.stdout.decode().splitlines()
           if line and "rlscale_end" not in line]
    verdicts: dict[str, int] = {}
    for record in out:
        verdicts[record["verdict"]] = verdicts.get(record["verdict"], 0) + 1
    passing_ok = all(r["verdict"] == "correct" for r in out if r["kind"])
    print(f"reward --grader paper -j 2, {len(out)} HumanEval responses "
          f"({sum(r['kind'] for r in records)} passing, {len(records) // 8} hostile): "
          f"{elapsed:.1f} s, {len(out) / elapsed:.1f} answers/s "
          f"({'under' if elapsed < 60 else 'OVER'} the 60 s bar); verdicts {verdicts}; "
          f"every written solution correct: {passing_ok}")
    code_pairs = [(r["completion"], r["answer"]) for r in records]
    print(f"{'grader':8} {'answers/s':>10}  verdicts")
    for name, pairs, source in [("code", code_pairs, "codegen__humaneval"),
                                ("logic", logic_pairs(2000, rng), "logic__zebra_puzzle_dataset"),
                                ("choice", choice_pairs(5000, rng), "stem__supergpqa")]:
        per_second, counts = rate(name, pairs, source)
        print(f"{name:8} {per_second:10.1f}  {counts}")


if __name__ == "__main__":
    main()
