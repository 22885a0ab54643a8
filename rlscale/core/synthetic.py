"""A seeded synthetic math task: integer arithmetic with graded difficulty and ``\\boxed{}`` answers.

The micro scaling study (``make demo``) needs a task that tiny models can partly learn in a few
seconds of CPU pretraining, that a rule-based grader scores exactly, and whose problems range from
trivially easy to out of reach, so that difficulty (measured as a reference model's pass rate, as
the paper does with Qwen2.5-7B) spreads out and a curriculum means something.

Problems are one integer operation (``+``, ``-``, ``*``) on operands of a few digits. Difficulty
*levels* (``LEVELS``) order the operand shapes roughly by how hard they are for a small transformer:
a one-digit sum is memorised quickly, a three-digit sum needs carries, a two-by-one-digit product
needs more. The level is kept on each record only as a label; the curriculum itself uses measured
pass rates.

Everything here is pure: randomness comes from the ``random.Random`` passed in.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

DATA_SOURCE = "synthetic__arithmetic"
# The paper's prompt suffix (every held-out prompt ends with it; see paper-method §2.3).
BOXED_SUFFIX = "Please output the final answer within \\boxed{}."


@dataclass(frozen=True)
class Level:
    """One operand shape: ``op`` applied to a ``digits_a``-digit and a ``digits_b``-digit number."""

    op: str
    digits_a: int
    digits_b: int

    def operand_range(self, digits: int) -> tuple[int, int]:
        # One-digit operands include 0; wider operands have no leading zero.
        return (0, 9) if digits == 1 else (10 ** (digits - 1), 10**digits - 1)


# Ordered easy -> hard (level number = index + 1).
LEVELS: tuple[Level, ...] = (
    Level("+", 1, 1),
    Level("*", 1, 1),
    Level("+", 2, 1),
    Level("-", 2, 1),
    Level("+", 2, 2),
    Level("-", 2, 2),
    Level("*", 2, 1),
    Level("+", 3, 2),
    Level("+", 3, 3),
    Level("-", 3, 3),
)


def make_problem(rng: random.Random, level: int) -> dict:
    """Draw one problem of ``level`` (1-based). Subtractions never go below zero."""
    if not 1 <= level <= len(LEVELS):
        raise ValueError(f"level must be in 1..{len(LEVELS)}, got {level}")
    spec = LEVELS[level - 1]
    a = rng.randint(*spec.operand_range(spec.digits_a))
    b = rng.randint(*spec.operand_range(spec.digits_b))
    if spec.op == "-" and b > a:
        a, b = b, a
    result = {"+": a + b, "-": a - b, "*": a * b}[spec.op]
    expression = f"{a} {spec.op} {b}"
    return {
        "prompt": f"What is {expression}? {BOXED_SUFFIX}",
        "answer": str(result),
        "data_source": DATA_SOURCE,
        "level": level,
        "expression": expression,
    }


# How a pretraining text may state the answer. Only "boxed" earns reward under the boxed-only
# grader the demo uses, so a base model pretrained on a mix must learn the format during RL,
# as real base models do (see docs/demo-results.md).
ANSWER_STYLES = ("boxed", "answer-is", "bare")


def solution_text(problem: dict, style: str = "boxed") -> str:
    """The text that answers ``problem`` in one of ``ANSWER_STYLES``."""
    answer = problem["answer"]
    if style == "boxed":
        return f"\\boxed{{{answer}}}"
    if style == "answer-is":
        return f"The answer is {answer}."
    if style == "bare":
        return str(answer)
    raise ValueError(f"unknown answer style {style!r} (known: {', '.join(ANSWER_STYLES)})")


def with_answer_styles(rng: random.Random, problems: Sequence[dict],
                       weights: Sequence[float]) -> list[dict]:
    """Copies of ``problems`` each with a ``solution`` written in a style drawn with ``weights``
    (one weight per entry of ``ANSWER_STYLES``)."""
    if len(weights) != len(ANSWER_STYLES):
        raise ValueError(f"need {len(ANSWER_STYLES)} style weights, got {len(weights)}")
    styled = []
    for problem in problems:
        style = rng.choices(ANSWER_STYLES, weights=weights)[0]
        styled.append({**problem, "style": style, "solution": solution_text(problem, style)})
    return styled


def generate_problems(rng: random.Random, n: int, levels: Sequence[int] | None = None,
                      weights: Sequence[float] | None = None, *,
                      unique: bool = True, exclude: set[str] | frozenset[str] = frozenset(),
                      ) -> list[dict]:
    """``n`` problems drawn level by level (``weights`` over ``levels``, uniform by default).

    With ``unique`` a prompt is never repeated; prompts in ``exclude`` are never drawn (used to
    keep a pretraining corpus from containing the RL pool verbatim where the level is big enough).
    Raises ValueError if the levels cannot supply ``n`` distinct problems.
    """
    levels = list(levels or range(1, len(LEVELS) + 1))
    if weights is not None and len(weights) != len(levels):
        raise ValueError("weights must have one entry per level")
    problems: list[dict] = []
    seen: set[str] = set(exclude)
    attempts = 0
    while len(problems) < n:
        attempts += 1
        if attempts > 200 * n + 10_000:
            raise ValueError(f"cannot draw {n} distinct problems from levels {levels}")
        level = rng.choices(levels, weights=weights)[0]
        problem = make_problem(rng, level)
        if problem["prompt"] in seen:
            continue
        if unique:
            seen.add(problem["prompt"])
        problems.append(problem)
    return problems


def number_problems(problems: Sequence[dict], prefix: str = "arith") -> Iterator[dict]:
    """Give each problem a stable ``id`` (``arith-00000``...) in order, keeping other fields."""
    width = max(5, len(str(max(len(problems) - 1, 0))))
    for index, problem in enumerate(problems):
        yield {"id": f"{prefix}-{index:0{width}d}", **problem}


def level_space_size(level: int) -> int:
    """How many distinct problems ``level`` can produce (before the b > a swap for ``-``)."""
    spec = LEVELS[level - 1]
    lo_a, hi_a = spec.operand_range(spec.digits_a)
    lo_b, hi_b = spec.operand_range(spec.digits_b)
    return (hi_a - lo_a + 1) * (hi_b - lo_b + 1)
