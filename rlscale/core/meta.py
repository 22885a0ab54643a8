"""The metadata randomised tools echo in their records, so a result can be reproduced."""

from __future__ import annotations

from typing import Any

from rlscale import __version__


def run_meta(seed: int | None = None, **extra: Any) -> dict[str, Any]:
    """``{"rlscale_version": ..., "seed": seed, **extra}`` (no seed key when ``seed`` is None).

    >>> run_meta(3, bootstrap=10)["seed"], sorted(run_meta())
    (3, ['rlscale_version'])
    """
    meta: dict[str, Any] = {"rlscale_version": __version__}
    if seed is not None:
        meta["seed"] = seed
    meta.update(extra)
    return meta
