#!/usr/bin/env bash
# One-shot GPU check of `rlscale rollout` (hf on CUDA, and vLLM) on a tiny Qwen2 built in code.
# Needs a CUDA GPU and PyPI access. Installs vLLM (which brings its own CUDA build of torch),
# peft and rlscale into the current Python, then runs scripts/gpu_check.py (about 3-5 minutes,
# most of it the vLLM install and three vLLM engine start-ups). Results: printed PASS/FAIL/INFO
# lines and $OUT/gpu_check.json (default ./gpu_check_out).
#
#   bash scripts/gpu_check.sh            # everything
#   bash scripts/gpu_check.sh --quick    # skip the LoRA check (one vLLM start-up fewer)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
OUT_DIR="${OUT:-$PWD/gpu_check_out}"
mkdir -p "$OUT_DIR"
start=$(date +%s)

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
if ! "$PY" -c "import vllm" >/dev/null 2>&1; then
    echo "== pip install vllm =="
    "$PY" -m pip install --quiet --disable-pip-version-check vllm
fi
echo "== pip install peft + rlscale =="
"$PY" -m pip install --quiet --disable-pip-version-check peft
"$PY" -m pip install --quiet --disable-pip-version-check -e . \
    || export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
echo "install took $(( $(date +%s) - start )) s"

export VLLM_LOGGING_LEVEL="${VLLM_LOGGING_LEVEL:-WARNING}"
"$PY" scripts/gpu_check.py --out "$OUT_DIR" "$@" 2>&1 | tee "$OUT_DIR/gpu_check.log"
status=${PIPESTATUS[0]}
echo "gpu_check total $(( $(date +%s) - start )) s, exit $status"
exit "$status"
