"""Shared helpers for the VeRL oracle tests: run tests/verl_oracle.py in VeRL's environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

ORACLE = os.path.join(os.path.dirname(__file__), "verl_oracle.py")
ORACLE_DIR = os.path.join(sys.prefix, "verl-oracle")

_reason = None
if not os.path.isdir(os.path.join(ORACLE_DIR, "verl")):
    _reason = f"VeRL 0.9.1 is not installed in {ORACLE_DIR} (make install puts it there)"
needs_verl = pytest.mark.skipif(_reason is not None, reason=_reason or "")


def oracle(request: dict) -> dict:
    """One request to VeRL's own code in a child interpreter; its stderr on failure."""
    env = {**os.environ, "PYTHONPATH": ORACLE_DIR}
    proc = subprocess.run([sys.executable, ORACLE], input=json.dumps(request), text=True,
                          capture_output=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)
