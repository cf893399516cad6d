#!/usr/bin/env bash
# Install anonymizer into ./.venv (Python 3.11+). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[test]"
# platedet ships the plate model (AGPL-3.0); its own exact pins (old opencv, pillow, onnxruntime)
# conflict with ours, so it is installed without them: it only needs to carry its .onnx file.
.venv/bin/python -m pip install -q --no-deps "platedet==0.0.2"
.venv/bin/python -c "import anonymizer.detect.registry as r; r.check_weights_present()"
