"""Maskers: ``apply(image, regions) -> image``, destroying identity inside each region.

Strength scales with the region's size: a fixed 15 px blur leaves a 300 px face recognisable.
Blur and mosaic both reduce the region to a handful of cells across (``CELLS / strength``), so no
detail finer than a cell survives, whatever the face's size; and a cell is never smaller than
``MIN_CELL_PX``, so a tiny region is not "masked" by cells finer than its own detail.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

from anonymizer.config import MaskSpec
from anonymizer.detections import FACE, Detections

# Cells across the region's shorter side at strength 1. Eight left 0.224 of a 21x25 px crowd face's
# detail in a panned tune clip (hidden means <= 0.2); six hide it and every object eight hides, on
# both halves of the video kinds and of the photo sets (docs/evaluate.md, "Mask strength"), for
# 5-20 % more changed pixels around the masks. Seven traded that face for two others.
CELLS = 6.0
# Eight cells across a 15 px padded plate are 2 px each: finer than a 5 px tall plate's character
# strokes, which survived such a blur in the video evaluation. Cells are never smaller than this.
MIN_CELL_PX = 4


def _draw_ellipse(h: int, w: int) -> np.ndarray:
    mask = np.zeros((h, w), np.uint8)
    cv2.ellipse(mask, (w // 2, h // 2), (max(1, w // 2), max(1, h // 2)), 0, 0, 360, 255, -1)
    return mask.astype(bool)


@functools.lru_cache(maxsize=4096)
def _ellipse_mask(h: int, w: int) -> np.ndarray:
    """The ellipse inscribed in an h x w box, as a read-only boolean array, drawn once per size.

    A crowd in a panned clip puts about a thousand regions on every frame, mostly of a few hundred
    sizes; drawing each one again cost a seventh of the masking time (docs/benchmarks.md, "CPU
    outside the models"). Read-only, so no caller can change what later callers get.
    """
    mask = _draw_ellipse(h, w)
    mask.flags.writeable = False
    return mask


def _cells(h: int, w: int, cells: float) -> tuple[int, int]:
    """(width, height) of the few pixels a region of h x w is shrunk to."""
    f = max(float(MIN_CELL_PX), min(h, w) / max(cells, 1.0))
    return max(1, int(round(w / f))), max(1, int(round(h / f)))


def _blurred(roi: np.ndarray, cells: float) -> np.ndarray:
    h, w = roi.shape[:2]
    # Shrink to a few pixels across, blur there, enlarge smoothly: cheap at any size, and
    # what survives is a colour gradient, not a face.
    small = cv2.resize(roi, _cells(h, w, cells), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (3, 3), 0) if min(small.shape[:2]) >= 3 else small
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def _pixelated(roi: np.ndarray, cells: float) -> np.ndarray:
    h, w = roi.shape[:2]
    small = cv2.resize(roi, _cells(h, w, cells), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)


def _masked_pair(u: np.ndarray, v: np.ndarray, cells: float, pixelate: bool) -> np.ndarray:
    """``_blurred`` (or ``_pixelated``) of two same-sized planes, as one (h, w, 2) array.

    Each plane is shrunk on its own, then both are blurred and enlarged as one two-channel image:
    OpenCV blurs and enlarges each channel by itself, so every pixel is the one-plane function's
    (tests/unit/test_mask_equivalence.py pins it), at four calls instead of six. Not the shrink:
    OpenCV's two-channel INTER_AREA at whole-number factors rounds differently from one channel.
    """
    h, w = u.shape
    size = _cells(h, w, cells)
    small = np.stack(
        (cv2.resize(u, size, interpolation=cv2.INTER_AREA), cv2.resize(v, size, interpolation=cv2.INTER_AREA)), axis=2
    )
    if pixelate:
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)
    small = cv2.GaussianBlur(small, (3, 3), 0) if min(small.shape[:2]) >= 3 else small
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def _rgb_to_yuv(color: tuple[int, int, int]) -> tuple[int, int, int]:
    """BT.601 limited range, what H.264 encoders assume for yuv420p without other tags."""
    r, g, b = color
    y = 16 + 0.257 * r + 0.504 * g + 0.098 * b
    u = 128 - 0.148 * r - 0.291 * g + 0.439 * b
    v = 128 + 0.439 * r - 0.368 * g - 0.071 * b
    return int(round(y)), int(round(u)), int(round(v))


# The nesting check holds an n x n matrix: 6 MB and about 10 ms at this many regions a frame
# (a panned crowd has 800-1,200); a pathological picture with tens of thousands skips it.
MAX_NESTING_CHECK = 2500


def _inside(inner: tuple[int, ...], outer: tuple[int, ...]) -> bool:
    """Whether every pixel ``inner`` masks, luma and chroma, lies in ``outer``'s ellipse.

    ``inner`` and ``outer`` are (x1, y1, x2, y2, ellipse) rows, ``inner``'s box inside ``outer``'s.
    Checked on the drawn masks themselves, at full size and at the chroma planes' half size (each
    region is masked there over the half-size box that contains it).
    """
    for half in (False, True):
        if half:
            inner = (inner[0] // 2, inner[1] // 2, -(-inner[2] // 2), -(-inner[3] // 2), inner[4])
            outer = (outer[0] // 2, outer[1] // 2, -(-outer[2] // 2), -(-outer[3] // 2), outer[4])
        x1, y1, x2, y2, ellipse = inner
        ox1, oy1, ox2, oy2, _ = outer
        drawn = _ellipse_mask(oy2 - oy1, ox2 - ox1)[y1 - oy1 : y2 - oy1, x1 - ox1 : x2 - ox1]
        mine = _ellipse_mask(y2 - y1, x2 - x1) if ellipse else True
        if np.any(mine & ~drawn):
            return False
    return True


def _uncovered(rows: np.ndarray) -> np.ndarray:
    """Which of ``rows`` (x1, y1, x2, y2, ellipse; largest first) an earlier row does not cover.

    A region whose every pixel an earlier, larger region masks is left out: the larger one has
    already hidden what was there, with cells that follow its own shorter side (no shorter than
    the inner one's), and a second mask would only blur that blur again. A crowd in a panned clip
    has about 800 regions a frame, two fifths of them inside another's mask (docs/benchmarks.md,
    "Regions inside other regions"). Above ``MAX_NESTING_CHECK`` regions every one is masked: the
    check compares every pair, and masking a region twice is always safe.
    """
    n = len(rows)
    keep = np.ones(n, bool)
    if n < 2 or n > MAX_NESTING_CHECK:
        return keep
    # int32 halves the time of the n x n comparisons against int64 (a few ms a crowd frame);
    # max_pixels keeps every coordinate far below 2**31.
    x1, y1, x2, y2, ellipse = (rows[:, k].astype(np.int32) for k in range(5))
    # contains[i, j]: row i is earlier than row j and its box holds row j's box.
    contains = np.less_equal.outer(x1, x1)
    contains &= np.less_equal.outer(y1, y1)
    contains &= np.greater_equal.outer(x2, x2)
    contains &= np.greater_equal.outer(y2, y2)
    contains &= np.tri(n, k=-1, dtype=bool).T
    keep &= ~(contains & (ellipse == 0)[:, None]).any(axis=0)  # a box mask covers its whole box
    for j in np.flatnonzero(keep & contains.any(axis=0)):  # inside ellipses only: drawn pixels decide
        keep[j] = not any(_inside(tuple(rows[j]), tuple(rows[i])) for i in np.flatnonzero(contains[:, j]))
    return keep


class Masker:
    """Applies the profile's mask to every region; faces take the profile's shape, plates boxes.

    Plates are always masked as boxes: their characters sit in the corners an ellipse leaves out.
    Works on RGB images, or directly on the planes of a yuv420p video frame, which spares two
    colour conversions per frame.
    """

    def __init__(self, spec: MaskSpec) -> None:
        self.spec = spec
        self.cells = CELLS / spec.strength
        self.yuv_fill = _rgb_to_yuv(spec.color)

    def _masked(self, roi: np.ndarray, fill: object, cells: float) -> np.ndarray:
        if self.spec.method == "fill":
            masked = np.empty_like(roi)
            masked[:] = fill
            return masked
        if self.spec.method == "pixelate":
            return _pixelated(roi, cells)
        return _blurred(roi, cells)

    def _mask(self, roi: np.ndarray, fill: object, ellipse: bool, cells: float) -> None:
        masked = self._masked(roi, fill, cells)
        if ellipse:
            # copyto with where= writes the same pixels as roi[inside] = masked[inside], without
            # gathering both sides into temporary arrays first.
            inside = _ellipse_mask(roi.shape[0], roi.shape[1])
            np.copyto(roi, masked, where=inside if roi.ndim == 2 else inside[:, :, None])
        else:
            roi[:] = masked

    def _mask_chroma(self, u: np.ndarray, v: np.ndarray, ellipse: bool) -> None:
        """Mask the same box of both chroma planes, blurred or pixelated together (``_masked_pair``)."""
        if self.spec.method == "fill":
            self._mask(u, self.yuv_fill[1], ellipse, self.cells)
            self._mask(v, self.yuv_fill[2], ellipse, self.cells)
            return
        masked = _masked_pair(u, v, self.cells, self.spec.method == "pixelate")
        if ellipse:
            inside = _ellipse_mask(u.shape[0], u.shape[1])
            np.copyto(u, masked[:, :, 0], where=inside)
            np.copyto(v, masked[:, :, 1], where=inside)
        else:
            u[:] = masked[:, :, 0]
            v[:] = masked[:, :, 1]

    def _boxes(self, regions: Detections, width: int, height: int) -> list[tuple[int, int, int, int, bool]]:
        """Each region's pixel box and whether it is masked as an ellipse, in masking order.

        Larger regions first, so a small region inside a large one is masked on top of it, unless
        the large one's mask already covers every pixel of it (``_uncovered``). The same box twice
        is masked once: the tracker's two linkings and its guesses often predict
        the very same pixels, and a second pass over them would only blur a blur (a fifth of the
        masking time in a crowd). Computed on arrays: a crowd in a panned clip has a thousand
        regions per frame.
        """
        if not len(regions):
            return []
        order = np.argsort(-regions.area)
        xyxy = regions.xyxy[order]
        x1 = np.maximum(0, np.floor(xyxy[:, 0]).astype(np.int64))
        y1 = np.maximum(0, np.floor(xyxy[:, 1]).astype(np.int64))
        x2 = np.minimum(width, np.ceil(xyxy[:, 2]).astype(np.int64))
        y2 = np.minimum(height, np.ceil(xyxy[:, 3]).astype(np.int64))
        # A face region cut by the frame's edge is masked whole: an ellipse inscribed in its
        # visible part would leave the corners at the edge, where the cut face is, unmasked.
        at_edge = (x1 <= 0) | (y1 <= 0) | (x2 >= width) | (y2 >= height)
        ellipse = (
            (regions.class_id[order] == FACE) & ~at_edge if self.spec.shape == "ellipse" else np.zeros(len(order), bool)
        )
        rows = np.stack([x1, y1, x2, y2, ellipse.astype(np.int64)], axis=1)[(x2 - x1 >= 1) & (y2 - y1 >= 1)]
        if not len(rows):
            return []
        _, first = np.unique(rows, axis=0, return_index=True)
        rows = rows[np.sort(first)]
        return [(a, b, c, d, bool(e)) for a, b, c, d, e in rows[_uncovered(rows)].tolist()]

    def apply(self, image: np.ndarray, regions: Detections) -> np.ndarray:
        """Mask ``regions`` (already padded and clipped) in ``image`` (H, W, 3 uint8); return it.

        The image is modified in place and returned, to avoid copying every 1080p frame.
        """
        for x1, y1, x2, y2, ellipse in self._boxes(regions, image.shape[1], image.shape[0]):
            self._mask(image[y1:y2, x1:x2], self.spec.color, ellipse, self.cells)
        return image

    def apply_yuv420(self, yuv: np.ndarray, regions: Detections) -> np.ndarray:
        """Mask a yuv420p frame given as PyAV's (H * 3 / 2, W) array (W even, H a multiple of 4).

        Chroma planes are half size: each region is masked there over the half-size box that
        contains it, so no colour detail survives either.
        """
        height, width = yuv.shape[0] * 2 // 3, yuv.shape[1]
        luma = yuv[:height]
        u = yuv[height : height + height // 4].reshape(height // 2, width // 2)
        v = yuv[height + height // 4 :].reshape(height // 2, width // 2)
        for x1, y1, x2, y2, ellipse in self._boxes(regions, width, height):
            self._mask(luma[y1:y2, x1:x2], self.yuv_fill[0], ellipse, self.cells)
            cx1, cy1, cx2, cy2 = x1 // 2, y1 // 2, -(-x2 // 2), -(-y2 // 2)
            self._mask_chroma(u[cy1:cy2, cx1:cx2], v[cy1:cy2, cx1:cx2], ellipse)
        return yuv
