"""The one list of graders: what ``reward --grader`` offers, what ``--grader paper`` routes to,
and what the VeRL plug-in uses.

* ``math``: rlscale's math grader; ``paper``: the paper's scorers, routed by ``data_source``;
* ``code``, ``logic``, ``choice``: the out-of-domain graders of the paper's transfer study
  (§4), also chosen by ``--grader paper`` from the ``data_source`` prefixes below, as the
  paper's VeRL runs routed them.
"""

from __future__ import annotations

GRADER_HELP = {
    "math": "fast path + Math-Verify",
    "paper": "the paper's VeRL scorers, routed by data_source (math*, aime*, openai/gsm8k, "
             "codegen__*, logic__zebra_puzzle*, stem__supergpqa*)",
    "code": "run the last ```python block with the ground truth's test program in a sandbox",
    "logic": "the <answer> grid of a Zebra puzzle, cell by cell (binary reward, cell_accuracy)",
    "choice": "the option letter (\\boxed{C}, 'answer is (C)', a lone C)",
}
GRADERS = tuple(GRADER_HELP)
DOMAIN_GRADERS = ("code", "logic", "choice")
# data_source prefixes of the paper's out-of-domain benchmarks -> grader
DOMAIN_PREFIXES = (("codegen__", "code"), ("logic__zebra_puzzle", "logic"),
                   ("stem__supergpqa", "choice"))
# graders whose ground truth may be structured (a test program object, a grid)
STRUCTURED_GRADERS = frozenset({"code", "logic"})
# graders that run a process (not cheap enough for the in-process fast path)
NEEDS_WORKER = frozenset({"code"})


def domain_for(data_source: str | None) -> str | None:
    """The out-of-domain grader for a ``data_source`` (None: not one of them).

    >>> domain_for("codegen__humaneval"), domain_for("stem__supergpqa"), domain_for("math")
    ('code', 'choice', None)
    """
    if data_source is None:
        return None
    for prefix, grader in DOMAIN_PREFIXES:
        if data_source.startswith(prefix):
            return grader
    return None


def paper_routes(data_source: str | None) -> bool:
    """Does ``--grader paper`` have a scorer for this ``data_source``?"""
    from rlscale.core.grading.paper_grader import scorer_for

    return domain_for(data_source) is not None or scorer_for(data_source) is not None


def resolve(grader: str, data_source: str | None) -> str:
    """The grader that actually grades an item: a domain grader, or ``grader`` itself."""
    if grader in DOMAIN_GRADERS:
        return grader
    if grader == "paper":
        return domain_for(data_source) or "paper"
    return grader


def sandbox_limits(item_timeout: float | None):
    """Sandbox limits inside a worker's per-item timeout (so the sandbox, not the pool, ends
    a runaway solution and cleans up after it)."""
    from rlscale.runtime.sandbox import Limits

    if item_timeout is None:
        return Limits()
    wall = max(0.05, item_timeout * 0.8 - 0.05)
    return Limits(wall=wall, cpu=wall)


def grade_domain(grader: str, response: str, gold: str, item_timeout: float | None):
    if grader == "code":
        from rlscale.core.grading import code

        return code.grade(response, gold, sandbox_limits(item_timeout))
    if grader == "logic":
        from rlscale.core.grading import logic

        return logic.grade(response, gold)
    from rlscale.core.grading import choice

    return choice.grade(response, gold)


def ground_truth_text(value) -> str | None:
    """A ground truth as the text graders take: strings and numbers as written, a structured
    one (a grid, a ``{"functional": ...}`` test program) as JSON; None: nothing usable."""
    import json

    from rlscale.core.grading.bounded import answer_text

    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return answer_text(value)
