#!/usr/bin/env bash
# One command on a lent GPU machine (python3 with torch, no internet): install the wheels carried in
# .whl/ (prepare them here with bench/gpu_wheels.sh), then run bench/gpu_check.py: the default
# profile on a generated 1080p clip and on photos, fps and where the time goes. Under 8 minutes.
# Without a CUDA device it runs on the CPU with fewer frames (proves the script, not the GPU).
#
#   bench/gpu_check.sh                      # defaults
#   bench/gpu_check.sh --frames 600 --json "$OUT/gpu.json"
#   PYTHON=.venv/bin/python bench/gpu_check.sh --backend torch   # CPU fallback with the torch path
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
SITE=${ANONYMIZER_GPU_SITE:-/tmp/anonymizer-gpu-site}
if compgen -G ".whl/*.whl" >/dev/null; then
  # --no-deps: the wheels are the packages the device's image lacks (bench/gpu_wheels.sh lists
  # them); everything else (torch, numpy, onnx, onnxruntime, opencv, pillow, pyyaml) is there.
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl
  export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
  echo "installed from .whl/: $(cd .whl && ls *.whl | tr '\n' ' ')"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
# 7.5 minutes for the run itself: the whole check stays under 8 with the install.
exec timeout 450 "$PY" bench/gpu_check.py "$@"
