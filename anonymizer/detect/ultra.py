"""Operator-provided Ultralytics YOLO weights (.pt or .onnx) for either class.

Every class the model predicts is treated as the configured class (a face model's 'face', a plate
model's 'plate'); the operator chooses weights trained for that purpose. Loaded from a local path
only: ultralytics is put in offline mode before import so it never reaches the network.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from anonymizer.detect.base import ModelInfo, file_sha256
from anonymizer.errors import ModelError

# ultralytics (and the torch it runs on) is the optional "yolo" extra: only operator-provided
# weights need it, so it is imported when such a profile is loaded, never before.
YOLO_EXTRA_HINT = "install the yolo extra: ./scripts/install.sh --yolo (or pip install 'anonymizer[yolo]')"


def _import_yolo():
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "False")
    os.environ.setdefault("YOLO_VERBOSE", "False")
    try:
        from ultralytics import YOLO
    except ImportError as exc:
        raise ModelError(f"operator-provided YOLO weights need ultralytics and torch ({exc}); {YOLO_EXTRA_HINT}") from exc
    return YOLO


class UltralyticsDetector:
    def __init__(self, path: Path, *, imgsz: int, device: str) -> None:
        if not path.is_file():
            raise ModelError(f"weights file not found: {path}")
        self.info = ModelInfo(f"ultralytics:{path.name}", file_sha256(path), "see the weights' own licence", str(path))
        yolo = _import_yolo()
        try:
            self.model = yolo(str(path))
        except Exception as exc:  # ultralytics raises many types for a bad file
            raise ModelError(f"cannot load YOLO weights {path.name}: {exc}") from exc
        self.fixed_input = imgsz
        self.device = "cuda:0" if device == "cuda" else "cpu"

    def __call__(self, rgb: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
        bgr = np.ascontiguousarray(rgb[:, :, ::-1])  # ultralytics takes numpy frames as BGR
        result = self.model.predict(bgr, conf=threshold, imgsz=self.fixed_input, device=self.device, verbose=False)[0]
        boxes = result.boxes
        if boxes is None or len(boxes) == 0:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
        return boxes.xyxy.cpu().numpy().astype(np.float32), boxes.conf.cpu().numpy().astype(np.float32)
