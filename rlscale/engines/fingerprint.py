"""Which weights a checkpoint directory holds, cheaply: a fingerprint for ``rollout --resume``.

A cron loop keeps the path (``--model ckpt``) while the weights under it change, so the path says
nothing. Reading every weight would take minutes at 7B; instead each weights file contributes its
name, size, mtime and a hash of its safetensors header (names, dtypes, shapes, offsets) or of the
index / adapter config, and the rlscale trainer state adds the step. A checkpoint published by
``grpo-step`` is a new set of files (new mtimes, new step), so its fingerprint differs; a copy
(``cp -r``) differs too, which errs on the side of refusing. Nothing here imports torch.
"""

from __future__ import annotations

import hashlib
import os
import struct

from rlscale.engines.checkpoints import TRAINER_STATE_FILE

# Files whose whole content is small and identifying.
SMALL_FILES = ("model.safetensors.index.json", "pytorch_model.bin.index.json",
               "adapter_config.json", TRAINER_STATE_FILE, "config.json")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")
MAX_HEADER_BYTES = 100 << 20  # safetensors' own limit on the header


def _safetensors_header(path: str) -> bytes:
    with open(path, "rb") as handle:
        head = handle.read(8)
        if len(head) != 8:
            return b""
        (size,) = struct.unpack("<Q", head)
        return handle.read(min(size, MAX_HEADER_BYTES))


def weights_fingerprint(*directories: str | None) -> str:
    """16 hex digits identifying the weights under ``directories`` (model, then LoRA adapter).

    >>> import tempfile, pathlib
    >>> d = tempfile.mkdtemp(); _ = pathlib.Path(d, "config.json").write_text("{}")
    >>> weights_fingerprint(d) == weights_fingerprint(d)
    True
    """
    digest = hashlib.sha256()
    for directory in directories:
        if directory is None:
            continue
        digest.update(b"\x00dir")
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            digest.update(directory.encode())  # not local (a hub name): the name is all we have
            continue
        for name in names:
            path = os.path.join(directory, name)
            is_weights = name.endswith(WEIGHT_SUFFIXES)
            if not (is_weights or name in SMALL_FILES) or not os.path.isfile(path):
                continue
            info = os.stat(path)
            digest.update(f"\x00{name}\x00{info.st_size}\x00{info.st_mtime_ns}".encode())
            if name.endswith(".safetensors"):
                digest.update(_safetensors_header(path))
            elif name in SMALL_FILES:
                with open(path, "rb") as handle:
                    digest.update(handle.read())
    return digest.hexdigest()[:16]


def served_fingerprint(model: str, root: str | None) -> str:
    """16 hex digits identifying what a server serves: the served name, where it is served from
    (``root`` in its model list) and, when that is a local directory, its weights' fingerprint.
    """
    text = f"openai\x00{model}\x00{root or ''}"
    if root and os.path.isdir(root):
        text += "\x00" + weights_fingerprint(root)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
