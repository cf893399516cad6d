"""The CUDA path: the same ONNX weights converted to torch modules (onnx2torch), run in batches.

onnxruntime's CPU build is the default; on a GPU box the converted graph runs in fp16 on CUDA with
several frames per call. Conversion happens locally at start-up: nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from anonymizer.detect.base import ModelInfo, file_sha256
from anonymizer.detect.onnx import decode_centerface, letterbox, prepare_centerface
from anonymizer.detections import nms
from anonymizer.errors import ModelError

# torch and onnx2torch are the optional "gpu" extra: a CPU host runs on onnxruntime and is spared
# several GB of CUDA libraries. Nothing imports them before a CUDA detector is actually built.
GPU_EXTRA_HINT = "install the gpu extra: ./scripts/install.sh --gpu (or pip install 'anonymizer[gpu]')"


def torch_installed() -> bool:
    """Return True if torch can be imported (without importing it)."""
    import importlib.util

    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        return False


def cuda_available() -> bool:
    if not torch_installed() or not _nvidia_device_present():
        return False
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def _nvidia_device_present() -> bool:
    """Whether the NVIDIA driver shows a device, without importing torch.

    Importing torch costs about 0.6 GB of memory and a second of start-up; a CPU host (or a
    container without the GPU passed through) has no /dev/nvidia* nodes and never needs it.
    """
    return any(Path("/dev").glob("nvidia[0-9]*")) or Path("/proc/driver/nvidia/gpus").is_dir()


def _convert(model_bytes: bytes):
    try:
        import onnx
        import torch
        from onnx2torch import convert
    except ImportError as exc:
        raise ModelError(f"the CUDA path needs torch and onnx2torch ({exc}); {GPU_EXTRA_HINT}") from exc
    module = convert(onnx.load_from_string(model_bytes)).float().eval().to("cuda").half()
    return module, torch


class TorchCenterFace:
    """CenterFace on CUDA; ``batch`` takes same-sized RGB images."""

    fixed_input = None

    def __init__(self, path: Path, licence: str) -> None:
        self.info = ModelInfo("centerface", file_sha256(path), licence, str(path))
        self.module, self.torch = _convert(prepare_centerface(path))

    def __call__(self, rgb: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
        return self.batch([rgb], threshold)[0]

    def batch(self, images: list[np.ndarray], threshold: float) -> list[tuple[np.ndarray, np.ndarray]]:
        torch = self.torch
        h, w = images[0].shape[:2]
        h32, w32 = -(-h // 32) * 32, -(-w // 32) * 32
        with torch.inference_mode():
            x = torch.from_numpy(np.stack(images)).to("cuda", non_blocking=True).permute(0, 3, 1, 2).half()
            x = torch.nn.functional.pad(x, (0, w32 - w, 0, h32 - h))
            heatmap, scale, offset, _ = self.module(x)
            heatmap, scale, offset = (t.float().cpu().numpy() for t in (heatmap, scale, offset))
        return [decode_centerface(heatmap[i], scale[i], offset[i], threshold, (h, w)) for i in range(len(images))]


class TorchYolo:
    """A YOLO ONNX export (platedet) on CUDA; letterboxing stays on the CPU, inference is batched."""

    def __init__(self, path: Path, licence: str, model_id: str, fixed_input: int = 640) -> None:
        import onnx

        self.info = ModelInfo(model_id, file_sha256(path), licence, str(path))
        graph = onnx.load(str(path))
        self.num_masks = 32 if len(graph.graph.output) > 1 else 0
        self.fixed_input = fixed_input
        self.module, self.torch = _convert(graph.SerializeToString())

    def __call__(self, rgb: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
        return self.batch([rgb], threshold)[0]

    def batch(self, images: list[np.ndarray], threshold: float) -> list[tuple[np.ndarray, np.ndarray]]:
        # Ultralytics exports bake batch size 1 into their Reshape nodes: one image per call.
        return [out for rgb in images for out in self._run([rgb], threshold)]

    def _run(self, images: list[np.ndarray], threshold: float) -> list[tuple[np.ndarray, np.ndarray]]:
        torch = self.torch
        boxes = [letterbox(rgb, self.fixed_input) for rgb in images]
        with torch.inference_mode():
            x = torch.from_numpy(np.stack([b[0] for b in boxes])).to("cuda").permute(0, 3, 1, 2).half() / 255.0
            out = self.module(x)
            pred = (out[0] if isinstance(out, (list, tuple)) else out).float().cpu().numpy()
        results = []
        for i, (_, ratio, (left, top)) in enumerate(boxes):
            p = pred[i].T
            scores = p[:, 4 : p.shape[1] - self.num_masks].max(axis=1)
            keep = scores > threshold
            xywh, sc = p[keep, :4], scores[keep]
            xyxy = np.concatenate([xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2], axis=1)
            h, w = images[i].shape[:2]
            xyxy = np.clip((xyxy - [left, top, left, top]) / ratio, 0, [w, h, w, h])
            order = nms(xyxy, sc, 0.5)
            results.append((xyxy[order].astype(np.float32), sc[order].astype(np.float32)))
        return results
