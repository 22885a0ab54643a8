"""The one list of graders: :data:`REGISTRY`.

Everything that offers or runs a grader reads it: ``rlscale reward --grader`` (its choices and
help), :func:`rlscale.reward`, the grading stream (:mod:`.dispatch`: which items run in the
calling process, which in a worker, what ``pred`` a timed-out item reports), the VeRL reward
plug-in, and ``docs/extending-graders.md`` (a test keeps its table equal to this one).

A grader is a module with a ``full(task, config)`` function (:class:`~.task.GradeTask`,
:class:`~.task.GraderConfig` -> :class:`~.task.GradeResult`) and one :class:`GraderSpec` line
below that names it. Nothing here imports the graders themselves: ``--help`` reads this module,
and a grader's module is imported only when an item is graded by it.

``paper`` is the one grader that routes: it grades the paper's math data with its own scorers
and hands every ``data_source`` that starts with a spec's ``routes`` prefix to that grader (the
out-of-domain benchmarks of the paper's transfer study, §4, as its VeRL runs routed them).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rlscale.core.grading.task import GradingOptionError, answer_text

PAPER = "paper"


@dataclass(frozen=True)
class GraderSpec:
    """One grader: its ``name`` and one-line ``help``, the ``module`` holding it, and how the
    grading stream runs it.

    * ``full``: the module's function for the complete grade ``(task, config) -> GradeResult``;
      it may be slow or run processes, and runs in a worker with the time and memory limits;
    * ``quick``: its in-process path ``(task, config) -> GradeResult | None`` (None: the item
      needs ``full`` in a worker), tried first in the calling process, so it must be cheap and
      linear in the input; ``"full"`` when the complete grade is itself that cheap; None when
      every item needs a worker (:attr:`needs_worker`);
    * ``pred``: a cheap ``(task, config) -> str | None`` giving the answer to report for an
      item whose worker timed out or failed (None: such items report ``pred: null``);
    * ``warm``: a ``() -> None`` that a new worker runs once, before its first item (import
      and exercise slow libraries);
    * ``structured``: its ground truth may be an object or array (passed to it as JSON text);
    * ``routes``: ``data_source`` prefixes that ``--grader paper`` hands to this grader.
    """

    name: str
    help: str
    module: str
    full: str = "full"
    quick: str | None = "quick"
    pred: str | None = None
    warm: str | None = None
    structured: bool = False
    routes: tuple[str, ...] = ()

    @property
    def needs_worker(self) -> bool:
        """Every item runs in a worker process (there is no in-process path)."""
        return self.quick is None

    def function(self, role: str | None) -> Callable[..., Any] | None:
        """The module's function for ``role`` (an attribute name, e.g. ``self.full``)."""
        if role is None:
            return None
        module = sys.modules.get(self.module) or importlib.import_module(self.module)
        return getattr(module, role)


# The registration lines: one per grader, in the order ``--help`` lists them.
REGISTRY: tuple[GraderSpec, ...] = (
    GraderSpec("math", "fast path + Math-Verify", "rlscale.core.grading.math_grader",
               pred="extract", warm="warm_up"),
    GraderSpec(PAPER, "the paper's VeRL scorers, routed by data_source",
               "rlscale.core.grading.paper_grader", warm="warm_up"),
    GraderSpec("code", "run the last ```python block with the ground truth's test program in a "
               "sandbox", "rlscale.core.grading.code", quick=None, structured=True,
               routes=("codegen__",)),
    GraderSpec("logic", "the <answer> grid of a Zebra puzzle, cell by cell (binary reward, "
               "cell_accuracy)", "rlscale.core.grading.logic", quick="full", structured=True,
               routes=("logic__zebra_puzzle",)),
    GraderSpec("choice", "the option letter (\\boxed{C}, 'answer is (C)', a lone C)",
               "rlscale.core.grading.choice", quick="full", routes=("stem__supergpqa",)),
)


def names() -> tuple[str, ...]:
    """The registered graders' names, in registration order."""
    return tuple(spec.name for spec in REGISTRY)


def get(name: str) -> GraderSpec:
    """The spec of grader ``name`` (an OptionError naming ``grader`` if there is none)."""
    for spec in REGISTRY:
        if spec.name == name:
            return spec
    raise _unknown(name)


def check_name(name: str) -> None:
    """Refuse a grader name that is not registered (an OptionError naming ``grader``)."""
    if name not in names():
        raise _unknown(name)


def _unknown(name: str) -> GradingOptionError:
    return GradingOptionError("grader", f"must be one of {', '.join(names())}, got {name!r}")


def paper_sources(*, brief: bool = False) -> tuple[str, ...]:
    """The ``data_source`` patterns ``--grader paper`` grades: those of its own math scorers
    (:func:`~rlscale.core.grading.paper_grader.scorer_for`), then the routed prefixes.
    ``brief``: without ``math_dapo``, a ``math*`` source with a scorer of its own."""
    own = ("math*", "aime*", "openai/gsm8k") if brief else ("math*", "aime*", "math_dapo",
                                                             "openai/gsm8k")
    return own + tuple(f"{prefix}*" for spec in REGISTRY for prefix in spec.routes)


def help_line(spec: GraderSpec) -> str:
    """``spec.help``, with the sources the paper grader routes."""
    if spec.name == PAPER:
        return f"{spec.help} ({', '.join(paper_sources(brief=True))})"
    return spec.help


def summary() -> str:
    """Every grader and its help line: the help of ``reward --grader``."""
    return "; ".join(f"{spec.name}: {help_line(spec)}" for spec in REGISTRY) + "."


def domain_for(data_source: str | None) -> GraderSpec | None:
    """The grader ``--grader paper`` routes a ``data_source`` to (None: none of them).

    >>> domain_for("codegen__humaneval").name, domain_for("stem__supergpqa").name
    ('code', 'choice')
    >>> domain_for("math") is None
    True
    """
    if data_source is None:
        return None
    for spec in REGISTRY:
        if any(data_source.startswith(prefix) for prefix in spec.routes):
            return spec
    return None


def paper_routes(data_source: str | None) -> bool:
    """Does ``--grader paper`` have a scorer for this ``data_source``?"""
    from rlscale.core.grading.paper_grader import scorer_for

    return domain_for(data_source) is not None or scorer_for(data_source) is not None


def resolve(grader: str, data_source: str | None) -> GraderSpec:
    """The grader that actually grades an item: the one ``paper`` routes it to, or ``grader``."""
    if grader == PAPER:
        routed = domain_for(data_source)
        if routed is not None:
            return routed
    return get(grader)


def ground_truth_text(value) -> str | None:
    """A ground truth as the text graders take: strings and numbers as written, a structured
    one (a grid, a ``{"functional": ...}`` test program) as JSON; None: nothing usable."""
    import json

    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return answer_text(value)
