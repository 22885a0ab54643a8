"""What every grader takes and gives: :class:`GradeTask`, :class:`GraderConfig` and
:class:`GradeResult` (light: the grader registry and ``--help`` import this, not the graders)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rlscale.core.errors import OptionError
from rlscale.core.grading.extraction import FALLBACKS

VERDICTS = ("correct", "wrong", "no_answer", "timeout", "error")


class GradingOptionError(OptionError, ValueError):
    """A bad parameter of a grading function. Also a ValueError, which is what these functions
    raised before they named the parameter (callers that catch ValueError keep working)."""


@dataclass(frozen=True)
class GradeTask:
    """One item to grade. ``data_source`` routes the ``paper`` grader."""

    response: str
    answer: str
    data_source: str | None = None


@dataclass(frozen=True, slots=True)
class GradeResult:
    """The grade of one response: ``reward`` 1.0/0.0, extracted ``pred``, ``verdict``.

    ``details``: extra fields a grader reports beside them (e.g. ``reason`` of an error, the
    logic grader's ``cell_accuracy``); ``reward`` adds them to the record."""

    reward: float
    pred: str | None
    verdict: str
    details: dict | None = None

    @classmethod
    def of(cls, correct: bool, pred: str | None) -> GradeResult:
        return cls(1.0 if correct else 0.0, pred, "correct" if correct else "wrong")


@dataclass(frozen=True)
class MathOptions:
    """Options of the ``math`` grader: ``fallbacks`` (where to look when there is no box, see
    :data:`~rlscale.core.grading.extraction.FALLBACKS`) and ``split_thinking`` (search only the
    text after the last ``</think>``)."""

    fallbacks: tuple[str, ...] = FALLBACKS
    split_thinking: bool = True


@dataclass(frozen=True)
class GraderConfig:
    """Which registered grader grades (``grader``, a name of
    :data:`~rlscale.core.grading.registry.REGISTRY`) and with which options."""

    grader: str = "math"
    math_options: MathOptions = field(default_factory=MathOptions)
    item_timeout: float | None = None  # set by Grader: the sandbox of ``code`` stays inside it

    def __post_init__(self) -> None:
        from rlscale.core.grading.registry import check_name

        check_name(self.grader)


def answer_text(value: Any) -> str | None:
    """A ground truth as text: strings as they are, numbers as written (``3.0`` -> ``3``),
    bytes decoded (invalid UTF-8 replaced); None for anything else (no answer to compare)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, bool):
        return None  # True/False is not a math answer (and would read as 1/0)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, int | float):
        return str(value)
    return None
