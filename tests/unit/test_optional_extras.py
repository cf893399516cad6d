"""torch, onnx2torch and ultralytics are optional extras: the CPU path never imports them, and a
profile that needs a missing one fails with a ModelError that names the extra to install."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Runs first in the child: makes the optional packages unimportable, as on a CPU-only install.
BLOCK = """
import sys
for name in ("torch", "torchvision", "onnx2torch", "ultralytics", "lap"):
    sys.modules[name] = None  # import raises ImportError, find_spec returns None: as if not installed
"""


def run(code: str, *, block: bool) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", (BLOCK if block else "") + code], capture_output=True, text=True, cwd=ROOT, timeout=300
    )


def test_the_cpu_path_imports_neither_torch_nor_ultralytics() -> None:
    # Not even where they are installed: importing torch costs seconds and GBs of mapped CUDA libraries.
    code = """
import sys
from anonymizer.cli import build_parser
from anonymizer.config import profile_from_dict
from anonymizer.pipeline import Engine
build_parser()
engine = Engine(profile_from_dict({"detect": {"device": "cpu", "faces": {"scales": [1.0]}, "plates": {"scales": [1.0]}}}))
loaded = sorted(m for m in sys.modules if m.split(".")[0] in {"torch", "torchvision", "onnx2torch", "ultralytics"})
print("LOADED", loaded)
"""
    proc = run(code, block=False)
    assert proc.returncode == 0, proc.stderr
    assert "LOADED []" in proc.stdout


def test_without_the_extras_cpu_works_and_cuda_or_yolo_weights_name_the_extra(tmp_path: Path) -> None:
    weights = tmp_path / "faces.pt"
    weights.write_bytes(b"not loaded: ultralytics is missing before the file is read")
    code = f"""
from anonymizer.config import profile_from_dict
from anonymizer.detect.factory import build_detectors
from anonymizer.errors import ModelError
_, models, device = build_detectors(profile_from_dict({{"detect": {{"device": "auto"}}}}).detect)
print("AUTO", device, [m.id for m in models])
for detect in ({{"device": "cuda"}}, {{"device": "cpu", "faces": {{"model": {str(weights)!r}}}}}):
    try:
        build_detectors(profile_from_dict({{"detect": detect}}).detect)
    except ModelError as exc:
        print("ERROR", exc)
"""
    proc = run(code, block=True)
    assert proc.returncode == 0, proc.stderr
    assert "AUTO cpu ['centerface', 'platedet']" in proc.stdout  # auto falls back to the CPU path
    errors = [line for line in proc.stdout.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 2
    assert "torch is not installed" in errors[0] and "./scripts/install.sh --gpu" in errors[0]
    assert "ultralytics" in errors[1] and "./scripts/install.sh --yolo" in errors[1]


def test_the_cli_exits_2_naming_the_gpu_extra_when_cuda_is_asked_for_without_torch(tmp_path: Path) -> None:
    profile = tmp_path / "cuda.yaml"
    profile.write_text("detect: {device: cuda}\n")
    code = f"""
import sys
from anonymizer.cli import main
sys.exit(main(["models", "--profile", {str(profile)!r}]))
"""
    proc = run(code, block=True)
    assert proc.returncode == 2
    assert "error: detect.device is 'cuda' but torch is not installed" in proc.stderr
    assert "anonymizer[gpu]" in proc.stderr


def test_the_torch_backend_on_the_cpu_without_the_extra_names_it() -> None:
    code = """
from anonymizer.config import profile_from_dict
from anonymizer.detect.factory import build_detectors
from anonymizer.errors import ModelError
try:
    build_detectors(profile_from_dict({"detect": {"device": "cpu"}}).detect, backend="torch")
except ModelError as exc:
    print("ERROR", exc)
"""
    proc = run(code, block=True)
    assert proc.returncode == 0, proc.stderr
    assert "ERROR the torch path needs torch and onnx2torch" in proc.stdout
    assert "./scripts/install.sh --gpu" in proc.stdout
