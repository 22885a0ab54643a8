"""The one list of scaling laws: every law's name, where its factory lives, and its words in
``rlscale fit --help``.

``rlscale fit`` (its ``--law`` check and ``--help``), :func:`rlscale.fit`, :func:`get_law` and
``docs/extending-laws.md`` all read :data:`LAWS`. The factories are named by import path
(``module:function``) and imported only when a law is built, so reading the registry costs no
numpy or scipy import (``--help`` stays light). Adding a law is one module with a factory that
returns a :class:`~rlscale.core.laws.forms.Law` and one :func:`register` line below; see
``docs/extending-laws.md``.

>>> list(LAWS)[:2], LAWS["saturating"].factory
(['saturating', 'loglinear'], 'rlscale.core.laws.forms:saturating_law')
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Entry:
    """One registered law: ``factory`` is ``"package.module:function"``; ``note`` follows the
    name in ``--law``'s help (``"(default)"``)."""

    name: str
    factory: str
    note: str = ""

    def load(self) -> Callable[..., Any]:
        """The factory function (imports its module)."""
        module_name, _, attr = self.factory.partition(":")
        return getattr(importlib.import_module(module_name), attr)


LAWS: dict[str, Entry] = {}


def register(name: str, factory: str, note: str = "") -> Entry:
    """Add (or replace) the law ``name``, built by ``factory`` (``"module:function"``)."""
    if not name or ":" in name or "," in name:
        raise ValueError(f"a law name is a word without ':' or ',', got {name!r}")
    if factory.count(":") != 1:
        raise ValueError(f"a law factory is 'module:function', got {factory!r}")
    LAWS[name] = entry = Entry(name, factory, note)
    return entry


def names() -> tuple[str, ...]:
    """Registered law names, in the order ``--help`` and error messages list them."""
    return tuple(LAWS)


def help_text() -> str:
    """The laws part of ``rlscale fit --law``'s help."""
    return " | ".join(f"{e.name} {e.note}".rstrip() for e in LAWS.values())


# Registration order is the order shown in --help and in "expected one of" messages.
register("saturating", "rlscale.core.laws.forms:saturating_law", "(default)")
register("loglinear", "rlscale.core.laws.forms:loglinear_law", "(default with --plan)")
register("decomposition", "rlscale.core.laws.forms:decomposition_law")
register("sigmoid", "rlscale.core.laws.forms:sigmoid_law")
register("reuse", "rlscale.core.laws.forms:reuse_law")
register("efficiency", "rlscale.core.laws.forms:efficiency_law", "(k vs N)")
