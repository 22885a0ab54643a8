"""The weights fingerprint that ``rollout --resume`` checks (rlscale.engines.fingerprint)."""

from __future__ import annotations

import json
import os
import struct

from hypothesis import given
from hypothesis import strategies as st

from rlscale.engines.fingerprint import weights_fingerprint
from rlscale.engines.openai_rollout import served_step


def write_safetensors(path, shapes: dict[str, list[int]], payload: bytes = b"") -> None:
    """A minimal safetensors file: 8-byte header length, JSON header, data."""
    header, offset = {}, 0
    for name, shape in shapes.items():
        size = 4
        for dim in shape:
            size *= dim
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", len(raw)) + raw + (payload or b"\0" * offset))


def test_fingerprint_follows_the_weights_not_the_path_or_other_files(tmp_path):
    model = tmp_path / "m"
    model.mkdir()
    write_safetensors(model / "model.safetensors", {"w": [2, 2]})
    (model / "config.json").write_text("{}")
    first = weights_fingerprint(str(model))
    assert weights_fingerprint(str(model)) == first  # reading changes nothing
    (model / "NOTES.md").write_text("not weights")
    assert weights_fingerprint(str(model)) == first

    stat = os.stat(model / "model.safetensors")
    changes = []
    # same shapes, new values and a new mtime: what a training step does
    write_safetensors(model / "model.safetensors", {"w": [2, 2]}, b"\1" * 16)
    os.utime(model / "model.safetensors", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    changes.append(weights_fingerprint(str(model)))
    (model / "rlscale_trainer.json").write_text(json.dumps({"format": 1, "step": 1}))
    changes.append(weights_fingerprint(str(model)))
    write_safetensors(model / "model.safetensors", {"w": [4, 1]})
    os.utime(model / "model.safetensors", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    changes.append(weights_fingerprint(str(model)))  # other header, same size and mtime
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text('{"r": 8}')
    changes.append(weights_fingerprint(str(model), str(adapter)))
    assert len({first, *changes}) == 5
    assert weights_fingerprint("Qwen/Qwen2.5-0.5B") != weights_fingerprint("Qwen/Qwen2.5-1.5B")


@given(st.from_regex(r"[a-z][a-z0-9.]{0,12}", fullmatch=True), st.integers(0, 10**9),
       st.sampled_from(["-step-", "_step", "-step", "@", "step-"]))
def test_served_step_reads_the_step_suffix(name, step, sep):
    assert served_step({"id": f"{name}{sep}{step}"}) == step
    assert served_step({"id": f"{name}{sep}{step}x"}) is None


def test_served_step_prefers_the_served_checkpoints_trainer_state(tmp_path):
    (tmp_path / "rlscale_trainer.json").write_text(json.dumps({"format": 1, "step": 7}))
    assert served_step({"id": "policy-step-3", "root": str(tmp_path)}) == 7
    assert served_step({"id": "policy", "root": "/gone/ckpt-step-2/"}) == 2
