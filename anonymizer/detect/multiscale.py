"""Multi-scale, tiled and flipped inference around one raw detector.

Small objects are the leak: a 12 px face in a crowd vanishes when a 1080p frame is squeezed into a
640 px network input. Each configured scale resizes the whole frame; a scaled frame larger than
``tile_size`` is cut into overlapping tiles so nothing is shrunk further; the results of all passes
are merged with NMS in source-pixel coordinates.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from anonymizer.config import ClassSpec
from anonymizer.detect.base import RawDetector
from anonymizer.detections import Detections, nms


def tile_starts(length: int, tile: int, overlap: float) -> list[int]:
    """Given a side length, return tile start offsets so tiles of ``tile`` px cover it with overlap."""
    if length <= tile:
        return [0]
    stride = tile * (1.0 - overlap)
    count = math.ceil((length - tile) / stride) + 1
    step = (length - tile) / (count - 1)
    return [int(round(i * step)) for i in range(count)]


def plan_passes(
    height: int, width: int, spec: ClassSpec, *, video: bool = False, fixed_input: int | None = None
) -> list[tuple[float, int, int, int, int]]:
    """Return (scale, x0, y0, x1, y1) crops, in scaled-image pixels, that one image is run through.

    Video frames may use cheaper ``video_scales``: an object missed in one frame is still caught
    in its neighbours and carried over by the tracker, which a single photo cannot count on.
    A model with a fixed input (``fixed_input`` px, letterboxed) sees the same picture for every
    scale at which the whole image fits one tile, so such repeats are skipped.
    """
    passes = []
    whole_image_views: list[float] = []
    scales = spec.video_scales if video and spec.video_scales else spec.scales
    for scale in scales:
        sh, sw = max(1, int(round(height * scale))), max(1, int(round(width * scale)))
        if fixed_input and sh <= spec.tile_size and sw <= spec.tile_size:
            seen_at = scale * min(fixed_input / sh, fixed_input / sw)
            if any(abs(seen_at - other) < 0.01 * other for other in whole_image_views):
                continue
            whole_image_views.append(seen_at)
        for y in tile_starts(sh, spec.tile_size, spec.tile_overlap):
            for x in tile_starts(sw, spec.tile_size, spec.tile_overlap):
                passes.append((scale, x, y, min(x + spec.tile_size, sw), min(y + spec.tile_size, sh)))
    return passes


class ClassDetector:
    """Runs one raw detector for one class over every planned pass and merges the results."""

    def __init__(self, raw: RawDetector, spec: ClassSpec, class_id: int, *, batch_size: int = 8) -> None:
        self.raw = raw
        self.batch_size = batch_size
        self.spec = spec
        self.class_id = class_id

    def __call__(self, rgb: np.ndarray) -> Detections:
        return self.detect_many([rgb])[0]

    def detect_many(self, images: list[np.ndarray], *, video: bool = False) -> list[Detections]:
        """Detect in several images; a raw detector with ``batch`` gets same-shaped crops together."""
        jobs = []  # (image index, scale, x0, y0, crop, flipped)
        for index, rgb in enumerate(images):
            height, width = rgb.shape[:2]
            scaled: dict[float, np.ndarray] = {}
            for scale, x0, y0, x1, y1 in plan_passes(
                height, width, self.spec, video=video, fixed_input=getattr(self.raw, "fixed_input", None)
            ):
                if scale not in scaled:
                    size = (max(1, int(round(width * scale))), max(1, int(round(height * scale))))
                    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
                    scaled[scale] = rgb if scale == 1.0 else cv2.resize(rgb, size, interpolation=interpolation)
                crop = scaled[scale][y0:y1, x0:x1]
                jobs.append((index, scale, x0, y0, crop, False))
                if self.spec.flip:
                    jobs.append((index, scale, x0, y0, np.ascontiguousarray(crop[:, ::-1]), True))

        outputs: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(jobs)
        batch = getattr(self.raw, "batch", None)
        if batch is not None:
            groups: dict[tuple[int, ...], list[int]] = {}
            for j, job in enumerate(jobs):
                groups.setdefault(job[4].shape, []).append(j)
            for members in groups.values():
                for start in range(0, len(members), self.batch_size):
                    chunk = members[start : start + self.batch_size]
                    for j, out in zip(chunk, batch([jobs[j][4] for j in chunk], self.spec.threshold)):
                        outputs[j] = out
        else:
            for j, job in enumerate(jobs):
                outputs[j] = self.raw(job[4], self.spec.threshold)

        per_image: list[tuple[list[np.ndarray], list[np.ndarray]]] = [([], []) for _ in images]
        for (index, scale, x0, y0, crop, flipped), (xyxy, conf) in zip(jobs, outputs):  # type: ignore[misc]
            if not len(xyxy):
                continue
            if flipped:
                xyxy = xyxy.copy()
                xyxy[:, [0, 2]] = crop.shape[1] - xyxy[:, [2, 0]]
            per_image[index][0].append((xyxy + [x0, y0, x0, y0]) / scale)
            per_image[index][1].append(conf)
        return [self._merge(boxes, scores) for boxes, scores in per_image]

    def _merge(self, boxes: list[np.ndarray], scores: list[np.ndarray]) -> Detections:
        if not boxes:
            return Detections.empty()
        xyxy = np.concatenate(boxes).astype(np.float32)
        conf = np.concatenate(scores).astype(np.float32)
        if self.spec.min_size_px > 0:
            wh = xyxy[:, 2:] - xyxy[:, :2]
            keep = np.maximum(wh[:, 0], wh[:, 1]) >= self.spec.min_size_px
            xyxy, conf = xyxy[keep], conf[keep]
        keep = nms(xyxy, conf, 0.4)
        return Detections(xyxy[keep], conf[keep], np.full(len(keep), self.class_id, np.int32))
