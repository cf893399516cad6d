"""The one container that flows between stages: detect -> track -> regions -> mask.

Parallel NumPy arrays, validated on construction, never mutated in place by a stage.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

FACE = 0
PLATE = 1
CLASS_NAMES = {FACE: "face", PLATE: "plate"}
CLASS_IDS = {name: cid for cid, name in CLASS_NAMES.items()}

# Where a box came from: the detector itself, or the tracker filling a gap / extending a track.
DETECTED = 0
PREDICTED = 1


@dataclass(frozen=True)
class Detections:
    """Boxes of one frame, in source-pixel coordinates.

    Attributes:
        xyxy: float32 array (n, 4): x1, y1, x2, y2 in pixels of the frame as decoded.
        confidence: float32 array (n,).
        class_id: int32 array (n,), ``FACE`` or ``PLATE``.
        tracker_id: int32 array (n,), -1 where no track is assigned.
        source: int8 array (n,), ``DETECTED`` or ``PREDICTED``.
    """

    xyxy: np.ndarray
    confidence: np.ndarray
    class_id: np.ndarray
    tracker_id: np.ndarray = field(default=None)  # type: ignore[assignment]
    source: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        xyxy = np.asarray(self.xyxy, dtype=np.float32).reshape(-1, 4) if np.size(self.xyxy) else np.zeros((0, 4), np.float32)
        n = len(xyxy)
        object.__setattr__(self, "xyxy", xyxy)
        for name, dtype, default in (
            ("confidence", np.float32, 1.0),
            ("class_id", np.int32, 0),
            ("tracker_id", np.int32, -1),
            ("source", np.int8, DETECTED),
        ):
            value = getattr(self, name)
            arr = np.full(n, default, dtype=dtype) if value is None else np.asarray(value, dtype=dtype).reshape(-1)
            if arr.shape != (n,):
                raise ValueError(f"{name} must have shape ({n},) to match xyxy, but got shape {arr.shape}")
            object.__setattr__(self, name, arr)

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int32))

    @classmethod
    def merge(cls, items: list[Detections]) -> Detections:
        items = [d for d in items if len(d)]
        if not items:
            return cls.empty()
        return cls(
            np.concatenate([d.xyxy for d in items]),
            np.concatenate([d.confidence for d in items]),
            np.concatenate([d.class_id for d in items]),
            np.concatenate([d.tracker_id for d in items]),
            np.concatenate([d.source for d in items]),
        )

    def __len__(self) -> int:
        return len(self.xyxy)

    def __getitem__(self, index: Any) -> Detections:
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        return Detections(
            self.xyxy[index], self.confidence[index], self.class_id[index], self.tracker_id[index], self.source[index]
        )

    def with_xyxy(self, xyxy: np.ndarray) -> Detections:
        return Detections(xyxy, self.confidence, self.class_id, self.tracker_id, self.source)

    @property
    def area(self) -> np.ndarray:
        wh = np.clip(self.xyxy[:, 2:] - self.xyxy[:, :2], 0, None)
        return wh[:, 0] * wh[:, 1]


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Return the (len(a), len(b)) IoU matrix of two xyxy arrays."""
    a = np.asarray(a, np.float32).reshape(-1, 4)
    b = np.asarray(b, np.float32).reshape(-1, 4)
    return _iou(a[:, None], b[None])


def paired_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Return the IoU of each box in ``a`` with the box at the same index in ``b``, shape (n,)."""
    return _iou(np.asarray(a, np.float32).reshape(-1, 4), np.asarray(b, np.float32).reshape(-1, 4))


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    # a and b are (..., 4) xyxy arrays that broadcast against each other.
    tl = np.maximum(a[..., :2], b[..., :2])
    br = np.minimum(a[..., 2:], b[..., 2:])
    inter = np.prod(np.clip(br - tl, 0, None), axis=-1)
    area_a = np.prod(np.clip(a[..., 2:] - a[..., :2], 0, None), axis=-1)
    area_b = np.prod(np.clip(b[..., 2:] - b[..., :2], 0, None), axis=-1)
    union = area_a + area_b - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0).astype(np.float32)


def nms(xyxy: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression; return the kept indices, best score first."""
    xyxy = np.asarray(xyxy, np.float32).reshape(-1, 4)
    if not len(xyxy):
        return np.zeros(0, np.int64)
    import cv2  # OpenCV's NMS is C++; a crowd or a noisy frame yields thousands of candidates

    xywh = np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], axis=1)
    keep = cv2.dnn.NMSBoxes(xywh.tolist(), np.asarray(scores, np.float32).tolist(), 0.0, float(iou_threshold))
    keep = np.asarray(keep, np.int64).reshape(-1)
    return keep[np.argsort(-np.asarray(scores)[keep], kind="stable")]
