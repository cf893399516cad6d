"""Fixed cameras: where a frame's pixels changed since the last full detection.

Most VMS exports come from cameras that never move. A region whose pixels have not changed since
a class's last full detection keeps what was found there, and the detector runs only on what
changed. "Changed" is measured on block means of the luma plane (8x8 px blocks average sensor
noise and compression grain away), after removing the frame's overall brightness shift (slow
light changes, auto exposure), against a threshold scaled by the frame's own noise level. A frame
where a large share of the blocks changed is camera motion (a pan, a shake, a cut): gating is off
for that frame and the reference starts again from it.

Everything here is pure and works on arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

BLOCK = 8  # source pixels per side of one change cell
MIN_DELTA = 6.0  # block-mean luma change always counted as real (0-255 scale)
NOISE_FACTOR = 5.0  # ... or this many robust standard deviations of the frame's block differences,
MAX_DELTA = 20.0  # ... but never more: when most of the frame changed, the "noise" is the change
# Context around a change: a detector needs the whole face or plate and some of its surroundings,
# and an object keeps moving into pixels that have not changed yet.
CONTEXT_PX = 48
# One more inference costs about as much as this many more pixels (CenterFace on a 2-core CPU:
# 2.7 ms a call on a 128 px crop, 0.11 ms per 1,000 px on a whole 1080p frame): changed areas
# whose joint crop adds no more than that share one crop.
CROP_OVERHEAD_PX = 96 * 96
# Up to this many changed areas are each a crop of their own. More are scattered (compression
# grain, stray cells): ClassSchedule._look_again merges a fully convolutional model's crops
# (merge_crops: cheapest pair first, where one crop costs no more than two, or while more than
# MAX_CROPS remain), and tiles the box around them all for a fixed-input model's windows.
MAX_AREAS = 6
MAX_CROPS = 24
MERGE_LIMIT = 128  # more areas than this (rain, snow; the search holds every pair's cost): one box around all
MOTION_SHARE = 0.35  # more of the frame changed than this: the camera moved
# ... and so did it when the whole picture shifted by more than this many cells (1 px): a slow
# pan moves every object a little each frame, less than block means notice in flat areas, but a
# box kept from the reference would drift off its object.
MOTION_SHIFT_CELLS = 0.125


def block_means(gray: np.ndarray) -> np.ndarray:
    """Mean luma of each BLOCK x BLOCK cell (float32), the unit every change is measured in."""
    h, w = gray.shape[:2]
    return cv2.resize(gray, (max(1, w // BLOCK), max(1, h // BLOCK)), interpolation=cv2.INTER_AREA).astype(np.float32)


@dataclass(frozen=True)
class Change:
    """What changed in one frame against a reference.

    Attributes:
        cells: bool (rows, cols) of BLOCK-px cells that changed, widened by the context margin.
        share: fraction of cells that changed before widening.
        boxes: float32 (n, 4) xyxy boxes in source pixels around the connected changed areas.
        raw: bool (rows, cols) of the cells that changed themselves (``cells`` before widening).
    """

    cells: np.ndarray
    share: float
    boxes: np.ndarray
    shift: float = 0.0  # global shift against the reference, in cells (phase correlation)
    raw: np.ndarray | None = None  # None: ``cells``

    @property
    def around_all(self) -> np.ndarray:
        """The one box (1, 4) around every changed area, or none (0, 4)."""
        return _around(self.boxes).astype(np.float32)

    def active(self, other: Change, frame_wh: tuple[int, int]) -> Change:
        """This change's areas, each whole, that hold a cell ``other`` saw change itself (this
        one's share and shift): an area either still changes, and is seen as it was before, or
        it settled."""
        n, labels = cv2.connectedComponents(self.cells.astype(np.uint8), connectivity=8)
        live = np.zeros(n, bool)
        live[np.unique(labels[other._raw & self.cells])] = True
        live[0] = False
        cells = live[labels]
        return Change(cells, self.share, _areas(cells, frame_wh), self.shift, self._raw & cells)

    @property
    def _raw(self) -> np.ndarray:
        return self.cells if self.raw is None else self.raw

    @property
    def camera_moved(self) -> bool:
        return self.share > MOTION_SHARE or self.shift > MOTION_SHIFT_CELLS

    def touches(self, xyxy: np.ndarray) -> np.ndarray:
        """Per box (n, 4) in source pixels, whether any changed cell (widened by the context) lies
        under it: bool (n,)."""
        return _under(self.cells, xyxy)

    def on(self, xyxy: np.ndarray) -> np.ndarray:
        """Per box (n, 4) in source pixels, whether a cell under it changed itself: bool (n,)."""
        return _under(self._raw, xyxy)


def _under(cells: np.ndarray, xyxy: np.ndarray) -> np.ndarray:
    """Per box (n, 4) in source pixels, whether any true cell lies under it (or a cell past its
    right or bottom edge): bool (n,)."""
    boxes = np.asarray(xyxy, np.float32).reshape(-1, 4)
    return np.array([bool(cells[cells_under(box, cells.shape, past=1)].any()) for box in boxes], bool)


def cells_under(box: np.ndarray, shape: tuple[int, ...], past: int = 0) -> tuple[slice, slice]:
    """The (rows, cols) slices of the BLOCK-px cells a box (x1, y1, x2, y2, source pixels) covers,
    partly covered ones included, plus ``past`` more past its right and bottom edges."""
    rows, cols = shape[:2]
    x1, y1, x2, y2 = (float(v) for v in box)
    c1, r1 = max(0, int(x1 // BLOCK)), max(0, int(y1 // BLOCK))
    c2, r2 = min(cols, int(np.ceil(x2 / BLOCK)) + past), min(rows, int(np.ceil(y2 / BLOCK)) + past)
    return slice(r1, r2), slice(c1, c2)


def compare(reference: np.ndarray, current: np.ndarray, frame_wh: tuple[int, int], *, shift: bool = True) -> Change:
    """Given two ``block_means`` maps of the same frame size, return what changed (``shift``:
    also how far the whole picture moved, which only a comparison with a refresh needs)."""
    diff = current - reference
    diff -= float(np.median(diff))  # a global brightness drift is light, not an object
    magnitude = np.abs(diff)
    noise = 1.4826 * float(np.median(magnitude))
    changed = magnitude > min(MAX_DELTA, max(MIN_DELTA, NOISE_FACTOR * noise))
    share = float(changed.mean()) if changed.size else 0.0
    reach = int(np.ceil(CONTEXT_PX / BLOCK))
    widened = cv2.dilate(changed.astype(np.uint8), np.ones((2 * reach + 1, 2 * reach + 1), np.uint8)) > 0
    return Change(widened, share, _areas(widened, frame_wh), _global_shift(reference, current) if shift else 0.0, changed)


def _global_shift(reference: np.ndarray, current: np.ndarray) -> float:
    """How far the whole picture moved against the reference, in cells (0 for a still camera)."""
    if min(reference.shape) < 8:
        return 0.0
    # Sizes the DFT takes as they are: OpenCV pads others, and on a padded map the correlation
    # peak of a still picture sits half a cell off (seen with 44 and 45 rows, OpenCV 5.0); even sizes only, odd ones are off too.
    rows, cols = (_dft_size_below(n) for n in reference.shape)
    # Copies: phaseCorrelate may apply its window to the arrays it is given.
    reference, current = reference[:rows, :cols].copy(), current[:rows, :cols].copy()
    window = cv2.createHanningWindow(reference.shape[::-1], cv2.CV_32F)
    (dx, dy), response = cv2.phaseCorrelate(reference, current, window)
    # A weak peak is no shift at all: noise, or a few objects moving over a still scene.
    return float(np.hypot(dx, dy)) if response > 0.2 else 0.0


def _dft_size_below(n: int) -> int:
    while n % 2 or cv2.getOptimalDFTSize(n) != n:
        n -= 1
    return n


def grow_over(boxes: np.ndarray, objects: np.ndarray, frame_wh: tuple[int, int]) -> np.ndarray:
    """``boxes`` plus every object box that overlaps one of them, with half its size around it.

    A change that covers part of a large face (a slow turn, a hand) must be detected on a crop
    that shows the whole face: the network finds no face in half of one.
    """
    if not len(boxes) or not len(objects):
        return boxes
    w, h = frame_wh
    overlap = (
        (objects[:, None, 0] < boxes[None, :, 2])
        & (objects[:, None, 2] > boxes[None, :, 0])
        & (objects[:, None, 1] < boxes[None, :, 3])
        & (objects[:, None, 3] > boxes[None, :, 1])
    ).any(axis=1)
    touched = objects[overlap]
    if not len(touched):
        return boxes
    return np.concatenate([boxes, around(touched, frame_wh)])


def around(objects: np.ndarray, frame_wh: tuple[int, int]) -> np.ndarray:
    """Each object box (n, 4) with half its size around it, clipped to the frame: a crop that
    shows the whole object and enough of its surroundings for a detector to find it again."""
    w, h = frame_wh
    objects = np.asarray(objects, np.float32).reshape(-1, 4)
    # At least the change context: half of a 20 px face is too little for CenterFace to see it.
    half = np.maximum((objects[:, 2:] - objects[:, :2]) / 2, CONTEXT_PX)
    grown = np.concatenate([objects[:, :2] - half, objects[:, 2:] + half], axis=1)
    return np.clip(grown, 0, [w, h, w, h]).astype(np.float32)


def covered_px(boxes: np.ndarray, frame_wh: tuple[int, int]) -> int:
    """Pixels of the frame under the union of ``boxes`` (source pixels): what a gated frame's
    restricted passes cost, relative to the whole frame's."""
    w, h = frame_wh
    if not len(boxes):
        return 0
    mask = np.zeros((h, w), bool)
    for x1, y1, x2, y2 in np.asarray(boxes, np.float32).reshape(-1, 4):
        mask[max(0, int(y1)) : max(0, int(np.ceil(y2))), max(0, int(x1)) : max(0, int(np.ceil(x2)))] = True
    return int(mask.sum())


def _areas(cells: np.ndarray, frame_wh: tuple[int, int]) -> np.ndarray:
    """Bounding boxes (source pixels) of the connected changed areas."""
    if not cells.any():
        return np.zeros((0, 4), np.float32)
    n, _, stats, _ = cv2.connectedComponentsWithStats(cells.astype(np.uint8), connectivity=8)
    w, h = frame_wh
    rows, cols = cells.shape
    boxes = []
    for x, y, bw, bh, _ in stats[1:n]:
        # The last cell of a row or column also owns the few pixels past the last whole block.
        x2 = w if x + bw >= cols else min(w, (x + bw) * BLOCK)
        y2 = h if y + bh >= rows else min(h, (y + bh) * BLOCK)
        boxes.append([x * BLOCK, y * BLOCK, x2, y2])
    return np.asarray(boxes, np.float32)


def merge_crops(boxes: np.ndarray, overhead_px: float = CROP_OVERHEAD_PX, most: int = MAX_CROPS) -> np.ndarray:
    """``boxes`` (n, 4), two at a time replaced by the box around both, cheapest pair first,
    while that costs no more than the two (pixels, plus ``overhead_px`` per crop) or while more
    than ``most`` remain.

    A merge only ever replaces two boxes by the box around both, so every pixel of every box stays
    inside a returned box. Compression grain and a few stray cells scattered over a still frame
    used to make "many small areas", which one crop around all of them replaced: the whole frame,
    on every gated frame until the next refresh (16 of a 150-frame fixed-camera clip's 19
    CenterFace calls on the whole 1080p frame). Separate small crops cost a small part of that to
    a fully convolutional model. More than MERGE_LIMIT boxes (rain, snow: the pairwise search
    would cost more than it saves) are still one box around them all.
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    if len(boxes) > MERGE_LIMIT:
        return _around(boxes).astype(np.float32)
    if len(boxes) < 2:
        return boxes.astype(np.float32)
    # extra[i, j]: what the box around i and j costs beyond the two (i < j; inf elsewhere). Kept
    # up to date row by row as pairs merge, not recomputed.
    extra = _joint_extra(boxes, boxes)
    extra[np.tril_indices(len(boxes))] = np.inf
    while len(boxes) > 1:
        i, j = np.unravel_index(int(np.argmin(extra)), extra.shape)
        if extra[i, j] > overhead_px and len(boxes) <= most:
            break
        merged = np.concatenate([np.minimum(boxes[i, :2], boxes[j, :2]), np.maximum(boxes[i, 2:], boxes[j, 2:])])
        keep = np.ones(len(boxes), bool)
        keep[[i, j]] = False
        boxes = np.concatenate([boxes[keep], merged[None]])
        column = _joint_extra(boxes[:-1], merged[None])  # the merged box is the last, so every pair has i < j
        extra = np.block([[extra[keep][:, keep], column], [np.full((1, len(boxes)), np.inf)]])
    return boxes.astype(np.float32)


def _around(boxes: np.ndarray) -> np.ndarray:
    """The one box (1, 4) around every row of ``boxes`` (n, 4), or none (0, 4)."""
    if not len(boxes):
        return boxes.reshape(0, 4)
    return np.concatenate([boxes[:, :2].min(axis=0), boxes[:, 2:].max(axis=0)])[None]


def _joint_extra(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)): the area of the box around a[i] and b[j] minus both their areas."""
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    lo = np.minimum(a[:, None, :2], b[None, :, :2])
    hi = np.maximum(a[:, None, 2:], b[None, :, 2:])
    return np.prod(hi - lo, axis=2) - area_a[:, None] - area_b[None, :]
