"""Fixed-camera clips from labelled photos, where every object-frame's true box is known.

Most VMS exports come from cameras that never move, and the panned clips of ``videos`` never
show a still scene. A fixed clip is built from one labelled photo, the **background**, scaled to
cover the frame:

* each of its labelled objects either **stands still** (kept: its box is known in every frame) or
  is **painted out** (``cv2.inpaint`` over the box, so no face or plate is left unlabelled); its
  ``ignore`` boxes (faces too small to label) are always painted out, for the same reason;
* labelled objects **cut from other photos** (a labelled box with some context, the other labelled
  boxes in that crop carried along or painted out) **cross** the scene: they enter at a frame
  edge and leave at another, at the speeds cameras see (proportional to the object's size in the
  frame: a walking person covers 4-9 face heights a second, a cyclist or runner near the camera
  15-30, so a near cyclist crosses a 1080p frame in one or two seconds and a far pedestrian takes
  ten), some pausing on the way, in groups separated by empty stretches;
* every frame gets per-frame sensor noise and slow light changes (global and per channel), and
  the clip is H.264 with a keyframe every two seconds at a VMS-like quality;
* optionally, one short **camera motion** segment (a shake, or a pan to a new resting view), so
  that a product that gates detection on unchanged pixels must notice the camera moved;
* optionally (``crossers``), every crossing is a **fast small crosser** instead: a face or plate
  of 12-40 px crossing the frame in 0.7-2 s (a 1080p frame: 40-115 px a frame), entering at any
  edge and leaving at any other, in groups of up to four at once; with ``keep_prob`` 0 (an empty
  scene) or 1 (a busy one, every labelled object standing).

Clips are made per **half** of the labelled sets (``half_of``): the background and every crossing
photo of one clip come from the same half, so a rule tuned on the tune half's clips is confirmed on
clips nobody tuned on.

Crossing objects are pasted with integer offsets and a feathered border outside their boxes, so
their true boxes are exact in every frame. An object counts in a frame only while at least half of
it is inside the frame, it is at least ``videos.MIN_SIZE_PX`` large and at most ``OCCLUDED_MAX`` of
it is covered by a crossing pasted over it; otherwise it is neutral (protected from collateral,
never a leak). Scoring is ``videos.count_leaks`` unchanged.

Everything is decided up front by ``plan_fixed_clip`` from a seed; rendering is deterministic.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from anonymizer.detections import FACE
from anonymizer.evaluate import metrics
from anonymizer.evaluate.labels import half_of  # noqa: F401  (the one split; callers import it from here too)
from anonymizer.evaluate.runner import load_rgb
from anonymizer.evaluate.videos import MIN_SIZE_PX, MIN_VISIBLE, ClipResult, FrameTruth, anonymize_and_score, write_clip

MARGIN_FRACTION = 0.06  # scene beyond the resting view on each side: room for shake and pan
OCCLUDED_MAX = 0.1  # share of an object covered by a later crossing above which it is neutral
CONTEXT_FRACTION = 0.6  # context around a crossing's anchor box, per side, in box widths/heights
BODY_FRACTION = 1.0  # extra context below a face: shoulders and chest come with it
FEATHER_PX = 6  # blend ramp at a pasted crop's border, so its edge is not a hard rectangle
# Speeds in object sizes (sqrt(w*h) of the box in the frame) per second: a face is ~0.2 m and a
# pedestrian walks 1-1.8 m/s, a cyclist or runner 3-6 m/s; a plate is ~0.23 m, cars in a car park
# or a street at a gate drive 2-8 m/s.
WALK_SIZES_PER_S = (4.0, 9.0)
FAST_SIZES_PER_S = (15.0, 30.0)
VEHICLE_SIZES_PER_S = (8.0, 35.0)
# Fast small crossers (``crossers``): the objects a fixed camera sees and the benches lacked, a
# distant face or plate (sqrt(w*h) in the frame) crossing the whole frame's width in this long.
CROSSER_SIZE_PX = (12.0, 40.0)
CROSSER_CROSS_S = (0.7, 2.0)
CROSSER_GROUP = ((1, 2, 3, 4), (0.3, 0.3, 0.2, 0.2))  # how many cross at once, and how often
HALVES = ("tune", "confirm")


@dataclass(frozen=True)
class LabelledPhoto:
    """A photo and its labels, the material of fixed clips.

    Attributes:
        rgb: uint8 (H, W, 3).
        boxes: float32 (n, 4) xyxy of objects that must be hidden.
        is_face: bool (n,): the face rule of ``metrics.box_hidden`` (inscribed ellipse) per box.
        ignore: float32 (m, 4) xyxy of regions neither counted nor penalised (painted out here).
        name: where it came from, for reports.
    """

    rgb: np.ndarray
    boxes: np.ndarray
    is_face: np.ndarray
    ignore: np.ndarray
    name: str = ""

    @property
    def wh(self) -> tuple[int, int]:
        return self.rgb.shape[1], self.rgb.shape[0]


def photo_from_label(set_dir: Path, label: Any, limits: Any) -> LabelledPhoto:
    """Load one image of a labelled set (``labels.LabeledImage``) with the product's photo reader."""

    rgb = load_rgb(Path(set_dir) / label.image, label, limits)
    return LabelledPhoto(rgb, label.boxes, label.class_id == FACE, label.ignore, label.image)


@dataclass(frozen=True)
class Crossing:
    """A crop of another photo moving through the scene.

    Attributes:
        source: index into the ``others`` photos the plan was made with.
        crop_xyxy: integer crop of the source photo (anchor box plus context).
        carried: indices of the source's labelled boxes inside the crop; they move with it. The
            source's other boxes and ignore boxes touching the crop are painted out of it.
        scale: output pixels per source pixel.
        keyframes: (frame, x, y) of the crop's top-left corner in scene pixels; the position is
            linear between keyframes, and the crop exists only from the first to the last.
        kind: 'walk', 'fast' (cyclist, runner) or 'vehicle'.
    """

    source: int
    crop_xyxy: tuple[int, int, int, int]
    carried: tuple[int, ...]
    scale: float
    keyframes: tuple[tuple[float, float, float], ...]
    kind: str

    def position(self, frame: int) -> tuple[int, int] | None:
        """Return the integer top-left corner in scene pixels at ``frame``, or None when absent."""
        times = [k[0] for k in self.keyframes]
        if frame < times[0] or frame > times[-1]:
            return None
        x = float(np.interp(frame, times, [k[1] for k in self.keyframes]))
        y = float(np.interp(frame, times, [k[2] for k in self.keyframes]))
        return int(round(x)), int(round(y))


@dataclass(frozen=True)
class FixedClipPlan:
    """A fixed-camera clip, every decision made up front from a seed.

    Attributes:
        n_frames, size_wh, fps: the clip.
        margin_xy: the scene extends this far beyond the resting view on each side.
        bg_scale: output pixels per background pixel.
        bg_offset_xy: top-left of the scene in the scaled background.
        kept: per background box, True = stands still, False = painted out.
        crossings: objects crossing the scene, in paint order (later ones in front).
        window_offsets: per frame, (dx, dy) of the view from its resting place (camera motion).
        motion: 'none', 'shake' or 'pan'; motion_frames: [start, end) of the segment.
        light: (amplitude, period_s, phase, colour amplitude, colour period_s) of the slow light change.
        noise_sigma: sensor noise, grey levels.
        crf, gop_frames: H.264 quality and keyframe interval of the clip.
    """

    n_frames: int
    size_wh: tuple[int, int]
    fps: int
    margin_xy: tuple[int, int]
    bg_scale: float
    bg_offset_xy: tuple[int, int]
    kept: tuple[bool, ...]
    crossings: tuple[Crossing, ...]
    window_offsets: tuple[tuple[int, int], ...]
    motion: str
    motion_frames: tuple[int, int]
    light: tuple[float, float, float, float, float]
    noise_sigma: float
    crf: int
    gop_frames: int

    @property
    def scene_wh(self) -> tuple[int, int]:
        return self.size_wh[0] + 2 * self.margin_xy[0], self.size_wh[1] + 2 * self.margin_xy[1]


def _sprite(
    rng: np.random.Generator, others: Sequence[LabelledPhoto]
) -> tuple[int, tuple[int, int, int, int], tuple[int, ...], float, bool] | None:
    """A moving sprite for a crossing or a crosser: a random labelled object of a random photo,
    cropped with its context (and a body below a face). Returns the photo's index, the crop, the
    labelled boxes wholly inside it, the object's size (sqrt of its area) and whether it is a face;
    None when no photo has a labelled object."""
    candidates = [i for i, p in enumerate(others) if len(p.boxes)]
    if not candidates:
        return None
    source = int(candidates[rng.integers(len(candidates))])
    photo = others[source]
    anchor = int(rng.integers(len(photo.boxes)))
    box = photo.boxes[anchor].astype(np.float64)
    bw, bh = max(1.0, box[2] - box[0]), max(1.0, box[3] - box[1])
    face = bool(photo.is_face[anchor])
    pad_x, pad_y = CONTEXT_FRACTION * bw, CONTEXT_FRACTION * bh
    pw, ph = photo.wh
    crop = (
        int(max(0, math.floor(box[0] - pad_x))),
        int(max(0, math.floor(box[1] - pad_y))),
        int(min(pw, math.ceil(box[2] + pad_x))),
        int(min(ph, math.ceil(box[3] + pad_y + (BODY_FRACTION * bh if face else 0.0)))),
    )
    inside = _inside_share(photo.boxes, np.array(crop, np.float64))
    carried = tuple(int(i) for i in np.flatnonzero(inside >= 0.999))
    return source, crop, carried, math.sqrt(bw * bh), face


def _fit(crop: tuple[int, int, int, int], scale: float, plan_size: tuple[int, int]) -> tuple[float, tuple[int, int]]:
    """``scale`` for a crossing's ``crop``, lowered where the crop would fill more than 0.8 of the
    frame's width or height (a crop never fills the frame); return it and the scaled crop's size."""
    w, h = plan_size
    cw, ch = crop[2] - crop[0], crop[3] - crop[1]
    scale = min(scale, 0.8 * w / cw, 0.8 * h / ch)
    return scale, (max(1, int(round(cw * scale))), max(1, int(round(ch * scale))))


def _crossing(
    rng: np.random.Generator,
    others: Sequence[LabelledPhoto],
    start: float,
    plan_size: tuple[int, int],
    margin: tuple[int, int],
    fps: int,
) -> Crossing | None:
    """Plan one crossing starting at frame ``start``: crop, scale, speed, path (entering at an edge)."""
    sprite = _sprite(rng, others)
    if sprite is None:
        return None
    source, crop, carried, size_in, face = sprite
    w, h = plan_size
    # Keep the anchor's own size give or take, within what a camera of this size shows.
    size_out = float(np.clip(size_in * rng.uniform(0.8, 1.5), 8.0, 0.22 * h))
    scale, (sw, sh) = _fit(crop, size_out / size_in, plan_size)
    size_out = size_in * scale
    if face:
        kind = "fast" if rng.random() < 0.25 else "walk"
        speed_range = FAST_SIZES_PER_S if kind == "fast" else WALK_SIZES_PER_S
    else:
        kind, speed_range = "vehicle", VEHICLE_SIZES_PER_S
    speed = float(rng.uniform(*speed_range)) * size_out / fps  # pixels per frame
    mx, my = margin
    # Paths run from just outside one edge of the resting view to just outside the opposite one.
    if rng.random() < 0.8:
        y0 = float(rng.uniform(my, max(my, my + h - sh)))
        y1 = float(np.clip(y0 + rng.uniform(-0.1, 0.1) * h, my, max(my, my + h - sh)))
        p0, p1 = (mx - sw, y0), (mx + w, y1)
    else:
        x0 = float(rng.uniform(mx, max(mx, mx + w - sw)))
        x1 = float(np.clip(x0 + rng.uniform(-0.1, 0.1) * w, mx, max(mx, mx + w - sw)))
        p0, p1 = (x0, my + h), (x1, my - sh)
    if rng.random() < 0.5:
        p0, p1 = p1, p0
    travel = math.hypot(p1[0] - p0[0], p1[1] - p0[1]) / max(speed, 1e-6)
    keyframes: list[tuple[float, float, float]] = [(start, *p0)]
    if rng.random() < 0.25:  # walks in, stands a while, walks on
        f = float(rng.uniform(0.3, 0.7))
        stop = (p0[0] + f * (p1[0] - p0[0]), p0[1] + f * (p1[1] - p0[1]))
        pause = float(rng.uniform(0.5, 2.0)) * fps
        keyframes += [(start + f * travel, *stop), (start + f * travel + pause, *stop)]
        travel += pause
    keyframes.append((start + travel, *p1))
    return Crossing(source, crop, carried, float(scale), tuple(keyframes), kind)


def _crosser(
    rng: np.random.Generator,
    others: Sequence[LabelledPhoto],
    start: float,
    plan_size: tuple[int, int],
    margin: tuple[int, int],
    fps: int,
) -> Crossing | None:
    """Plan one fast small crosser starting at frame ``start``: 12-40 px, across the frame's width
    in 0.7-2 s, from a point just outside one edge (any of the four) to just outside another."""
    sprite = _sprite(rng, others)
    if sprite is None:
        return None
    source, crop, carried, size_in, _ = sprite
    w, h = plan_size
    scale, (sw, sh) = _fit(crop, float(rng.uniform(*CROSSER_SIZE_PX)) / size_in, plan_size)
    speed = w / (float(rng.uniform(*CROSSER_CROSS_S)) * fps)  # pixels per frame
    mx, my = margin
    entry = int(rng.integers(4))
    leave = int((entry + 1 + rng.integers(3)) % 4)  # any other edge: across, or round a corner

    def on_edge(edge: int) -> tuple[float, float]:
        # Just outside the view: left, right, top, bottom.
        if edge < 2:
            return (mx - sw if edge == 0 else mx + w), float(rng.uniform(my - sh / 2, my + h - sh / 2))
        return float(rng.uniform(mx - sw / 2, mx + w - sw / 2)), (my - sh if edge == 2 else my + h)

    p0, p1 = on_edge(entry), on_edge(leave)
    travel = max(1.0, math.hypot(p1[0] - p0[0], p1[1] - p0[1]) / speed)
    return Crossing(source, crop, carried, float(scale), ((start, *p0), (start + travel, *p1)), "crosser")


def _inside_share(boxes: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Share of each (n, 4) box's area inside one xyxy region, float64 (n,)."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    lo = np.maximum(boxes[:, :2], region[:2])
    hi = np.minimum(boxes[:, 2:], region[2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=1)
    area = np.prod(np.clip(boxes[:, 2:] - boxes[:, :2], 0, None), axis=1)
    return inter / np.maximum(area, 1e-9)


def plan_fixed_clip(
    background: LabelledPhoto,
    others: Sequence[LabelledPhoto],
    *,
    seed: int,
    n_frames: int = 120,
    size_wh: tuple[int, int] = (640, 360),
    fps: int = 24,
    keep_prob: float | None = None,
    motion_prob: float = 0.3,
    max_crossings: int = 40,
    crossers: bool = False,
) -> FixedClipPlan:
    """Plan a fixed-camera clip over ``background`` with objects from ``others`` crossing it.

    Args:
        keep_prob: chance that a background object stands still rather than being painted out;
            None draws it per clip between 0.3 and 0.8.
        motion_prob: chance of one camera shake or pan segment.
        crossers: every crossing is a fast small crosser (``_crosser``), in groups of up to four.
    """
    rng = np.random.default_rng(seed)
    w, h = size_wh
    margin = (int(round(MARGIN_FRACTION * w)), int(round(MARGIN_FRACTION * h)))
    scene_w, scene_h = w + 2 * margin[0], h + 2 * margin[1]
    bw, bh = background.wh
    bg_scale = max(scene_w / bw, scene_h / bh) * float(rng.uniform(1.0, 1.15))
    free_x, free_y = max(0, int(bw * bg_scale) - scene_w), max(0, int(bh * bg_scale) - scene_h)
    # Look where the labelled objects are (give or take), so that some of them stand in view.
    boxes = np.asarray(background.boxes, np.float64).reshape(-1, 4)
    centre = (boxes[:, :2] + boxes[:, 2:]).mean(axis=0) / 2 if len(boxes) else np.array([bw / 2, bh / 2])
    centre = centre * bg_scale + rng.normal(0, 0.15, size=2) * [scene_w, scene_h]
    bg_offset = (
        int(np.clip(round(centre[0] - scene_w / 2), 0, free_x)),
        int(np.clip(round(centre[1] - scene_h / 2), 0, free_y)),
    )
    p_keep = float(rng.uniform(0.3, 0.8)) if keep_prob is None else float(keep_prob)
    kept = tuple(bool(v) for v in rng.random(len(background.boxes)) < p_keep)

    crossings: list[Crossing] = []
    t = float(rng.uniform(0, min(1.0 * fps, n_frames / 4)))  # the first group comes soon
    while t < n_frames and len(crossings) < max_crossings and any(len(p.boxes) for p in others):
        # A group of one to three objects, then an empty stretch once the last of them has left.
        if crossers:
            sizes, odds = CROSSER_GROUP
            group = [
                _crosser(rng, others, t + float(rng.uniform(0, 0.5)) * fps, size_wh, margin, fps)
                for _ in range(int(rng.choice(sizes, p=odds)))
            ]
        else:
            group = [
                _crossing(rng, others, t + float(rng.uniform(0, 0.5)) * fps, size_wh, margin, fps)
                for _ in range(int(rng.choice([1, 2, 3], p=[0.6, 0.3, 0.1])))
            ]
        crossings += [c for c in group if c is not None]
        # Crossers come in quicker succession: a busy street seen from afar.
        gap = (0.2, 1.0) if crossers else (0.5, 2.0)
        t = max(c.keyframes[-1][0] for c in group if c is not None) + float(rng.uniform(*gap)) * fps

    offsets = np.zeros((n_frames, 2), np.int64)
    motion, motion_frames = "none", (0, 0)
    if rng.random() < motion_prob and n_frames >= 4:
        start = int(rng.integers(int(0.2 * n_frames), max(int(0.2 * n_frames) + 1, int(0.6 * n_frames))))
        end = min(n_frames, start + max(2, int(rng.uniform(0.5, 1.5) * fps)))
        motion_frames = (start, end)
        if rng.random() < 0.5:
            motion = "shake"
            amp = rng.uniform(0.01, 0.03) * w
            jitter = rng.normal(0, amp, size=(end - start, 2))
            offsets[start:end] = np.round(np.clip(jitter, -np.array(margin), np.array(margin)))
        else:
            motion = "pan"  # moves to a new resting view and stays there
            target = np.array([rng.uniform(-1, 1) * margin[0], rng.uniform(-0.5, 0.5) * margin[1]])
            ramp = np.linspace(0, 1, end - start)[:, None]
            offsets[start:end] = np.round(ramp * target)
            offsets[end:] = np.round(target)
    light = (
        float(rng.uniform(0.03, 0.12)),
        float(rng.uniform(4, 15)),
        float(rng.uniform(0, 2 * math.pi)),
        float(rng.uniform(0, 0.03)),
        float(rng.uniform(4, 15)),
    )
    return FixedClipPlan(
        n_frames=n_frames,
        size_wh=size_wh,
        fps=fps,
        margin_xy=margin,
        bg_scale=float(bg_scale),
        bg_offset_xy=bg_offset,
        kept=kept,
        crossings=tuple(crossings),
        window_offsets=tuple((int(dx), int(dy)) for dx, dy in offsets),
        motion=motion,
        motion_frames=motion_frames,
        light=light,
        noise_sigma=float(rng.uniform(1.5, 5.0)),
        crf=int(rng.integers(18, 26)),
        gop_frames=2 * fps,
    )


def _scaled(rgb: np.ndarray, sx: float, sy: float) -> tuple[np.ndarray, float, float]:
    """Resize by (sx, sy); return the image and the exact per-axis scales of the rounded size."""
    h, w = rgb.shape[:2]
    nw, nh = max(1, int(round(w * sx))), max(1, int(round(h * sy)))
    interp = cv2.INTER_AREA if nw < w else cv2.INTER_LINEAR
    return cv2.resize(rgb, (nw, nh), interpolation=interp), nw / w, nh / h


def _paint_out(rgb: np.ndarray, remove: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Inpaint the (grown) ``remove`` boxes of ``rgb``, never touching the ``keep`` boxes."""
    if not len(remove):
        return rgb
    h, w = rgb.shape[:2]
    mask = np.zeros((h, w), np.uint8)
    for x1, y1, x2, y2 in metrics.dilate_boxes(remove, 0.15, 2):
        mask[max(0, int(y1)) : max(0, int(math.ceil(y2))), max(0, int(x1)) : max(0, int(math.ceil(x2)))] = 255
    for x1, y1, x2, y2 in np.asarray(keep, np.float64).reshape(-1, 4):
        mask[max(0, int(y1)) : max(0, int(math.ceil(y2))), max(0, int(x1)) : max(0, int(math.ceil(x2)))] = 0
    if not mask.any():
        return rgb
    return cv2.inpaint(np.ascontiguousarray(rgb), mask, 5, cv2.INPAINT_TELEA)


@dataclass(frozen=True)
class _Sprite:
    rgb: np.ndarray  # uint8 (h, w, 3)
    alpha: np.ndarray  # float32 (h, w, 1), 1 inside carried boxes
    boxes: np.ndarray  # float64 (k, 4) carried boxes in sprite pixels
    ids: np.ndarray  # int (k,) object ids


class FixedClipRenderer:
    """Render the frames and truths of a planned fixed clip.

    Object ids: the standing background objects first (in box order), then each crossing's
    carried boxes; ``is_face`` and ``roles`` ('standing', or the crossing's kind) are per id.
    """

    def __init__(self, background: LabelledPhoto, others: Sequence[LabelledPhoto], plan: FixedClipPlan) -> None:
        self.plan = plan
        scene_w, scene_h = plan.scene_wh
        scaled, sx, sy = _scaled(background.rgb, plan.bg_scale, plan.bg_scale)
        ox, oy = plan.bg_offset_xy
        scene = scaled[oy : oy + scene_h, ox : ox + scene_w]
        if scene.shape[:2] != (scene_h, scene_w):  # rounding left the scaled photo a pixel short
            short_y, short_x = scene_h - scene.shape[0], scene_w - scene.shape[1]
            scene = cv2.copyMakeBorder(scene, 0, short_y, 0, short_x, cv2.BORDER_REPLICATE)
        to_scene = np.array([sx, sy, sx, sy]) * 1.0
        boxes = np.asarray(background.boxes, np.float64).reshape(-1, 4) * to_scene - [ox, oy, ox, oy]
        ignore = np.asarray(background.ignore, np.float64).reshape(-1, 4) * to_scene - [ox, oy, ox, oy]
        kept = np.array(plan.kept, bool).reshape(-1)
        self.scene = _paint_out(scene, np.concatenate([boxes[~kept], ignore]), boxes[kept])
        self.standing = boxes[kept]
        is_face = [bool(v) for v in np.asarray(background.is_face)[kept]]
        roles = ["standing"] * len(self.standing)
        next_id = len(self.standing)
        self.sprites: list[_Sprite] = []
        for c in plan.crossings:
            photo = others[c.source]
            x1, y1, x2, y2 = c.crop_xyxy
            region = np.array(c.crop_xyxy, np.float64)
            carried = np.zeros(len(photo.boxes), bool)
            carried[list(c.carried)] = True
            touching = _inside_share(photo.boxes, region) > 0
            crop_boxes = np.asarray(photo.boxes, np.float64).reshape(-1, 4) - [x1, y1, x1, y1]
            crop_ignore = np.asarray(photo.ignore, np.float64).reshape(-1, 4)
            crop_ignore = crop_ignore[_inside_share(crop_ignore, region) > 0] - [x1, y1, x1, y1]
            remove = np.concatenate([crop_boxes[touching & ~carried], crop_ignore])
            crop = _paint_out(photo.rgb[y1:y2, x1:x2], remove, crop_boxes[carried])
            rgb, ssx, ssy = _scaled(crop, c.scale, c.scale)
            sprite_boxes = crop_boxes[carried] * [ssx, ssy, ssx, ssy]
            ids = np.arange(next_id, next_id + len(sprite_boxes))
            self.sprites.append(_Sprite(rgb, _feather(rgb.shape[:2], sprite_boxes), sprite_boxes, ids))
            next_id += len(sprite_boxes)
            is_face += [bool(v) for v in np.asarray(photo.is_face)[carried]]
            roles += [c.kind] * int(carried.sum())
        self.is_face = np.array(is_face, bool)
        self.roles = tuple(roles)

    def window_origin(self, index: int) -> tuple[int, int]:
        """Top-left of the view in scene pixels at frame ``index``."""
        dx, dy = self.plan.window_offsets[index]
        return self.plan.margin_xy[0] + dx, self.plan.margin_xy[1] + dy

    def scene_frame(self, index: int) -> tuple[np.ndarray, FrameTruth]:
        """Return frame ``index`` before light, noise and compression (uint8 (H, W, 3)) and its truth."""
        w, h = self.plan.size_wh
        wx, wy = self.window_origin(index)
        frame = self.scene[wy : wy + h, wx : wx + w].copy()
        layers: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (boxes, ids, rect) in frame px
        if len(self.standing):
            layers.append((self.standing - [wx, wy, wx, wy], np.arange(len(self.standing)), np.zeros(4)))
        for crossing, sprite in zip(self.plan.crossings, self.sprites):
            at = crossing.position(index)
            if at is None:
                continue
            x, y = at[0] - wx, at[1] - wy
            sh, sw = sprite.rgb.shape[:2]
            _paste(frame, sprite, x, y)
            rect = np.array([x, y, x + sw, y + sh], np.float64)
            layers.append((sprite.boxes + [x, y, x, y], sprite.ids, rect))
        boxes, ids, occluded = [], [], []
        for k, (layer_boxes, layer_ids, _) in enumerate(layers):
            cover = np.zeros(len(layer_boxes))
            for _, _, rect in layers[k + 1 :]:  # every crossing pasted after this layer
                cover += _inside_share(layer_boxes, rect)
            boxes.append(layer_boxes)
            ids.append(layer_ids)
            occluded.append(np.minimum(cover, 1.0))
        if not boxes:
            return frame, FrameTruth(np.zeros((0, 4), np.float32), np.zeros(0, np.int64), np.zeros((0, 4), np.float32))
        mapped, ids_all, occ = np.concatenate(boxes), np.concatenate(ids), np.concatenate(occluded)
        clipped = np.clip(mapped, 0, [w, h, w, h])
        visible = _inside_share(mapped, np.array([0, 0, w, h], np.float64))
        counted = (visible >= MIN_VISIBLE) & (metrics.box_size_px(mapped) >= MIN_SIZE_PX) & (occ <= OCCLUDED_MAX)
        neutral = clipped[~counted & (visible > 0)].astype(np.float32)
        truth = FrameTruth(clipped[counted].astype(np.float32), ids_all[counted], neutral)
        return frame, truth

    def frames(self, *, seed: int) -> Iterator[tuple[np.ndarray, FrameTruth]]:
        """Yield every frame with slow light changes and sensor noise applied, and its truth."""
        rng = np.random.default_rng(seed)
        amp, period, phase, colour_amp, colour_period = self.plan.light
        colour_phase = rng.uniform(0, 2 * math.pi, size=3)
        for index in range(self.plan.n_frames):
            frame, truth = self.scene_frame(index)
            t = index / self.plan.fps
            gain = 1.0 + amp * math.sin(2 * math.pi * t / period + phase)
            channel = 1.0 + colour_amp * np.sin(2 * math.pi * t / colour_period + colour_phase)
            noise = rng.standard_normal(frame.shape, dtype=np.float32) * self.plan.noise_sigma
            out = frame.astype(np.float32) * (gain * channel).astype(np.float32) + noise
            yield np.clip(out, 0, 255).astype(np.uint8), truth


def _feather(shape_hw: tuple[int, int], boxes: np.ndarray) -> np.ndarray:
    """Alpha (h, w, 1) ramping from 0 at the crop's border to 1 inside; always 1 on the carried boxes."""
    h, w = shape_hw
    ramp = max(1.0, min(FEATHER_PX, 0.1 * min(h, w)))
    xs = np.minimum(np.arange(w) + 0.5, w - np.arange(w) - 0.5) / ramp
    ys = np.minimum(np.arange(h) + 0.5, h - np.arange(h) - 0.5) / ramp
    alpha = np.clip(np.minimum(ys[:, None], xs[None, :]), 0, 1).astype(np.float32)
    for x1, y1, x2, y2 in boxes:
        alpha[max(0, int(y1)) : int(math.ceil(y2)), max(0, int(x1)) : int(math.ceil(x2))] = 1.0
    return alpha[:, :, None]


def _paste(frame: np.ndarray, sprite: _Sprite, x: int, y: int) -> None:
    """Blend ``sprite`` into ``frame`` in place with its top-left corner at (x, y), clipped to the frame."""
    fh, fw = frame.shape[:2]
    sh, sw = sprite.rgb.shape[:2]
    x0, y0, x1, y1 = max(0, x), max(0, y), min(fw, x + sw), min(fh, y + sh)
    if x0 >= x1 or y0 >= y1:
        return
    src = sprite.rgb[y0 - y : y1 - y, x0 - x : x1 - x].astype(np.float32)
    a = sprite.alpha[y0 - y : y1 - y, x0 - x : x1 - x]
    dst = frame[y0:y1, x0:x1].astype(np.float32)
    frame[y0:y1, x0:x1] = np.round(a * src + (1 - a) * dst).astype(np.uint8)


@dataclass(frozen=True)
class FixedClip:
    """What ``synthesize_fixed`` wrote: the truth of every frame, and per object its rule and role."""

    truths: list[FrameTruth]
    is_face: np.ndarray
    roles: tuple[str, ...]


def synthesize_fixed(
    background: LabelledPhoto, others: Sequence[LabelledPhoto], plan: FixedClipPlan, path: Path, *, seed: int
) -> FixedClip:
    """Render and encode a planned fixed clip (frame by frame) and return its truth."""
    renderer = FixedClipRenderer(background, others, plan)
    truths: list[FrameTruth] = []

    def frames() -> Iterator[np.ndarray]:
        for frame, truth in renderer.frames(seed=seed):
            truths.append(truth)
            yield frame

    write_clip(frames(), path, plan.fps, crf=plan.crf, gop_frames=plan.gop_frames)
    return FixedClip(truths, renderer.is_face, renderer.roles)


def evaluate_fixed_clip(
    engine: Any,
    name: str,
    background: LabelledPhoto,
    others: Sequence[LabelledPhoto],
    plan: FixedClipPlan,
    workdir: Path,
    *,
    seed: int,
) -> ClipResult:
    """Synthesize one fixed clip, anonymize it with ``engine.process`` and count leaks as for panned clips.

    Each leak also names the object's role ('standing', 'walk', 'fast', 'vehicle', 'crosser') and
    its distance to the nearest frame edge: walkers leaking as they enter are the case to watch.
    """
    return evaluate_fixed_clip_with({"": engine}, name, background, others, plan, workdir, seed=seed)[""]


def evaluate_fixed_clip_with(
    engines: dict[str, Any],
    name: str,
    background: LabelledPhoto,
    others: Sequence[LabelledPhoto],
    plan: FixedClipPlan,
    workdir: Path,
    *,
    seed: int,
) -> dict[str, ClipResult]:
    """``evaluate_fixed_clip`` for several engines on the one clip (synthesized once), by name:
    the default against a reference on exactly the same frames."""
    src = workdir / f"{name}.mp4"
    clip = synthesize_fixed(background, others, plan, src, seed=seed)
    w, h = plan.size_wh
    by_role: dict[str, int] = {}
    for truth in clip.truths:
        for oid in truth.object_ids:
            by_role[clip.roles[int(oid)]] = by_role.get(clip.roles[int(oid)], 0) + 1
    # Each object's true box per frame: a leak also reports how fast its object moved there.
    where: dict[tuple[int, int], np.ndarray] = {}
    for index, truth in enumerate(clip.truths):
        for box, oid in zip(truth.boxes, truth.object_ids):
            where[(index, int(oid))] = box
    out = {}
    for tag, engine in engines.items():
        result = anonymize_and_score(engine, name, src, clip.truths, workdir, is_face=clip.is_face, tag=tag)
        for leak in result.leaked:
            x1, y1, x2, y2 = leak["box"]
            leak["role"] = clip.roles[leak["object"]]
            leak["edge_px"] = round(float(min(x1, y1, w - x2, h - y2)), 1)
            leak["velocity_px"] = _true_velocity(where, leak["frame"], leak["object"])
        result.object_frames_by_role = dict(by_role)
        out[tag] = result
    return out


def _true_velocity(where: dict[tuple[int, int], np.ndarray], frame: int, oid: int) -> list[float] | None:
    """An object's true centre motion (px a frame) around ``frame``, from its boxes in the frames
    before and after (either alone at a clip's or a crossing's end); None if seen in neither."""
    before, after = where.get((frame - 1, oid)), where.get((frame + 1, oid))
    here = where.get((frame, oid))
    a, b, steps = (before, after, 2) if before is not None and after is not None else (
        (before, here, 1) if before is not None else (here, after, 1)
    )
    if a is None or b is None:
        return None
    moved = ((b[:2] + b[2:]) - (a[:2] + a[2:])) / 2 / steps
    return [round(float(v), 1) for v in moved]
