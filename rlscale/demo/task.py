"""The demo's task: sums of single digits, solved by a running total written out step by step.

The micro scaling study (``make demo``) needs a task on which RL improves a *skill* that
transfers to problems the model never trained on, not an answer format. Here a problem is a
sum of a few digits (``What is 3 + 5 + 8 + 2? ...``) and the procedure that solves it is a
running total written out one addition at a time::

    3+5=8 8+8=16 16+2=18 \\boxed{18}

Each written step is one small fact (a number up to 54 plus one digit) and the boxed answer is a
copy of the last total, so a tiny model that has learned the facts solves any such problem.
The pretraining corpus (``pretraining_corpus``) teaches the procedure only partly, as base
models are taught: most demonstrations jump straight to the answer (``\\boxed{18}``, which a
tiny model cannot compute in one step), and some worked demonstrations contain a slip (one step
off by a little, carried through to a wrong answer). A base model pretrained on it writes the
procedure only sometimes and slips now and then, so it solves a problem in one sample of
eight far more often than in one: pass@8 is far above pass@1, and every answer is boxed (the
format is learned in pretraining). GRPO, rewarded only for the right boxed answer, can turn the
one into the other: choose the procedure and follow it without slips, on held-out sums too.

Difficulty *levels* are the number of operands (2-7): more steps, more chances to slip. The level
is kept on each record as a label; the curriculum itself uses measured pass rates.

Everything here is pure: randomness comes from the ``random.Random`` passed in.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

DATA_SOURCE = "synthetic__digit_sums"
# The paper's prompt suffix (every held-out prompt ends with it; see paper-method §2.3).
BOXED_SUFFIX = "Please output the final answer within \\boxed{}."
# Number of operands a problem may have; the level of a problem is its number of operands.
MIN_OPERANDS, MAX_OPERANDS = 2, 7
# Ways a pretraining text may solve a problem: the running total written out, or the answer alone.
STYLES = ("worked", "direct")


def make_problem(rng: random.Random, n_operands: int) -> dict:
    """Draw one sum of ``n_operands`` digits (each 0-9)."""
    if not MIN_OPERANDS <= n_operands <= MAX_OPERANDS:
        raise ValueError(f"level must be in {MIN_OPERANDS}..{MAX_OPERANDS}, got {n_operands}")
    digits = [rng.randint(0, 9) for _ in range(n_operands)]
    expression = " + ".join(map(str, digits))
    return {
        "prompt": f"What is {expression}? {BOXED_SUFFIX}",
        "answer": str(sum(digits)),
        "data_source": DATA_SOURCE,
        "level": n_operands,
        "expression": expression,
    }


def operands(problem: dict) -> list[int]:
    """The digits of a problem, from its ``expression``."""
    return [int(part) for part in problem["expression"].split(" + ")]


def worked_solution(problem: dict, slip_at: int | None = None, slip: int = 0) -> str:
    """The running-total solution; with ``slip_at`` the total after that step (0-based) is off
    by ``slip`` (never below 0) and the error is carried through to the boxed answer."""
    digits = operands(problem)
    total = digits[0]
    steps = []
    for index, digit in enumerate(digits[1:]):
        result = total + digit
        if index == slip_at:
            result = max(0, result + slip)
        steps.append(f"{total}+{digit}={result}")
        total = result
    return " ".join(steps) + f" \\boxed{{{total}}}"


def direct_solution(problem: dict, miss: int = 0) -> str:
    """The answer alone, boxed; off by ``miss`` (never below 0), a guess that missed."""
    return f"\\boxed{{{max(0, int(problem['answer']) + miss)}}}"


def pretraining_corpus(rng: random.Random, problems: Sequence[dict], *, worked_share: float,
                       slip_rate: float, miss_rate: float) -> list[dict]:
    """Copies of ``problems`` each with a ``solution`` text and its ``style``.

    A problem is worked out with probability ``worked_share``, else answered directly; a worked
    solution slips (one step off by 1 or 2, carried through) with probability ``slip_rate``, a
    direct answer misses (off by 1 to 3: a guess) with probability ``miss_rate``.
    ``correct`` says whether the text's boxed answer is the true sum.
    """
    if not all(0.0 <= rate <= 1.0 for rate in (worked_share, slip_rate, miss_rate)):
        raise ValueError("worked_share, slip_rate and miss_rate must lie in [0, 1]")
    corpus = []
    for problem in problems:
        if rng.random() < worked_share:
            slip_at = slip = None
            if rng.random() < slip_rate:
                slip_at = rng.randrange(len(operands(problem)) - 1)
                slip = rng.choice((-2, -1, 1, 2))
            text = worked_solution(problem, slip_at, slip or 0)
            style = "worked"
        else:
            miss = rng.choice((-3, -2, -1, 1, 2, 3)) if rng.random() < miss_rate else 0
            text, style = direct_solution(problem, miss), "direct"
        answer = text[text.rindex("{") + 1: -1]
        corpus.append({**problem, "style": style, "solution": text,
                       "correct": answer == problem["answer"]})
    return corpus


def generate_problems(rng: random.Random, n: int, levels: Sequence[int] | None = None, *,
                      unique: bool = True, exclude: set[str] | frozenset[str] = frozenset(),
                      ) -> list[dict]:
    """``n`` problems, each of a level drawn uniformly from ``levels`` (default: all).

    With ``unique`` a prompt is never repeated; prompts in ``exclude`` are never drawn (used to
    keep the pretraining corpus from containing the RL pool, so RL problems are new to the
    model). Raises ValueError if the levels cannot supply ``n`` distinct problems.
    """
    levels = list(levels or range(MIN_OPERANDS, MAX_OPERANDS + 1))
    problems: list[dict] = []
    seen: set[str] = set(exclude)
    attempts = 0
    while len(problems) < n:
        attempts += 1
        if attempts > 200 * n + 10_000:
            raise ValueError(f"cannot draw {n} distinct problems from levels {levels}")
        problem = make_problem(rng, rng.choice(levels))
        if problem["prompt"] in seen:
            continue
        if unique:
            seen.add(problem["prompt"])
        problems.append(problem)
    return problems


def number_problems(problems: Sequence[dict], prefix: str = "sum") -> Iterator[dict]:
    """Give each problem a stable ``id`` (``sum-00000``...) in order, keeping other fields."""
    width = max(5, len(str(max(len(problems) - 1, 0))))
    for index, problem in enumerate(problems):
        yield {"id": f"{prefix}-{index:0{width}d}", **problem}


def is_worked(completion: str) -> bool:
    """Whether a sampled completion follows the procedure (writes at least one step)."""
    return "=" in completion.split("\\boxed", 1)[0]
