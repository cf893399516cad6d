"""Metrics for anonymization, as pure functions on arrays.

Definitions (docs/evaluate.md repeats them for operators):

* **size** of a box: ``sqrt(width * height)`` in pixels, so a 10x20 face has size 14.1. Buckets:
  ``<16``, ``16-32``, ``32-64``, ``64-128``, ``>=128``. The geometric mean treats tall faces and wide
  plates alike, where the shorter side would put almost every plate in the smallest bucket.
* **match**: greedy, most confident detection first; a detection matches the unmatched labelled box
  of its class with the highest IoU if that IoU is >= 0.5. An unmatched detection that overlaps an
  ignore box (IoU >= 0.5, or at least half of the detection inside it) is neutral. **recall** =
  matched labelled boxes / labelled boxes; **precision** = matched detections / (matched + other
  non-neutral detections), only over images whose labels are complete.
* **retained detail** of a box: input and output are cut to the box, converted to luma and resized
  so the box's shorter side is ``CANON_PX`` (32) pixels. Their identifying detail is what a DCT
  keeps above ``CUTOFF_CYCLES`` (4) cycles across that shorter side: features finer than a quarter
  of a face (eyes, nostrils, mouth corners) or of a plate's height (character strokes). A face
  reduced to 4 blocks across can hardly be told from another; one with 8 often still can. Retained =
  ``<d_in, d_out> / <d_in, d_in>`` over those coefficients, clipped to [0, 1]: the share of the
  input's identifying detail still present, in place, in the output. For faces only the ellipse
  inscribed in the box is judged: a face box's corners hold hair, collar and background (FDDB
  labels faces as ellipses for that reason); plates are judged on the whole box. A box is **hidden** when
  retained <= ``HIDDEN_MAX_RETAINED`` (0.2). A box with almost no such detail (RMS < 1 grey
  level: a face in deep shadow or out of focus) cannot be judged that way; it counts as hidden
  when at least half of its judged pixels changed by more than ``FLAT_CHANGE_TOLERANCE`` (2)
  grey levels, i.e. when the mask covered it.
* **changed** pixel: any channel differs by more than ``CHANGE_TOLERANCE`` (8) grey levels.
* **collateral**: share of the pixels outside every labelled and ignore box (each grown by a quarter
  of its width/height per side, at least 2 px: the masking margin is expected) that changed.
* **possibly unlabelled**: a detection scoring at least ``UNLABELLED_SCORE`` (0.5) that touches no
  labelled or ignore box of its class (IoU < 0.2 and less than a fifth of it inside each). On real
  sets these are mostly faces or plates the labellers left out; their masks count as collateral and
  as false positives, so a reviewer should look at them before trusting either figure.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from anonymizer.detections import box_iou

IOU_THRESHOLD = 0.5
SIZE_EDGES_PX = (16, 32, 64, 128)
SIZE_BUCKETS = ("<16", "16-32", "32-64", "64-128", ">=128")
CANON_PX = 32
CUTOFF_CYCLES = 4.0
HIDDEN_MAX_RETAINED = 0.2
FLAT_RMS = 1.0
FLAT_CHANGE_TOLERANCE = 2
CHANGE_TOLERANCE = 8
DILATE_FRACTION = 0.25
DILATE_MIN_PX = 2
UNLABELLED_SCORE = 0.5
UNLABELLED_OVERLAP = 0.2


def box_size_px(xyxy: np.ndarray) -> np.ndarray:
    """Return sqrt(width * height) per box of an (n, 4) xyxy array, float32 (n,)."""
    xyxy = np.asarray(xyxy, np.float32).reshape(-1, 4)
    wh = np.clip(xyxy[:, 2:] - xyxy[:, :2], 0, None)
    return np.sqrt(wh[:, 0] * wh[:, 1])


def size_bucket(size_px: np.ndarray) -> np.ndarray:
    """Return the index into SIZE_BUCKETS for each size, int64 (n,)."""
    return np.searchsorted(np.asarray(SIZE_EDGES_PX, np.float32), np.asarray(size_px, np.float32), side="right")


@dataclass(frozen=True)
class Match:
    """Outcome of matching one image's detections of one class against its labels.

    Attributes:
        gt_matched: bool (n,) per labelled box, True when a detection matched it.
        det_matched: bool (m,) per detection, True when it matched a labelled box.
        det_neutral: bool (m,) per detection, True when it only matched an ignore box.
    """

    gt_matched: np.ndarray
    det_matched: np.ndarray
    det_neutral: np.ndarray

    @property
    def false_positives(self) -> int:
        return int(np.sum(~self.det_matched & ~self.det_neutral))


def match_boxes(
    gt: np.ndarray,
    det: np.ndarray,
    confidence: np.ndarray | None = None,
    ignore: np.ndarray | None = None,
    *,
    iou_threshold: float = IOU_THRESHOLD,
) -> Match:
    """Match detections to labelled boxes of one class at IoU >= iou_threshold.

    Args:
        gt: float (n, 4) labelled boxes.
        det: float (m, 4) detections.
        confidence: (m,) scores; the most confident detection picks first. None: all equal.
        ignore: float (k, 4) regions where an unmatched detection is neutral.
        iou_threshold: minimum IoU for a match.

    Returns:
        A Match.
    """
    gt = np.asarray(gt, np.float32).reshape(-1, 4)
    det = np.asarray(det, np.float32).reshape(-1, 4)
    ignore = np.zeros((0, 4), np.float32) if ignore is None else np.asarray(ignore, np.float32).reshape(-1, 4)
    conf = np.ones(len(det), np.float32) if confidence is None else np.asarray(confidence, np.float32)
    gt_matched = np.zeros(len(gt), bool)
    det_matched = np.zeros(len(det), bool)
    det_neutral = np.zeros(len(det), bool)
    ious = box_iou(det, gt)
    for d in np.argsort(-conf, kind="stable"):
        if len(gt):
            candidates = np.where(gt_matched, -1.0, ious[d])
            g = int(np.argmax(candidates))
            if candidates[g] >= iou_threshold:
                gt_matched[g] = True
                det_matched[d] = True
                continue
        if len(ignore) and _overlaps_any(det[d], ignore, iou_threshold):
            det_neutral[d] = True
    return Match(gt_matched, det_matched, det_neutral)


def possibly_unlabelled(det: np.ndarray, confidence: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Which detections score >= UNLABELLED_SCORE and touch none of the known (labelled, ignore) boxes.

    Args:
        det: float (m, 4) detections of one class.
        confidence: (m,) their scores.
        known: float (k, 4) labelled and ignore boxes of that class.

    Returns:
        bool (m,).
    """
    det = np.asarray(det, np.float32).reshape(-1, 4)
    known = np.asarray(known, np.float32).reshape(-1, 4)
    out = np.asarray(confidence, np.float32).reshape(-1) >= UNLABELLED_SCORE
    if len(known):
        for i in np.flatnonzero(out):
            out[i] = not _overlaps_any(det[i], known, UNLABELLED_OVERLAP)
    return out


def _overlaps_any(box: np.ndarray, others: np.ndarray, threshold: float) -> bool:
    """Whether box has IoU >= threshold with one of others, or that share of itself inside one."""
    iou = box_iou(box[None], others)[0]
    tl = np.maximum(box[:2], others[:, :2])
    br = np.minimum(box[2:], others[:, 2:])
    inter = np.prod(np.clip(br - tl, 0, None), axis=1)
    area = max(float(np.prod(np.clip(box[2:] - box[:2], 0, None))), 1e-9)
    return bool(np.any((iou >= threshold) | (inter / area >= threshold)))


def _crop_bounds(box: np.ndarray, height: int, width: int) -> tuple[int, int, int, int] | None:
    x1 = int(np.clip(np.floor(box[0]), 0, width))
    y1 = int(np.clip(np.floor(box[1]), 0, height))
    x2 = int(np.clip(np.ceil(box[2]), 0, width))
    y2 = int(np.clip(np.ceil(box[3]), 0, height))
    if x2 - x1 < 1 or y2 - y1 < 1:
        return None
    return x1, y1, x2, y2


def _canonical_detail(crop: np.ndarray) -> np.ndarray:
    """Return a box's luma at canonical size, keeping only detail above CUTOFF_CYCLES across its shorter side."""
    gray = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY).astype(np.float32) if crop.ndim == 3 else crop.astype(np.float32)
    h, w = gray.shape
    scale = CANON_PX / min(h, w)
    # Even sizes for cv2.dct; the long side is capped so a very elongated box stays cheap.
    new_w = int(np.clip(2 * round(w * scale / 2), 2, 4 * CANON_PX))
    new_h = int(np.clip(2 * round(h * scale / 2), 2, 4 * CANON_PX))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    coeffs = cv2.dct(cv2.resize(gray, (new_w, new_h), interpolation=interp))
    # DCT index k along a side of n px is k / 2 cycles across it; in cycles per pixel, k / (2 n).
    # The DCT mirrors the crop at its borders, so the cut-off adds no edge of its own.
    fy = np.arange(new_h, dtype=np.float32)[:, None] / (2 * new_h)
    fx = np.arange(new_w, dtype=np.float32)[None, :] / (2 * new_w)
    coeffs[np.hypot(fy, fx) <= CUTOFF_CYCLES / CANON_PX] = 0
    return cv2.idct(coeffs)


def _ellipse_weights(h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return ((((xx + 0.5) / w - 0.5) ** 2 + ((yy + 0.5) / h - 0.5) ** 2) <= 0.25).astype(np.float32)


def changed_pixels(before: np.ndarray, after: np.ndarray, tolerance: int = CHANGE_TOLERANCE) -> np.ndarray:
    """Return bool (H, W): True where any channel differs by more than tolerance."""
    if before.shape != after.shape:
        raise ValueError(f"images must have the same shape, but got {before.shape} and {after.shape}")
    diff = np.abs(before.astype(np.int16) - after.astype(np.int16))
    return (diff.max(axis=2) if diff.ndim == 3 else diff) > tolerance


@dataclass(frozen=True)
class Hidden:
    """How well one labelled box was hidden.

    Attributes:
        retained: share of the input's identifying detail still present in the output, 0..1
            (NaN for a box without detail or outside the image).
        changed: share of the box's pixels that changed.
        hidden: the verdict (see the module docstring).
    """

    retained: float
    changed: float
    hidden: bool


def box_hidden(before: np.ndarray, after: np.ndarray, box: np.ndarray, *, ellipse: bool = False) -> Hidden:
    """Given the input and output images (H, W, 3) uint8 and one xyxy box, return a Hidden.

    Args:
        before, after: the input and the anonymized output, same shape.
        box: xyxy of the labelled object.
        ellipse: judge only the ellipse inscribed in the box (faces); False judges the whole box (plates).
    """
    bounds = _crop_bounds(np.asarray(box, np.float32), before.shape[0], before.shape[1])
    if bounds is None:
        return Hidden(float("nan"), 0.0, False)
    x1, y1, x2, y2 = bounds
    crop_in, crop_out = before[y1:y2, x1:x2], after[y1:y2, x1:x2]
    changed = float(changed_pixels(crop_in, crop_out).mean())
    d_in = _canonical_detail(crop_in)
    d_out = _canonical_detail(crop_out)
    weights = _ellipse_weights(*d_in.shape) if ellipse else np.ones_like(d_in)
    energy = float(np.sum(weights * d_in * d_in))
    if energy < FLAT_RMS**2 * float(np.sum(weights)):
        # Nothing identifiable to measure: ask only whether the mask covered the object.
        moved = changed_pixels(crop_in, crop_out, FLAT_CHANGE_TOLERANCE).astype(np.float32)
        judged = _ellipse_weights(*moved.shape) if ellipse else np.ones_like(moved)
        share = float(np.sum(moved * judged) / max(1.0, float(np.sum(judged))))
        return Hidden(float("nan"), changed, share >= 0.5)
    retained = float(np.clip(np.sum(weights * d_in * d_out) / energy, 0.0, 1.0))
    return Hidden(retained, changed, retained <= HIDDEN_MAX_RETAINED)


def masked_share(plain: np.ndarray, after: np.ndarray, box: np.ndarray) -> float:
    """Share of a box's pixels that a mask changed: the output against the same input re-encoded
    without masks. Against the input itself, a small object crossing fast "changes" by a tenth to
    a third of its pixels in the re-encode alone, so that a leak no mask came near looks partly
    masked."""
    bounds = _crop_bounds(np.asarray(box, np.float32), plain.shape[0], plain.shape[1])
    if bounds is None:
        return 0.0
    x1, y1, x2, y2 = bounds
    return float(changed_pixels(plain[y1:y2, x1:x2], after[y1:y2, x1:x2]).mean())


def dilate_boxes(xyxy: np.ndarray, fraction: float = DILATE_FRACTION, min_px: float = DILATE_MIN_PX) -> np.ndarray:
    """Grow each box by fraction of its width/height on each side (at least min_px)."""
    xyxy = np.asarray(xyxy, np.float32).reshape(-1, 4)
    wh = xyxy[:, 2:] - xyxy[:, :2]
    pad = np.maximum(wh * fraction, min_px)
    return np.concatenate([xyxy[:, :2] - pad, xyxy[:, 2:] + pad], axis=1)


def collateral_counts(before: np.ndarray, after: np.ndarray, protected: np.ndarray) -> tuple[int, int]:
    """Count changed pixels outside the protected boxes.

    Args:
        before, after: (H, W, 3) uint8 input and output.
        protected: float (n, 4) labelled and ignore boxes (not yet dilated).

    Returns:
        (changed pixels outside, pixels outside) of the dilated protected boxes.
    """
    h, w = before.shape[:2]
    outside = np.ones((h, w), bool)
    for box in dilate_boxes(protected):
        bounds = _crop_bounds(box, h, w)
        if bounds is not None:
            x1, y1, x2, y2 = bounds
            outside[y1:y2, x1:x2] = False
    changed = changed_pixels(before, after)
    return int(np.sum(changed & outside)), int(np.sum(outside))


def ratio(numerator: float, denominator: float) -> float | None:
    """Return numerator / denominator, or None when there is nothing to divide."""
    return None if denominator == 0 else float(numerator) / float(denominator)
