"""Maskers: ``apply(image, regions) -> image``, destroying identity inside each region.

Strength scales with the region's size: a fixed 15 px blur leaves a 300 px face recognisable.
Blur and mosaic both reduce the region to a handful of cells across (``CELLS / strength``), so no
detail finer than a cell survives, whatever the face's size.
"""

from __future__ import annotations

import cv2
import numpy as np

from anonymizer.config import MaskSpec
from anonymizer.detections import FACE, Detections

CELLS = 8.0  # cells across the region's shorter side at strength 1
MIN_CELL_PX = 4  # a mosaic of 2 px cells on a tiny face is barely a mask: cells are never smaller


def _ellipse_mask(h: int, w: int) -> np.ndarray:
    mask = np.zeros((h, w), np.uint8)
    cv2.ellipse(mask, (w // 2, h // 2), (max(1, w // 2), max(1, h // 2)), 0, 0, 360, 255, -1)
    return mask.astype(bool)


def _blurred(roi: np.ndarray, cells: float) -> np.ndarray:
    h, w = roi.shape[:2]
    # Shrink to a few pixels across, blur there, enlarge smoothly: cheap at any size, and
    # what survives is a colour gradient, not a face.
    f = max(1.0, min(h, w) / cells)
    small = cv2.resize(roi, (max(1, int(round(w / f))), max(1, int(round(h / f)))), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (3, 3), 0) if min(small.shape[:2]) >= 3 else small
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def _pixelated(roi: np.ndarray, cells: float) -> np.ndarray:
    h, w = roi.shape[:2]
    f = max(float(MIN_CELL_PX), min(h, w) / cells)
    small = cv2.resize(roi, (max(1, int(round(w / f))), max(1, int(round(h / f)))), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)


class Masker:
    """Applies the profile's mask to every region; faces take the profile's shape, plates boxes.

    Plates are always masked as boxes: their characters sit in the corners an ellipse leaves out.
    """

    def __init__(self, spec: MaskSpec) -> None:
        self.spec = spec
        self.cells = CELLS / spec.strength

    def apply(self, image: np.ndarray, regions: Detections) -> np.ndarray:
        """Mask ``regions`` (already padded and clipped) in ``image`` (H, W, 3 uint8); return it.

        The image is modified in place and returned, to avoid copying every 1080p frame.
        """
        # Larger regions first, so a small region inside a large one is masked on top of it.
        order = np.argsort(-regions.area) if len(regions) else []
        for i in order:
            x1, y1, x2, y2 = np.round(regions.xyxy[i]).astype(int)
            x1, y1 = max(0, x1), max(0, y1)
            x2, y2 = min(image.shape[1], x2), min(image.shape[0], y2)
            if x2 - x1 < 1 or y2 - y1 < 1:
                continue
            roi = image[y1:y2, x1:x2]
            if self.spec.method == "fill":
                masked = np.empty_like(roi)
                masked[:] = self.spec.color
            elif self.spec.method == "pixelate":
                masked = _pixelated(roi, self.cells)
            else:
                masked = _blurred(roi, self.cells)
            if self.spec.shape == "ellipse" and regions.class_id[i] == FACE:
                inside = _ellipse_mask(y2 - y1, x2 - x1)
                roi[inside] = masked[inside]
            else:
                roi[:] = masked
        return image
