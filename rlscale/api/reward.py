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
    ``timeout`` or ``error`` and the stream goes on). ``grader``: a name of the grader registry
    (:mod:`rlscale.core.grading.registry`; ``paper`` routes by ``data_source_field``).
    ``fallbacks``: where the math grader looks when there is no ``\\boxed{}`` (a comma list or
    a sequence; ``"none"``: boxed answers only). ``counts``, when given, is filled with the
    number of records per verdict. Bad options raise an OptionError naming the parameter, at
    the call; a bad record raises a RecordError naming it (``<records>:N``) when it is reached.

    >>> [r["verdict"] for r in reward([{"completion": "so \\\\boxed{4}", "answer": "4"},
    ...                                 {"completion": "it is 5", "answer": "4"}])]
    ['correct', 'wrong']
    """
    from rlscale.core.grading import registry
    from rlscale.core.grading.extraction import FALLBACKS
    from rlscale.core.grading.task import VERDICTS, GraderConfig, MathOptions

    registry.check_name(grader)
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
    return _graded(records, config, response_field, answer_field, data_source_field, timeout,
                   workers, memory_mb, counts, progress)


def _graded(records, config, response_field: str, answer_field: str, data_source_field: str,
            timeout: float, workers: int, memory_mb: int, counts: dict[str, int] | None,
            progress: Callable[[Iterable], Iterable] | None) -> Iterator[dict[str, Any]]:
    from rlscale.core.grading import dispatch, registry
    from rlscale.core.grading.task import GradeTask

    paper = config.grader == registry.PAPER
    items = located(records, required={response_field: "str", answer_field: "any"},
                    optional={data_source_field: "str"} if paper else None)
    sources = registry.paper_sources()
    structured = " or ".join(spec.name for spec in registry.REGISTRY if spec.structured)

    def tasks():
        for record, where in (progress or iter)(items):
            source = record.get(data_source_field) if paper else None
            if paper and not registry.paper_routes(source):
                items.invalid(where, f"data_source {source!r} has no paper scorer (expected "
                              f"{', '.join(sources[:-1])} or {sources[-1]})")
                continue
            value = record[answer_field]
            gold = registry.ground_truth_text(value)
            if gold is None:
                items.invalid(where, f"{answer_field}: expected a string, number, object or "
                              "array")
                continue
            spec = registry.resolve(config.grader, source)
            if isinstance(value, dict | list) and not spec.structured:
                items.invalid(where, f"{answer_field}: an object or array is a ground truth of "
                              f"the {structured} grader only, not {spec.name}")
                continue
            yield record, GradeTask(record[response_field], gold, source)

    with dispatch.Grader(config, workers=workers, timeout=timeout, memory_mb=memory_mb) as pool:
        for record, result in pool.stream(tasks()):
            if counts is not None:
                counts[result.verdict] += 1
            yield {**record, "reward": result.reward, "pred": result.pred,
                   "verdict": result.verdict, **(result.details or {})}
