#!/usr/bin/env bash
# Install anonymizer into ./.venv (Python 3.11+). Safe to run again.
#
#   ./scripts/install.sh          the CPU path (onnxruntime, about 1 GB); adds --gpu by itself when
#                                 nvidia-smi lists a GPU
#   ./scripts/install.sh --gpu    also torch + onnx2torch, for detect.device auto/cuda (several GB:
#                                 torch's CUDA libraries)
#   ./scripts/install.sh --yolo   also ultralytics (and torch), for operator-provided YOLO weights
#   ./scripts/install.sh --cpu    never the gpu extra, even on a GPU host
#
# Extras by what they bring: gpu, yolo, scaleout (broker, `anonymizer worker`), api (the REST API),
# s3 (the S3 buckets: boto3).
# ANONYMIZER_EXTRAS="gpu,yolo" does the same as the flags, e.g. for CI ("none": no extra and no
# GPU detection); ANONYMIZER_VENV installs into another folder (default ./.venv). Versions are
# pinned by constraints.txt, the versions the test suite passed with (see docs/testing.md, "Pinned versions").
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${ANONYMIZER_VENV:-.venv}
extras=${ANONYMIZER_EXTRAS:-}
cpu_only=0
for arg in "$@"; do
  case "$arg" in
    --gpu) extras="$extras,gpu" ;;
    --yolo) extras="$extras,yolo" ;;
    --cpu) cpu_only=1 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option $arg (see --help)" >&2; exit 2 ;;
  esac
done
case ",$extras," in *,none,*) explicit_none=1 ;; *) explicit_none=0 ;; esac
if [ "$cpu_only" = 0 ] && [ "$explicit_none" = 0 ] && command -v nvidia-smi >/dev/null && nvidia-smi -L 2>/dev/null | grep -q '^GPU'; then
  echo "install.sh: nvidia-smi lists a GPU: adding the gpu extra (torch + onnx2torch); --cpu skips it" >&2
  extras="$extras,gpu"
fi
if [ "$cpu_only" = 1 ]; then
  extras=$(echo "$extras" | tr ',' '\n' | { grep -vx 'gpu' || true; } | paste -sd, -)
fi
# "none" and empty entries drop out; "test" (pytest) is always installed.
extras=$(echo "test,$extras" | tr ',' '\n' | grep -v -e '^$' -e '^none$' | sort -u | paste -sd, -)

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
echo "install.sh: installing anonymizer[$extras] into $VENV, versions from constraints.txt" >&2
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -c constraints.txt -e ".[$extras]"
# platedet ships the plate model (AGPL-3.0); its own exact pins (old opencv, pillow, onnxruntime)
# conflict with ours, so it is installed without them: it only needs to carry its .onnx file.
"$VENV/bin/python" -m pip install -q -c constraints.txt --no-deps "platedet==0.0.2"
# rapidocr-onnxruntime ships PP-OCRv4's text detector (Apache-2.0), the plates' text cue
# (detect.plate_text); only its .onnx file is used, and its pins (pyclipper, shapely, an older
# opencv) are not needed, so it is installed the same way.
"$VENV/bin/python" -m pip install -q -c constraints.txt --no-deps "rapidocr-onnxruntime==1.4.4"
"$VENV/bin/python" -c "import anonymizer.detect.registry as r; r.check_weights_present()"
