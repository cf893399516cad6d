"""Build the configured detectors once per process (the daemon reuses them for every job)."""

from __future__ import annotations

from pathlib import Path

from anonymizer.config import ClassSpec, DetectSpec, PlateTextSpec
from anonymizer.detect.base import ModelInfo, RawDetector
from anonymizer.detect.multiscale import ClassDetector
from anonymizer.detect.registry import builtin_weights
from anonymizer.detect.text import PlateShape, TextDetector
from anonymizer.detect.torch import GPU_EXTRA_HINT, cuda_available, torch_installed
from anonymizer.detections import CLASS_IDS
from anonymizer.errors import ModelError


def resolve_device(requested: str) -> str:
    """'auto' means CUDA when torch sees a GPU, else CPU; 'cuda' without a GPU is an error."""
    has_cuda = cuda_available() if requested in ("auto", "cuda") else False
    if requested == "cuda" and not has_cuda:
        if not torch_installed():
            raise ModelError(f"detect.device is 'cuda' but torch is not installed; {GPU_EXTRA_HINT}")
        raise ModelError("detect.device is 'cuda' but no CUDA device is visible to torch")
    return "cuda" if has_cuda else "cpu"


def _raw_detector(spec: ClassSpec, device: str, threads: int) -> RawDetector:
    if spec.model == "centerface":
        path, licence = builtin_weights("centerface")
        if device == "cuda":
            from anonymizer.detect.torch import TorchCenterFace

            return TorchCenterFace(path, licence)
        from anonymizer.detect.onnx import CenterFace

        return CenterFace(path, licence, threads=threads)
    if spec.model == "platedet":
        path, licence = builtin_weights("platedet")
        if device == "cuda":
            from anonymizer.detect.torch import TorchYolo

            return TorchYolo(path, licence, "platedet")
        from anonymizer.detect.onnx import YoloOnnx

        return YoloOnnx(path, licence, "platedet", threads=threads)
    from anonymizer.detect.ultra import UltralyticsDetector

    return UltralyticsDetector(Path(spec.model), imgsz=min(spec.tile_size, 1280), device=device)


def build_detectors(detect: DetectSpec) -> tuple[dict[str, ClassDetector], list[ModelInfo], str]:
    """Return ({class name: detector}, model identities, device used) for the enabled classes."""
    device = resolve_device(detect.device)
    detectors: dict[str, ClassDetector] = {}
    for name, spec in (("face", detect.faces), ("plate", detect.plates)):
        if spec.enabled:
            detectors[name] = ClassDetector(_raw_detector(spec, device, detect.threads), spec, CLASS_IDS[name])
    models = [d.raw.info for d in detectors.values()]
    return detectors, models, device


def build_text_cue(detect: DetectSpec) -> TextDetector | None:
    """The plates' text detector (photos), when ``detect.plate_text`` and plates are enabled."""
    if not (detect.plate_text.enabled and detect.plates.enabled):
        return None
    path, licence = builtin_weights("pp-ocrv4-det")
    return TextDetector(path, licence, threads=detect.threads)


def plate_shape(spec: PlateTextSpec) -> PlateShape:
    """The shape rule of ``detect.plate_text`` for anonymizer.detect.text."""
    return PlateShape(spec.min_score, spec.min_aspect, spec.max_aspect, spec.min_height_px, spec.max_height, spec.grow)
