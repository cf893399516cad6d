"""Detector boxes are tighter than what identifies a person: pad them, then clip to the frame."""

from __future__ import annotations

import numpy as np

from anonymizer.config import ClassSpec
from anonymizer.detections import Detections

# An ellipse inscribed in a box padded by at least this fraction per side still covers every
# corner of the unpadded box: (1 / (1 + 2m))^2 * 2 <= 1  <=>  m >= (sqrt(2) - 1) / 2.
ELLIPSE_MIN_MARGIN = 0.21


def pad_and_clip(
    dets: Detections, specs: dict[int, ClassSpec], frame_wh: tuple[int, int], *, ellipse: bool = False, video: bool = False
) -> Detections:
    """Return detections whose boxes are grown by each class's margin and clipped to the frame.

    Args:
        dets: boxes in frame pixels.
        specs: class id -> ClassSpec: per side, ``margin`` times the box's width/height plus
            ``margin_px``, and never less than ``min_margin_px``.
        frame_wh: (width, height) of the frame.
        ellipse: when the mask shape is an ellipse, margins are raised so the ellipse still covers
            the whole detected box.
        video: use each class's ``video_margin`` where it sets one, never less than its ``margin``
            (a profile that widens ``margin`` for safety must not get a narrower mask in video).
    """
    if not len(dets):
        return dets
    xyxy = dets.xyxy.astype(np.float32).copy()
    wh = np.clip(xyxy[:, 2:] - xyxy[:, :2], 1, None)
    margin = np.zeros(len(dets), np.float32)
    fixed = np.zeros(len(dets), np.float32)
    floor = np.zeros(len(dets), np.float32)
    ellipse_floor = np.zeros(len(dets), np.float32)
    for cid, spec in specs.items():
        sel = dets.class_id == cid
        margin[sel] = max(spec.margin, spec.video_margin) if video and spec.video_margin is not None else spec.margin
        fixed[sel] = spec.margin_px
        floor[sel] = spec.min_margin_px
        ellipse_floor[sel] = ELLIPSE_MIN_MARGIN if ellipse and cid == 0 else 0.0
    # Localisation error has a part proportional to the object and a part of a few pixels (the
    # model's stride, tracker lag); a fraction alone over-pads large faces and under-pads small ones.
    pad = np.maximum(wh * margin[:, None] + fixed[:, None], floor[:, None])
    pad = np.maximum(pad, wh * ellipse_floor[:, None])
    xyxy[:, :2] -= pad
    xyxy[:, 2:] += pad
    w, h = frame_wh
    xyxy = np.clip(xyxy, 0, [w, h, w, h])
    keep = (xyxy[:, 2] - xyxy[:, 0] >= 1) & (xyxy[:, 3] - xyxy[:, 1] >= 1)
    return dets.with_xyxy(xyxy)[keep]
