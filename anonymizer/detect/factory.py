"""Build the configured detectors once per process (the daemon reuses them for every job)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from anonymizer.config import ClassSpec, DetectSpec, PlateTextSpec
from anonymizer.detect.base import ModelInfo, RawDetector
from anonymizer.detect.multiscale import ClassDetector
from anonymizer.detect.registry import builtin_weights
from anonymizer.detect.text import PlateShape, TextDetector, VideoTextCue
from anonymizer.detect.torch import GPU_EXTRA_HINT, cuda_available, torch_installed
from anonymizer.detect.ultra import UltralyticsDetector
from anonymizer.detections import CLASS_IDS
from anonymizer.errors import ModelError

# Which runtime runs the built-in models: onnxruntime (the CPU default) or torch (onnx2torch; what
# a CUDA device uses). None picks by device; tests and benchmarks ask for torch on the CPU.
BACKENDS = ("onnxruntime", "torch")


def resolve_device(requested: str) -> str:
    """'auto' means CUDA when torch sees a GPU, else CPU; 'cuda' without a GPU is an error."""
    has_cuda = cuda_available() if requested in ("auto", "cuda") else False
    if requested == "cuda" and not has_cuda:
        if not torch_installed():
            raise ModelError(f"detect.device is 'cuda' but torch is not installed; {GPU_EXTRA_HINT}")
        raise ModelError("detect.device is 'cuda' but no CUDA device is visible to torch")
    return "cuda" if has_cuda else "cpu"


def resolve_backend(device: str, backend: str | None) -> str:
    """torch on CUDA, onnxruntime on the CPU, unless ``backend`` names one (torch runs on either)."""
    if backend is None:
        return "torch" if device == "cuda" else "onnxruntime"
    if backend not in BACKENDS:
        raise ModelError(f"unknown detector backend {backend!r}; one of {', '.join(BACKENDS)}")
    if backend == "onnxruntime" and device == "cuda":
        raise ModelError("the onnxruntime backend runs on the CPU here; CUDA uses torch")
    return backend


def _raw_detector(spec: ClassSpec, device: str, threads: int, backend: str) -> RawDetector:
    if spec.model == "centerface":
        path, licence = builtin_weights("centerface")
        if backend == "torch":
            # Imported here: each backend's module loads its runtime (torch or onnxruntime); only the configured one.
            from anonymizer.detect.torch import TorchCenterFace

            return TorchCenterFace(path, licence, device=device, peak_window=spec.peak_window)
        # Imported here: each backend's module loads its runtime (torch or onnxruntime); only the configured one.
        from anonymizer.detect.onnx import CenterFace

        return CenterFace(path, licence, threads=threads, precision=spec.precision, peak_window=spec.peak_window)
    if spec.model == "platedet":
        path, licence = builtin_weights("platedet")
        if backend == "torch":
            # Imported here: each backend's module loads its runtime (torch or onnxruntime); only the configured one.
            from anonymizer.detect.torch import TorchYolo

            return TorchYolo(path, licence, "platedet", device=device)
        # Imported here: each backend's module loads its runtime (torch or onnxruntime); only the configured one.
        from anonymizer.detect.onnx import YoloOnnx

        return YoloOnnx(
            path, licence, "platedet", threads=threads, precision=spec.precision, shaped=spec.video_shaped_input
        )

    return UltralyticsDetector(Path(spec.model), imgsz=min(spec.tile_size, 1280), device=device)


def build_detectors(
    detect: DetectSpec, *, backend: str | None = None, batch_size: int = 8, photos: bool = True
) -> tuple[dict[str, ClassDetector], list[ModelInfo], str]:
    """Return ({class name: detector}, model identities, device used) for the enabled classes.

    ``backend`` (see ``resolve_backend``) picks the runtime of the built-in models; ``batch_size``
    is the most crops one call of a batching (torch) detector takes. ``photos``: whether these
    detectors will see photos (an engine whose photos go to another plan does not load a graph
    that only ``detail_precision`` would run).
    """
    device = resolve_device(detect.device)
    backend = resolve_backend(device, backend)
    detectors: dict[str, ClassDetector] = {}
    for name, spec in (("face", detect.faces), ("plate", detect.plates)):
        if spec.enabled:
            raw = _raw_detector(spec, device, detect.threads, backend)
            detail = None
            # The detail passes' other graph (``detail_precision``, ``video_detail_precision``).
            # int8 is an onnxruntime graph: the torch path runs every pass at full precision.
            wanted = {spec.video_detail_precision} | ({spec.detail_precision} if photos else set())
            other = {p for p in wanted if p} - {spec.precision}
            if other and backend == "onnxruntime":
                # Detail passes are tiles, crops and closer looks: never a wide whole frame, so
                # no frame-shaped copy of a fixed-input graph.
                detail_spec = replace(spec, precision=other.pop(), video_shaped_input=False)
                detail = _raw_detector(detail_spec, device, detect.threads, backend)
                detail.info = replace(detail.info, passes="detail")
                raw.info = replace(raw.info, passes="base")
            detectors[name] = ClassDetector(raw, spec, CLASS_IDS[name], batch_size=batch_size, detail_raw=detail)
    # Every graph that runs is named, the detail passes' too (a second entry of the same model).
    models = [r.info for d in detectors.values() for r in d.raws]
    return detectors, models, device


def build_text_cue(detect: DetectSpec) -> TextDetector | None:
    """The plates' text detector, when plates are enabled and ``detect.plate_text`` is on for
    photos (``enabled``) or video (``video``)."""
    text = detect.plate_text
    if not ((text.enabled or text.video != "off") and detect.plates.enabled):
        return None
    path, licence = builtin_weights("pp-ocrv4-det")
    return TextDetector(path, licence, threads=detect.threads)


def video_text_cue(detect: DetectSpec, detector: TextDetector | None) -> VideoTextCue | None:
    """The text cue of video plate frames (``detect.plate_text.video``), or None when off."""
    if detector is None or detect.plate_text.video == "off":
        return None
    spec = detect.plate_text
    return VideoTextCue(detector, plate_shape(spec), spec.side, spec.video, spec.video_every)


def plate_shape(spec: PlateTextSpec) -> PlateShape:
    """The shape rule of ``detect.plate_text`` for anonymizer.detect.text."""
    return PlateShape(spec.min_score, spec.min_aspect, spec.max_aspect, spec.min_height_px, spec.max_height, spec.grow)
