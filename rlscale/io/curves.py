"""The learning curves shipped with rlscale (package data): where they are and their records.

``rlscale/data/qwen2.5_base_instruct_curves.csv`` holds the Qwen2.5 Base and Instruct test-loss
curves of Tan et al. (2025); :mod:`rlscale.core.laws.paper` fits them (``fit --example``,
Table 6 and 7) from the records read here.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from rlscale.core.laws.paper import CURVES_FILE


def curves_path() -> str:
    """File system path of the shipped CSV (installed package data)."""
    return str(resources.files("rlscale").joinpath("data", CURVES_FILE))


def paper_curves() -> list[dict[str, Any]]:
    """Every record of the shipped CSV (1444 points: Base and Instruct, 0.5B-72B).

    >>> curves = paper_curves()
    >>> len(curves), curves[0]["variant"], curves[0]["model"], curves[0]["step"]
    (1444, 'Base', '0.5B', 1)
    """
    from rlscale.io.jsonl import RecordReader

    return [record for record, _ in RecordReader([curves_path()])]
