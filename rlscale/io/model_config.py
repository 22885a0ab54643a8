"""A Hugging Face model's ``config.json`` and the names on disk that carry its size label.

No weights are read: parameter counts come from the config alone
(:func:`rlscale.core.flops.count_params`), the nominal size from the model's directory name
(:func:`rlscale.core.flops.nominal_size`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import orjson

from rlscale.core.errors import RlscaleError


def load_config(path: str) -> tuple[dict[str, Any], str]:
    """Read ``config.json`` from a file or a model directory; return (config, path read)."""
    config_path = os.path.join(path, "config.json") if os.path.isdir(path) else path
    try:
        with open(config_path, "rb") as handle:
            config = orjson.loads(handle.read())
    except FileNotFoundError:
        raise RlscaleError(f"{config_path}: no such file") from None
    except orjson.JSONDecodeError as exc:
        raise RlscaleError(f"{config_path}: invalid JSON: {str(exc).split(': line ')[0]}") from None
    except OSError as exc:
        raise RlscaleError(f"{config_path}: cannot read: {exc.strerror or exc}") from None
    if not isinstance(config, dict):
        raise RlscaleError(f"{config_path}: expected a JSON object")
    return config, config_path


def model_names(model_path: str) -> list[str]:
    """The directory names that name the model at ``model_path`` (a directory or its
    config.json): its own directory and, in the Hugging Face cache layout
    ``models--Qwen--Qwen2.5-7B/snapshots/<hash>``, the ``models--`` directory. Other parent
    directories are not names of the model: ``runs/exp-2b/...`` says nothing about its size.
    """
    path = os.path.abspath(model_path)
    if not os.path.isdir(path):
        path = os.path.dirname(path)
    names = [os.path.basename(path)]
    parent = os.path.dirname(path)
    if os.path.basename(parent) == "snapshots":
        names.append(os.path.basename(os.path.dirname(parent)))
    return names


def nominal_from_model(model_path: str, config: Mapping[str, Any], total: int) -> tuple[float, str]:
    """The nominal N of the model at ``model_path``: :func:`rlscale.core.flops.nominal_size`
    over its :func:`model_names`. Returns (N, how it was found)."""
    from rlscale.core.flops import nominal_size

    return nominal_size(model_names(model_path), config, total)
