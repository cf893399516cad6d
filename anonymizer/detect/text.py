"""A second cue for plates: text regions found by PP-OCRv4's text detector.

Some plates look like no plate the plate model was trained on (a US plate on a trailer, a plate
seen through a gate, a shipped demo photo whose plate platedet never scores): their characters are
still text. PaddleOCR's PP-OCRv4 detector (a DB network, Apache-2.0, shipped as an ONNX file in the
``rapidocr-onnxruntime`` wheel) marks every text line in a scene; the regions shaped like a plate's
characters (``plate_shaped``) become extra plate candidates. They are **added** to the plate
model's detections, never replacing or suppressing one (``add_text_candidates``): a text cue can
only add candidates. Photos (``Engine.detect_image``) and, with ``detect.plate_text.video``, the
plate frames of a video (``VideoTextCue``, run by ``anonymizer.stream.stages.Detect``).

The DB network outputs a text probability map at the input's resolution; boxes come from the
connected regions above ``bin_threshold``, scored by their mean probability and grown by DB's
"unclip" distance (area x ratio / perimeter), as PaddleOCR's post-processing does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from anonymizer.detect.base import ModelInfo, file_sha256
from anonymizer.detect.onnx import _providers, _session
from anonymizer.detections import PLATE, Detections

# PaddleOCR's detector normalisation: BGR, /255, ImageNet mean and std (RUNTIME-NOTES.md).
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)
UNCLIP_RATIO = 1.6  # PaddleOCR's default: the map marks a shrunk core of each text line
BIN_THRESHOLD = 0.3  # PaddleOCR's default for binarising the probability map


def input_size(height: int, width: int, side: int) -> tuple[int, int]:
    """The network's input (height, width): the longer side ``side`` px (never enlarged beyond
    it), both sides multiples of 32, at least 32."""
    ratio = side / max(height, width)
    return max(32, int(round(height * ratio / 32)) * 32), max(32, int(round(width * ratio / 32)) * 32)


def boxes_from_map(prob: np.ndarray, bin_threshold: float = BIN_THRESHOLD) -> tuple[np.ndarray, np.ndarray]:
    """Given a (h, w) text probability map, return (xyxy float32 (n, 4) in map pixels, mean score (n,)).

    Each 8-connected region above ``bin_threshold`` (dilated by 2x2, as PaddleOCR does) is one
    box, grown on each side by DB's unclip distance area * ratio / perimeter of its bounding box.
    """
    mask = cv2.dilate((prob > bin_threshold).astype(np.uint8), np.ones((2, 2), np.uint8))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count <= 1:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
    sums = np.bincount(labels.ravel(), weights=prob.ravel(), minlength=count)[1:]
    x, y, w, h, area = (stats[1:, i].astype(np.float32) for i in range(5))
    scores = (sums / np.maximum(area, 1)).astype(np.float32)
    grow = w * h * UNCLIP_RATIO / (2 * (w + h))
    xyxy = np.stack([x - grow, y - grow, x + w + grow, y + h + grow], axis=1)
    keep = (w >= 2) & (h >= 2)
    return xyxy[keep].astype(np.float32), scores[keep]


class TextDetector:
    """PP-OCRv4's DB text detector on onnxruntime: ``(rgb, side) -> (xyxy, scores)`` in source px."""

    def __init__(self, path: Path, licence: str, *, threads: int = 0) -> None:

        self.info = ModelInfo("pp-ocrv4-det", file_sha256(path), licence, str(path))
        self.session = _session(Path(path).read_bytes(), threads, _providers("cpu"))
        self.input_name = self.session.get_inputs()[0].name

    def probability(self, rgb: np.ndarray, side: int) -> np.ndarray:
        """The text probability map (float32, the network's input size) of ``rgb`` resized so its
        longer side is about ``side`` px."""
        h, w = input_size(*rgb.shape[:2], side)
        interpolation = cv2.INTER_AREA if h < rgb.shape[0] else cv2.INTER_LINEAR
        bgr = cv2.resize(rgb, (w, h), interpolation=interpolation)[:, :, ::-1].astype(np.float32) / 255.0
        blob = ((bgr - MEAN) / STD).transpose(2, 0, 1)[None]
        return self.session.run(None, {self.input_name: np.ascontiguousarray(blob)})[0][0, 0]

    def __call__(self, rgb: np.ndarray, side: int) -> tuple[np.ndarray, np.ndarray]:
        prob = self.probability(rgb, side)
        xyxy, scores = boxes_from_map(prob)
        sy, sx = rgb.shape[0] / prob.shape[0], rgb.shape[1] / prob.shape[1]
        xyxy = xyxy * np.array([sx, sy, sx, sy], np.float32)
        h, w = rgb.shape[:2]
        return np.clip(xyxy, 0, [w, h, w, h]).astype(np.float32), scores


@dataclass(frozen=True)
class PlateShape:
    """Which text regions look like the characters of a plate (source pixels)."""

    min_score: float
    min_aspect: float
    max_aspect: float
    min_height_px: float
    max_height_frac: float  # of the image's height
    grow: float  # each side grows by this fraction of the box's height: characters -> plate


def plate_shaped(xyxy: np.ndarray, scores: np.ndarray, image_hw: tuple[int, int], shape: PlateShape) -> np.ndarray:
    """Given text boxes, return a bool (n,) mask of those shaped like a plate's characters."""
    wh = xyxy[:, 2:] - xyxy[:, :2]
    aspect = wh[:, 0] / np.maximum(wh[:, 1], 1e-3)
    return (
        (scores >= shape.min_score)
        & (aspect >= shape.min_aspect)
        & (aspect <= shape.max_aspect)
        & (wh[:, 1] >= shape.min_height_px)
        & (wh[:, 1] <= shape.max_height_frac * image_hw[0])
    )


def text_candidates(xyxy: np.ndarray, scores: np.ndarray, image_hw: tuple[int, int], shape: PlateShape) -> Detections:
    """The plate-shaped text regions as plate detections, grown from the characters to the plate
    around them and clipped to the image."""
    keep = plate_shaped(xyxy, scores, image_hw, shape)
    boxes = xyxy[keep].copy()
    pad = shape.grow * (boxes[:, 3] - boxes[:, 1])
    boxes += np.stack([-pad, -pad, pad, pad], axis=1)
    h, w = image_hw
    boxes = np.clip(boxes, 0, [w, h, w, h])
    return Detections(boxes, scores[keep], np.full(len(boxes), PLATE, np.int32))


def add_text_candidates(plates: Detections, candidates: Detections, *, covered: float = 0.7) -> Detections:
    """Return every plate detection, unchanged and in order, followed by the text candidates that
    no detection already covers (at least ``covered`` of the candidate's area inside one).

    Never an NMS between the two: a text box scoring higher than an overlapping plate box must
    not suppress the plate box, which is usually the larger of the two.
    """
    if not len(candidates):
        return plates
    if len(plates):
        a, b = candidates.xyxy, plates.xyxy
        ix = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
        iy = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
        area = np.maximum((a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]), 1e-6)
        inside = (ix * iy).max(axis=1) / area
        candidates = candidates[inside < covered]
    return Detections.merge([plates, candidates])


def crop_candidates(
    detector: TextDetector, rgb: np.ndarray, areas: np.ndarray, shape: PlateShape, side: int
) -> Detections:
    """The plate-shaped text regions inside ``areas`` (float32 (n, 4) source px) of a video frame.

    Each area is seen at the source's own pixels (a 20 px plate stays 20 px: the whole 1080p frame
    at ``side`` 960 would halve it), its longer side at most ``side``. The shape rule judges the
    regions in frame pixels (``max_height_frac`` of the frame's height, not the crop's). Areas that
    overlap find the same text twice: a candidate mostly inside an earlier one is dropped.
    """
    height, width = rgb.shape[:2]
    found = Detections.empty()
    for x1, y1, x2, y2 in np.asarray(areas, np.float32).reshape(-1, 4):
        x1, y1 = max(0, int(np.floor(x1))), max(0, int(np.floor(y1)))
        x2, y2 = min(width, int(np.ceil(x2))), min(height, int(np.ceil(y2)))
        if x2 - x1 < 8 or y2 - y1 < 8:
            continue
        crop = rgb[y1:y2, x1:x2]
        xyxy, scores = detector(crop, min(side, max(crop.shape[:2])))
        xyxy = xyxy + np.array([x1, y1, x1, y1], np.float32)
        found = add_text_candidates(found, text_candidates(xyxy, scores, (height, width), shape))
    return found


@dataclass(frozen=True)
class VideoTextCue:
    """Where and when a video's plate frames get the text cue (``detect.plate_text.video``).

    ``mode``: ``changed`` = the changed areas of gated frames (a still fixed camera) and the whole
    frame on refreshes (on a moving camera with gating on, every full-plan frame is one); ``frames``
    = also the whole frame of every other ungated plate frame (a moving camera, gating off).
    ``every``: ``detector`` = every plate detector frame, ``full`` = the full plan's.
    """

    detector: TextDetector
    shape: PlateShape
    side: int
    mode: str
    every: str

    def areas(self, rgb: np.ndarray, *, full: bool, refresh: bool, crops: np.ndarray | None) -> np.ndarray | None:
        """The areas (source px) this plate frame's text pass covers: ``crops`` on a gated frame
        (None when the frame is not gated), the whole frame, or None for no text pass."""
        if self.every == "full" and not full:
            return None
        if crops is not None:
            return crops if len(crops) else None
        if refresh or self.mode == "frames":
            height, width = rgb.shape[:2]
            return np.array([[0, 0, width, height]], np.float32)
        return None

    def candidates(self, rgb: np.ndarray, areas: np.ndarray) -> Detections:
        """Plate candidates from the text in ``areas``: the whole frame at ``side`` (as a photo),
        or each changed area at the source's own pixels."""
        height, width = rgb.shape[:2]
        if len(areas) == 1 and np.array_equal(areas[0], [0, 0, width, height]):
            xyxy, scores = self.detector(rgb, self.side)
            return text_candidates(xyxy, scores, (height, width), self.shape)
        return crop_candidates(self.detector, rgb, areas, self.shape, self.side)
