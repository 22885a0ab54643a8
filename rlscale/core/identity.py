"""Record identity: when two records are about the same prompt, group, run or model size.

The one definition every tool uses (rollout's seeds and resume, reward, eval's per-prompt
tallies, curate's pass rates and dedup, flops' runs, fit's groups):

* a **prompt id** is a string or a number; ``1`` and ``1.0`` are the same id, ``"1"`` is a
  different one (ids are JSON values, and a JSON number is its value), integers of any size
  are exact;
* a **group key** compares numbers by value (``7e9`` and ``7000000000`` are one group),
  keeps booleans apart from numbers and strings apart from both, and compares objects and
  arrays by their canonical JSON;
* a **label** is the text a group is shown and stored under in outputs (``7000000000``,
  ``0.5``, ``7B``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson


def _number_text(value: int | float) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # exact for every integral float, however large
    return repr(value) if isinstance(value, float) else str(value)


def prompt_key(prompt_id: str | int | float) -> str:
    """Canonical text of a prompt id: ``1`` and ``1.0`` give ``1``; ``"1"`` gives ``"1"``.

    >>> prompt_key("a"), prompt_key(1), prompt_key(1.0), prompt_key("1"), prompt_key(0.5)
    ('"a"', '1', '1', '"1"', '0.5')
    >>> prompt_key(123456789012345678901234567890)
    '123456789012345678901234567890'
    """
    if isinstance(prompt_id, str):
        return orjson.dumps(prompt_id).decode()
    if isinstance(prompt_id, bool) or not isinstance(prompt_id, (int, float)):
        raise ValueError(f"a prompt id must be a string or a number, got {prompt_id!r}")
    return _number_text(prompt_id)


def value_key(value: Any) -> tuple:
    """A hashable key of one group value (see the module docstring).

    >>> value_key(7e9) == value_key(7000000000), value_key(True) == value_key(1)
    (True, False)
    """
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, (int, float)):
        if isinstance(value, float) and value.is_integer():
            return ("n", int(value))  # 1.0 and 1 are one value, big integers stay exact
        return ("n", value)
    if isinstance(value, str):
        return ("s", value)
    if value is None:
        return ("z",)
    return ("j", orjson.dumps(value, option=orjson.OPT_SORT_KEYS))


def group_key(values: Sequence[Any]) -> tuple:
    """A hashable key of a group given by several values (``--by step,N``).

    >>> group_key([7e9, "a"]) == group_key([7000000000, "a"])
    True
    """
    return tuple(value_key(value) for value in values)


def label(value: Any) -> str:
    """The text a group value is shown and stored under.

    >>> label(7e9), label(7000000000), label(0.5), label("7B"), label(2), label(True)
    ('7000000000', '7000000000', '0.5', '7B', '2', 'true')
    """
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return _number_text(value)
    return str(value)
