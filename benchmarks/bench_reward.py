"""`rlscale reward --grader math` vs calling Math-Verify directly, on 5,000 graded answers.

Pairs are built from the MATH-500 and GSM8K ground truths shipped in
``benchmarks/data/reward_ground_truths.jsonl`` (answers only): for every ground truth a
response with the answer boxed as given ("correct"), one with an equivalent rewriting
("reformatted": ``\\dfrac``, ``x = ``, thousands separators, ``.0``, ``\\left(``, spacing,
decimals for terminating fractions, degrees, text wrappers) and one with a wrong answer
("wrong"), shuffled with a fixed seed and cut to 5,000.

Both graders are timed in this run on the same pairs:

* Math-Verify: ``verify(parse("$" + answer + "$"), parse(response))`` in one process (the
  library's defaults, its own timeouts included);
* rlscale: :class:`rlscale.core.grading.Grader` (the code behind ``rlscale reward``) with one
  worker process for the items the fast path leaves to Math-Verify: once from a cold start
  (the worker's start-up -- importing SymPy and Math-Verify -- inside the timing), once with
  the worker already running (the steady state of a long ``rlscale reward`` or VeRL run).

A second set, **unboxed**, is built from the same ground truths and answers the way instruct
and reasoning models often do, without ``\\boxed{}``: a final-answer phrase with a math span
("The final answer is $...$. I hope it is correct.", "**Answer:** $...$"), a display or inline
math span at the end (``\\[...\\]``, ``$$...$$``, ``\\(...\\)``), and for integers plain
prose ("so the total is 18.") or a ``#### 18`` line -- correct, reformatted and wrong answers
alike. Math-Verify is given the whole response there too (its own extraction).

Reported for both sets, in the same run: answers per second, the ratio, the agreement rate
between the two verdicts, and each grader's accuracy against the construction labels
(reformatted answers are equivalent by construction, so a grader that rejects them is wrong,
not disagreeing), with the false positives (a wrong answer graded correct) counted apart.
"""

from __future__ import annotations

import logging
import os
import random
import re
import time

import orjson

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data", "reward_ground_truths.jsonl")
N_PAIRS = 5000
SEED = 0

_FILLER = [
    "Let me work through this step by step. First, simplify the expression. ",
    "We set up the equation and solve it carefully. Checking the arithmetic twice. ",
    "<think>Try small cases: 1, 2, 3 all work. So the pattern holds.</think>\nThus ",
    "Using the formula from above with n = 12 and k = 3, we get ",
]


def load_answers() -> list[dict]:
    with open(DATA, "rb") as handle:
        return [orjson.loads(line) for line in handle if line.strip()]


def _is_int(text: str) -> bool:
    return re.fullmatch(r"-?\d+", text) is not None


def reformat(answer: str, rng: random.Random) -> str | None:
    """An equivalent rewriting of ``answer`` (None when none of ours applies)."""
    options = []
    if _is_int(answer):
        value = int(answer)
        options += [f"{value}.0", f"x = {value}",
                    f"\\left({value}\\right)"]
        if abs(value) >= 1000:
            options.append(f"{value:,}")
    fraction = re.fullmatch(r"(-?)\\frac\{(\d+)\}\{(\d+)\}", answer)
    if fraction:
        sign, numerator, denominator = fraction.groups()
        options.append(f"{sign}\\dfrac{{{numerator}}}{{{denominator}}}")
        options.append(f"{sign}{numerator}/{denominator}")
        den = int(denominator)
        while den % 2 == 0:
            den //= 2
        while den % 5 == 0:
            den //= 5
        if den == 1:
            options.append(f"{sign}{int(numerator) / int(denominator)}")
    if "\\frac" in answer and not fraction:
        options.append(answer.replace("\\frac", "\\dfrac"))
    if answer.startswith("\\text{") and answer.endswith("}"):
        options.append(answer[6:-1])
    if "^\\circ" in answer:
        options.append(answer.replace("^\\circ", ""))
    if answer.startswith("(") and answer.endswith(")"):
        options.append("\\left" + answer[:-1] + "\\right)")
    if answer[:1] in "([" and "," in answer and ", " not in answer:
        options.append(answer.replace(",", ", "))
    if " " in answer:
        options.append(answer.replace(" ", ""))
    return rng.choice(options) if options else None


def wrong(answer: str, rng: random.Random) -> str:
    """A clearly different answer."""
    if _is_int(answer):
        value = int(answer)
        return str(rng.choice([v for v in (value + 1, value - 1, 2 * value + 3, -value - 7)
                               if v != value]))
    fraction = re.fullmatch(r"(-?)\\frac\{(\d+)\}\{(\d+)\}", answer)
    if fraction:
        sign, numerator, denominator = fraction.groups()
        return f"{sign}\\frac{{{denominator}}}{{{int(numerator) + 1}}}"
    if answer.startswith("\\text{"):
        return "\\text{none of these}"
    return rng.choice([f"{answer}+1", f"2\\left({answer}\\right)", "0", "-1"])


_UNBOXED = [
    "{filler}Therefore the answer is ${a}$.",
    "{filler}\nFinal Answer: The final answer is ${a}$. I hope it is correct.",
    "{filler}\n**Answer:** ${a}$",
    "{filler}So we conclude that\n\\[ {a} \\]",
    "{filler}This gives $${a}$$",
    "{filler}which leaves \\({a}\\) in the end.",
]
_UNBOXED_INTEGER = ["{filler}So the total is {a}.", "{filler}\n#### {a}"]


def _unboxed(answer: str, rng: random.Random) -> str:
    whole_number = _is_int(answer) or re.fullmatch(r"\d{1,3}(,\d{3})+", answer) is not None
    templates = _UNBOXED + (_UNBOXED_INTEGER if whole_number else [])
    return rng.choice(templates).format(filler=rng.choice(_FILLER), a=answer)


def build_unboxed_pairs(n: int = N_PAIRS, seed: int = SEED + 1) -> list[tuple[str, str, str]]:
    """(response, answer, kind) triples whose responses have no box (see the module docstring)."""
    rng = random.Random(seed)
    pairs = []
    for item in load_answers():
        answer = item["answer"]
        pairs.append((_unboxed(answer, rng), answer, "correct"))
        equivalent = reformat(answer, rng)
        if equivalent is not None:
            pairs.append((_unboxed(equivalent, rng), answer, "reformatted"))
        pairs.append((_unboxed(wrong(answer, rng), rng), answer, "wrong"))
    rng.shuffle(pairs)
    return pairs[:n]


def build_pairs(n: int = N_PAIRS, seed: int = SEED) -> list[tuple[str, str, str]]:
    """(response, answer, kind) triples; kind in correct/reformatted/wrong."""
    rng = random.Random(seed)
    pairs = []
    for item in load_answers():
        answer = item["answer"]
        filler = rng.choice(_FILLER)
        pairs.append((f"{filler}The final answer is $\\boxed{{{answer}}}$.", answer, "correct"))
        equivalent = reformat(answer, rng)
        if equivalent is not None:
            pairs.append((f"{filler}So the answer is \\boxed{{{equivalent}}}.", answer,
                          "reformatted"))
        pairs.append((f"{filler}Hence \\boxed{{{wrong(answer, rng)}}}.", answer, "wrong"))
    rng.shuffle(pairs)
    return pairs[:n]


def run_math_verify(pairs) -> tuple[list[float], float]:
    from math_verify import parse, verify

    logging.getLogger("math_verify").setLevel(logging.CRITICAL)
    start = time.perf_counter()
    scores = []
    for response, answer, _ in pairs:
        try:
            scores.append(1.0 if verify(parse(f"${answer}$"), parse(response)) else 0.0)
        except Exception:
            scores.append(0.0)
    return scores, time.perf_counter() - start


def run_rlscale(pairs, workers: int = 1, warm: bool = False) -> tuple[list[float], float, dict]:
    """Grade ``pairs`` with rlscale; ``warm``: start the worker before the clock starts."""
    from rlscale.core.grading import Grader, GradeTask

    start = time.perf_counter()
    with Grader(workers=workers, timeout=10.0) as grader:
        if warm:  # one item that needs Math-Verify starts (and warms) the worker process
            list(grader.stream([(None, GradeTask("\\boxed{[1,2)}", "(1,2)"))]))
            grader.counts = {"quick": 0, "pool": 0}
            start = time.perf_counter()
        scores = [result.reward for _, result in grader.stream(
            (None, GradeTask(response, answer)) for response, answer, _ in pairs)]
        elapsed = time.perf_counter() - start
        counts = dict(grader.counts)
    return scores, elapsed, counts


def report(title: str, pairs) -> None:
    kinds = [kind for _, _, kind in pairs]
    mv_scores, mv_time = run_math_verify(pairs)
    rl_scores, rl_time, counts = run_rlscale(pairs, workers=1)
    warm_scores, warm_time, _ = run_rlscale(pairs, workers=1, warm=True)
    assert warm_scores == rl_scores
    n = len(pairs)
    agree = sum(a == b for a, b in zip(mv_scores, rl_scores, strict=True)) / n
    truth = [0.0 if kind == "wrong" else 1.0 for kind in kinds]

    def accuracy(scores):
        return sum(s == t for s, t in zip(scores, truth, strict=True)) / n

    def false_positives(scores):
        return sum(s == 1.0 and t == 0.0 for s, t in zip(scores, truth, strict=True))

    mv_rate = n / mv_time
    print(f"\n{title}: {n} pairs ({kinds.count('correct')} correct, "
          f"{kinds.count('reformatted')} reformatted, {kinds.count('wrong')} wrong) from "
          "MATH-500 + GSM8K ground truths")
    print(f"{'grader':<44}{'answers/s':>10}{'seconds':>9}{'vs MV':>8}{'label acc':>11}"
          f"{'false +':>9}")
    rows = [("math_verify.parse+verify, one process", mv_time, mv_scores),
            ("rlscale --grader math -j 1, cold start", rl_time, rl_scores),
            ("rlscale --grader math -j 1, warm worker", warm_time, warm_scores)]
    for label, seconds, scores in rows:
        print(f"{label:<44}{n / seconds:>10.0f}{seconds:>9.2f}{(n / seconds) / mv_rate:>7.1f}x"
              f"{accuracy(scores):>11.4f}{false_positives(scores):>9d}")
    print(f"target >= 10x (cold start: {(n / rl_time) / mv_rate:.1f}x); agreement with "
          f"math-verify {agree:.4f} (target >= 0.99 on the boxed set); fast path decided "
          f"{counts['quick']}/{n}, Math-Verify worker {counts['pool']}")
    disagreements = [(p, m, r) for p, m, r in zip(pairs, mv_scores, rl_scores, strict=True)
                     if m != r]
    for (response, answer, kind), m, r in disagreements[:8]:
        print(f"  differs ({kind}): answer {answer!r} response ...{response[-60:]!r} "
              f"math-verify {m:.0f} rlscale {r:.0f}")


def main() -> None:
    report("boxed", build_pairs())
    report("unboxed", build_unboxed_pairs())


if __name__ == "__main__":
    main()
