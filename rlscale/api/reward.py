"""``rlscale.reward``: grade model responses against ground-truth answers (streaming)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from rlscale.api._records import located
from rlscale.core.errors import OptionError

DEFAULT_FALLBACKS = "answer-is,math-span,hashes,last-number"


def reward(
    records: Iterable[Mapping[str, Any]],
    *,
    grader: str = "math",
    response_field: str = "completion",
    answer_field: str = "answer",
    data_source_field: str = "data_source",
    timeout: float = 2.0,
    workers: int = 0,
    memory_mb: int = 1024,
    fallbacks: str | Iterable[str] = DEFAULT_FALLBACKS,
    keep_thinking: bool = False,
    counts: dict[str, int] | None = None,
    progress: Callable[[Iterable], Iterable] | None = None,
) -> Iterator[dict[str, Any]]:
    """Grade each record's response; yield it with ``reward``, ``pred`` and ``verdict`` added.

    One output record per input record, in input order; each item is bounded by ``timeout``
    seconds and ``memory_mb`` MiB in a pool of worker processes (a runaway item gets verdict
    ``timeout`` or ``error`` and the stream goes on). ``fallbacks``: where the math grader looks
    when there is no ``\\boxed{}`` (a comma list or a sequence; ``"none"``: boxed answers only).
    ``counts``, when given, is filled with the number of records per verdict.

    >>> [r["verdict"] for r in reward([{"completion": "so \\\\boxed{4}", "answer": "4"},
    ...                                 {"completion": "it is 5", "answer": "4"}])]
    ['correct', 'wrong']
    """
    from rlscale.core.grading import FALLBACKS, GRADERS, VERDICTS
    from rlscale.core.grading.dispatch import Grader, GraderConfig, GradeTask
    from rlscale.core.grading.math_grader import MathOptions
    from rlscale.core.grading.registry import (
        STRUCTURED_GRADERS,
        ground_truth_text,
        paper_routes,
        resolve,
    )

    if grader not in GRADERS:
        raise OptionError("grader", f"must be one of {', '.join(GRADERS)}, got {grader!r}")
    if not timeout > 0:
        raise OptionError("timeout", f"must be > 0, got {timeout}")
    if workers < 0:
        raise OptionError("workers", f"must be >= 0, got {workers}")
    if memory_mb < 64:
        raise OptionError("memory_mb", f"must be >= 64, got {memory_mb}")
    names = fallbacks.split(",") if isinstance(fallbacks, str) else list(fallbacks)
    chosen = [name.strip() for name in names if name.strip()]
    if chosen == ["none"]:
        chosen = []
    unknown = [name for name in chosen if name not in FALLBACKS]
    if unknown:
        raise OptionError("fallbacks", f": unknown {', '.join(unknown)}; expected some of "
                         f"{', '.join(FALLBACKS)} or none")
    config = GraderConfig(grader, MathOptions(tuple(chosen), not keep_thinking))
    if counts is not None:
        counts.update(dict.fromkeys(VERDICTS, 0))
    paper = grader == "paper"
    items = located(records, required={response_field: "str", answer_field: "any"},
                    optional={data_source_field: "str"} if paper else None)

    def tasks():
        for record, where in (progress or iter)(items):
            source = record.get(data_source_field) if paper else None
            if paper and not paper_routes(source):
                items.invalid(where, f"data_source {source!r} has no paper scorer (expected "
                              "math*, aime*, math_dapo, openai/gsm8k, codegen__*, "
                              "logic__zebra_puzzle* or stem__supergpqa*)")
                continue
            value = record[answer_field]
            gold = ground_truth_text(value)
            if gold is None:
                items.invalid(where, f"{answer_field}: expected a string, number, object or "
                              "array")
                continue
            if isinstance(value, dict | list) and resolve(grader, source) not in STRUCTURED_GRADERS:
                items.invalid(where, f"{answer_field}: an object or array is a ground truth of "
                              f"the code or logic grader only, not {resolve(grader, source)}")
                continue
            yield record, GradeTask(record[response_field], gold, source)

    with Grader(config, workers=workers, timeout=timeout, memory_mb=memory_mb) as pool:
        for record, result in pool.stream(tasks()):
            if counts is not None:
                counts[result.verdict] += 1
            yield {**record, "reward": result.reward, "pred": result.pred,
                   "verdict": result.verdict, **(result.details or {})}
