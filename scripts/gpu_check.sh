#!/usr/bin/env bash
# One-shot GPU check of `rlscale rollout` (hf on CUDA, and vLLM) on a tiny Qwen2 built in code.
# Needs a CUDA GPU. Installs vLLM (which brings its own CUDA build of torch) and peft when PyPI is
# reachable, and wheels carried in .whl/ otherwise; rlscale runs from the checkout (PYTHONPATH).
# Then runs scripts/gpu_check.py (about 3-5 minutes with vLLM, most of it the install and three
# engine start-ups; about 1 minute without). Results: printed PASS/FAIL/INFO
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
# Offline machines: wheels carried in .whl/ (orjson, math-verify, ...) go to a private target.
if compgen -G ".whl/*.whl" >/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl && export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
# vLLM and peft: install when a package index is reachable; otherwise the vLLM checks are skipped.
"$PY" -c "import vllm" >/dev/null 2>&1 || timeout 300 "$PY" -m pip install --quiet \
    --disable-pip-version-check --retries 0 --timeout 10 vllm || echo "vllm not installable here: vLLM checks skipped"
"$PY" -c "import peft" >/dev/null 2>&1 || timeout 120 "$PY" -m pip install --quiet \
    --disable-pip-version-check --retries 0 --timeout 10 peft || echo "peft not installable here: LoRA check skipped"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
echo "install took $(( $(date +%s) - start )) s"

export VLLM_LOGGING_LEVEL="${VLLM_LOGGING_LEVEL:-WARNING}"
"$PY" scripts/gpu_check.py --out "$OUT_DIR" "$@" 2>&1 | tee "$OUT_DIR/gpu_check.log"
status=${PIPESTATUS[0]}
echo "gpu_check total $(( $(date +%s) - start )) s, exit $status"
exit "$status"
