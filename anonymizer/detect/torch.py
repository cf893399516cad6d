"""The torch path: the same ONNX weights converted to torch modules (onnx2torch), run in batches.

onnxruntime's CPU build is the default; on a GPU box the converted graphs run in fp16 on CUDA
with several crops per call, and the pictures are padded (CenterFace) or letterboxed (platedet)
on the device. The same classes run in fp32 on the CPU (``device="cpu"``): that is how CI proves,
without a GPU, that this path masks what the onnxruntime path masks (tests/unit/test_torch_path.py).
Conversion happens locally at start-up: nothing is downloaded.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from anonymizer.detect.base import ModelInfo, file_sha256
from anonymizer.detect.graphs import GraphRewriteError, check_batched, dynamic_batch
from anonymizer.detect.onnx import boxes_only, decode_centerface, prepare_centerface
from anonymizer.detections import nms
from anonymizer.errors import ModelError

# torch and onnx2torch are the optional "gpu" extra: a CPU host runs on onnxruntime and is spared
# several GB of CUDA libraries. Nothing imports them before a torch detector is actually built.
GPU_EXTRA_HINT = "install the gpu extra: ./scripts/install.sh --gpu (or pip install 'anonymizer[gpu]')"
# How far a batched call may move an output from batch-1 calls, relative to its magnitude: a batch
# can select other convolution kernels, which changes fp16 results in their last bits (2**-10).
BATCH_RTOL = {"cuda": 4 * 2.0**-10, "cpu": 1e-4}


def torch_installed() -> bool:
    """Return True if torch can be imported (without importing it)."""
    import importlib.util

    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        return False


def cuda_available() -> bool:
    if not torch_installed() or not nvidia_device_present():
        return False
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def nvidia_device_present() -> bool:
    """Whether the NVIDIA driver shows a device, without importing torch.

    Importing torch costs about 0.6 GB of memory and a second of start-up; a CPU host (or a
    container without the GPU passed through) has no /dev/nvidia* nodes and never needs it.
    """
    return any(Path("/dev").glob("nvidia[0-9]*")) or Path("/proc/driver/nvidia/gpus").is_dir()


def torch_path_available() -> bool:
    """Whether torch and onnx2torch are both importable (the gpu extra), without importing them."""
    import importlib.util

    try:
        return torch_installed() and importlib.util.find_spec("onnx2torch") is not None
    except (ImportError, ValueError):  # a module set to None in sys.modules (blocked) raises ValueError
        return False


def _import_torch():
    try:
        import torch
        from onnx2torch import convert
    except ImportError as exc:
        raise ModelError(f"the torch path needs torch and onnx2torch ({exc}); {GPU_EXTRA_HINT}") from exc
    # onnx2torch's Slice indexes with a list, which torch deprecates with a warning on every call.
    warnings.filterwarnings("ignore", message="Using a non-tuple sequence for multidimensional indexing")
    return torch, convert


class _TorchGraph:
    """One converted graph on one device: fp16 on CUDA, fp32 on the CPU (whose fp16 convolutions
    are slow and which onnxruntime serves better anyway)."""

    def __init__(self, model, device: str) -> None:
        torch, convert = _import_torch()
        self.torch, self.device = torch, device
        self.dtype = torch.float16 if device == "cuda" else torch.float32
        try:
            self.module = convert(model).float().eval().to(device=device, dtype=self.dtype)
        except Exception as exc:  # onnx2torch raises NotImplementedError and others for unknown nodes
            raise ModelError(f"cannot convert the ONNX model to torch: {exc}") from exc

    def __call__(self, x):
        with self.torch.inference_mode():
            out = self.module(x.to(self.dtype))
        return out if isinstance(out, (list, tuple)) else (out,)

    def upload(self, rgb: np.ndarray):
        """An (H, W, 3) uint8 picture as a (3, H, W) float tensor on the device, 0-255."""
        # uint8 crosses the bus (a quarter of float32's bytes); the conversion runs on the device.
        tensor = self.torch.from_numpy(np.ascontiguousarray(rgb)).to(self.device)
        return tensor.permute(2, 0, 1).float()


class TorchCenterFace:
    """CenterFace in torch; ``batch`` takes same-shaped RGB crops (ClassDetector groups them so).

    Each crop is padded with zeros to multiples of 32 on the device, as onnx.CenterFace pads it.
    """

    fixed_input = None

    def __init__(self, path: Path, licence: str, *, device: str = "cuda", peak_window: int = 0) -> None:
        import onnx

        self.peak_window = peak_window
        self.info = ModelInfo("centerface", file_sha256(path), licence, str(path))
        # prepare_centerface already declares the batch symbolic: the graph has no Reshape.
        self.graph = _TorchGraph(onnx.load_from_string(prepare_centerface(path)), device)

    def __call__(self, rgb: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
        return self.batch([rgb], threshold)[0]

    def batch(self, images: list[np.ndarray], threshold: float) -> list[tuple[np.ndarray, np.ndarray]]:
        torch = self.graph.torch
        h, w = images[0].shape[:2]
        if any(img.shape[:2] != (h, w) for img in images):
            raise ValueError("TorchCenterFace.batch takes crops of one size")
        h32, w32 = -(-h // 32) * 32, -(-w // 32) * 32
        x = torch.stack([self.graph.upload(img) for img in images])
        x = torch.nn.functional.pad(x, (0, w32 - w, 0, h32 - h))
        heatmap, scale, offset, _ = self.graph(x)
        heatmap, scale, offset = (t.float().cpu().numpy() for t in (heatmap, scale, offset))
        return [
            decode_centerface(heatmap[i], scale[i], offset[i], threshold, (h, w), self.peak_window)
            for i in range(len(images))
        ]


def letterbox_geometry(h: int, w: int, side: int) -> tuple[float, int, int, int, int]:
    """(ratio, new width, new height, left, top) exactly as onnx.letterbox computes them."""
    ratio = min(side / h, side / w)
    nw, nh = int(round(w * ratio)), int(round(h * ratio))
    top, left = int(round((side - nh) / 2 - 0.1)), int(round((side - nw) / 2 - 0.1))
    return ratio, nw, nh, left, top


class TorchYolo:
    """A YOLO ONNX export (platedet) in torch: box output only, dynamic batch, letterboxed on the device.

    The graph is cut to its boxes (``boxes_only``) and its Reshape nodes rewritten for any batch
    (``graphs.dynamic_batch``); at load a batch of two probe images must give the batch-1 outputs
    (``check_batched``), otherwise every crop runs alone. Crops of any size share a batch: each is
    letterboxed to the model's square input on its own.
    """

    def __init__(
        self, path: Path, licence: str, model_id: str, *, device: str = "cuda", fixed_input: int = 640
    ) -> None:
        import onnx

        self.info = ModelInfo(model_id, file_sha256(path), licence, str(path))
        model = onnx.load(str(path))
        self.num_masks = 32 if len(model.graph.output) > 1 else 0
        if self.num_masks:
            cut = boxes_only(model, self.num_masks)
            if cut is not None:
                model, self.num_masks = cut, 0
        self.fixed_input = fixed_input
        self.max_batch: int | None = None  # None: any batch
        try:
            model = dynamic_batch(model)
        except GraphRewriteError:
            self.max_batch = 1
        self.graph = _TorchGraph(model, device)
        self.batch_rtol = BATCH_RTOL[device]
        if self.max_batch is None:
            self._check_batch()

    def _check_batch(self) -> None:
        torch = self.graph.torch
        rng = np.random.default_rng(0)
        probe = rng.integers(0, 256, (2, 3, self.fixed_input, self.fixed_input)).astype(np.float32) / 255.0

        def run(x: np.ndarray) -> np.ndarray:
            return self.graph(torch.from_numpy(x).to(self.graph.device))[0].float().cpu().numpy()

        try:
            check_batched(run, run, probe, rtol=self.batch_rtol)
        except GraphRewriteError:
            self.max_batch = 1

    def __call__(self, rgb: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
        return self.batch([rgb], threshold)[0]

    def letterbox(self, images: list[np.ndarray]):
        """The crops letterboxed on the device: ((n, 3, side, side) tensor in 0-1, geometries).

        Shrinking averages areas (cv2.INTER_AREA's job on the CPU path), enlarging is bilinear
        (INTER_LINEAR); both are rounded to 8 bits as cv2's uint8 output is.
        """
        torch = self.graph.torch
        interpolate = torch.nn.functional.interpolate
        side = self.fixed_input
        canvas = torch.full((len(images), 3, side, side), 114.0, device=self.graph.device)
        geometry = []
        for i, rgb in enumerate(images):
            h, w = rgb.shape[:2]
            ratio, nw, nh, left, top = letterbox_geometry(h, w, side)
            x = self.graph.upload(rgb)[None]
            if (nh, nw) != (h, w):
                mode = {"mode": "area"} if ratio < 1 else {"mode": "bilinear", "align_corners": False}
                x = interpolate(x, size=(nh, nw), **mode).round_().clamp_(0, 255)
            canvas[i, :, top : top + nh, left : left + nw] = x[0]
            geometry.append((ratio, left, top))
        return canvas / 255.0, geometry

    def batch(self, images: list[np.ndarray], threshold: float) -> list[tuple[np.ndarray, np.ndarray]]:
        step = self.max_batch or len(images)
        results: list[tuple[np.ndarray, np.ndarray]] = []
        for start in range(0, len(images), step):
            results.extend(self._run(images[start : start + step], threshold))
        return results

    def _run(self, images: list[np.ndarray], threshold: float) -> list[tuple[np.ndarray, np.ndarray]]:
        x, geometry = self.letterbox(images)
        pred = self.graph(x)[0].float()  # (n, 4 + classes + masks, anchors)
        # Boxes and best class scores leave the device, not the mask coefficients (one copy).
        scores = pred[:, 4 : pred.shape[1] - self.num_masks].amax(dim=1, keepdim=True)
        out = self.graph.torch.cat([pred[:, :4], scores], dim=1).transpose(1, 2).cpu().numpy()
        xywh_all, scores_np = out[:, :, :4], out[:, :, 4]
        keep_all = scores_np > threshold
        results = []
        for i, (ratio, left, top) in enumerate(geometry):
            keep = keep_all[i]
            if not keep.any():
                results.append((np.zeros((0, 4), np.float32), np.zeros(0, np.float32)))
                continue
            xywh, sc = xywh_all[i][keep], scores_np[i][keep]
            xyxy = np.concatenate([xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2], axis=1)
            h, w = images[i].shape[:2]
            xyxy = np.clip((xyxy - [left, top, left, top]) / ratio, 0, [w, h, w, h])
            order = nms(xyxy, sc, 0.5)
            results.append((xyxy[order].astype(np.float32), sc[order].astype(np.float32)))
        return results
