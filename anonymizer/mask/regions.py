"""Where masks go: detector boxes padded and clipped to the frame, plus the operator's manual
regions and exclusions (what a sidecar file lists; see docs/review.md)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from anonymizer.config import ClassSpec, MaskSpec
from anonymizer.detections import Detections
from anonymizer.errors import ConfigError, MediaError, config_error_keys
from anonymizer.mask.maskers import Masker

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


# --------------------------------------------------------------------------- manual masks
#
# What an operator adds by hand (anonymizer.review.sidecar reads it from a sidecar file): regions
# masked in addition to every detection, and exclusions that remove a detection lying wholly
# inside them. Coordinates are source pixels (photos upright, video frames as stored); times are
# frame indices or seconds from the first frame.


class ManualMasksError(ConfigError, MediaError):
    """A sidecar is invalid, or does not fit its media (a region outside the frame, a range past
    the end). A ConfigError for the command line, a MediaError for the daemon (the job is
    quarantined with the reason, never run without the masks the operator asked for)."""

    def without_values(self) -> str:
        """What a log line, the journal and the audit may say of it: what is wrong and at which
        keys, never a value. A sidecar's values are where people are in the picture, and a YAML
        error quotes the offending line; the operator sees the whole message at the command line
        (``anonymizer review``), where the sidecar is theirs to read anyway."""
        text = str(self)
        if "arrived different" in text:  # names no value: the coordinator's and worker's copies differ
            return text
        if "not valid YAML" in text:
            what = "a sidecar is not valid YAML"
        elif text.startswith("manual masks do not fit the media"):
            what = "manual masks do not fit the media"
        else:
            what = "sidecar masks are invalid"
        keys = config_error_keys(self)
        return f"{what} at {', '.join(keys)}" if keys else what


@dataclass(frozen=True)
class Bound:
    """One end of a time range: a frame index (``unit='frame'``) or seconds (``unit='s'``)."""

    unit: str
    value: float

    def at_or_before(self, index: int, time_s: float | None) -> bool:
        """True if this bound lies at or before the frame (index, time)."""
        if self.unit == "frame" or time_s is None:
            return self.value <= index
        return self.value <= time_s + TIME_EPS_S

    def at_or_after(self, index: int, time_s: float | None) -> bool:
        if self.unit == "frame" or time_s is None:
            return self.value >= index
        return self.value >= time_s - TIME_EPS_S


# Frame times are pts * time_base: a range written to the millisecond must still hold the frame
# a player shows at that millisecond.
TIME_EPS_S = 0.0005


@dataclass(frozen=True)
class Span:
    """An inclusive range of frames; an open end (None) is the clip's start or end."""

    start: Bound | None = None
    end: Bound | None = None

    def contains(self, index: int, time_s: float | None) -> bool:
        return (self.start is None or self.start.at_or_before(index, time_s)) and (
            self.end is None or self.end.at_or_after(index, time_s)
        )

    @property
    def timed(self) -> bool:
        return self.start is not None or self.end is not None


@dataclass(frozen=True)
class KeyBox:
    """A moving region's box at one moment (``at`` in the unit of ``Bound``)."""

    at: Bound
    box: tuple[float, float, float, float]


@dataclass(frozen=True)
class ManualRegion:
    """A region to mask: a box, a polygon, or a box moving between key boxes.

    Attributes:
        key: where it was written (``'<file>: regions[2]'``), for error messages.
        points: polygon vertices (k, 2) in source pixels for a still region; empty when moving.
        keys: key boxes of a moving region (at least two, in time order); its span is theirs.
        method: 'fill', 'blur' or 'pixelate'.
    """

    key: str
    span: Span = Span()
    points: tuple[tuple[float, float], ...] = ()
    keys: tuple[KeyBox, ...] = ()
    method: str = "fill"

    def points_at(self, index: int, time_s: float | None) -> np.ndarray | None:
        """The region's polygon (k, 2) float32 on this frame, or None when it is not active."""
        if not self.keys:
            return np.asarray(self.points, np.float32) if self.span.contains(index, time_s) else None
        first, last = self.keys[0].at, self.keys[-1].at
        if not (first.at_or_before(index, time_s) and last.at_or_after(index, time_s)):
            return None
        now = float(index) if first.unit == "frame" or time_s is None else time_s
        box = np.asarray(self.keys[-1].box, np.float32)
        for a, b in zip(self.keys, self.keys[1:]):
            if b.at.at_or_after(index, time_s):
                # Linear between the two keys around this frame: what a person drawing key boxes
                # in a player expects; a fast object needs closer keys, not a cleverer curve.
                span = max(b.at.value - a.at.value, 1e-9)
                t = min(max((now - a.at.value) / span, 0.0), 1.0)
                box = (1 - t) * np.asarray(a.box, np.float32) + t * np.asarray(b.box, np.float32)
                break
        return box_points(box)

    def extent(self) -> np.ndarray:
        """Every vertex the region can take, (k, 2): for checking it against the frame."""
        if self.keys:
            return np.concatenate([box_points(np.asarray(k.box, np.float32)) for k in self.keys])
        return np.asarray(self.points, np.float32).reshape(-1, 2)

    def bounds(self) -> list[Bound]:
        if self.keys:
            return [k.at for k in self.keys]
        return [b for b in (self.span.start, self.span.end) if b is not None]


@dataclass(frozen=True)
class Exclusion:
    """Detections of ``class_ids`` lying wholly inside ``box`` on the span's frames are not masked."""

    key: str
    box: tuple[float, float, float, float]
    span: Span = Span()
    class_ids: tuple[int, ...] = (0, 1)


@dataclass(frozen=True)
class ManualMasks:
    """Everything a job's sidecar files say, validated; ``sha256`` of each file read, in order.

    ``documents`` keeps each file's (label, text): a remote worker gets the masks by content and
    validates them again (anonymizer.scaleout), as it gets the profile.
    """

    regions: tuple[ManualRegion, ...] = ()
    exclusions: tuple[Exclusion, ...] = ()
    sha256: tuple[str, ...] = ()
    documents: tuple[tuple[str, str], ...] = field(default=(), compare=False)

    def __add__(self, other: ManualMasks) -> ManualMasks:
        return ManualMasks(
            self.regions + other.regions, self.exclusions + other.exclusions,
            self.sha256 + other.sha256, self.documents + other.documents,
        )

    def __bool__(self) -> bool:
        return bool(self.regions or self.exclusions)

    def fit_errors(self, width: int, height: int, *, photo: bool, frames: int | None, duration_s: float | None) -> list[str]:
        """Every way these masks do not fit the media (unknown ``frames``/``duration_s``: not checked).

        A region reaching outside the frame or a range ending after the clip is a mistake in the
        sidecar (the wrong file, or coordinates of another resolution), not something to clip
        away silently: what the operator meant to hide may be elsewhere.
        """
        errors = []
        for item in (*self.regions, *self.exclusions):
            pts = item.extent() if isinstance(item, ManualRegion) else box_points(np.asarray(item.box, np.float32))
            if len(pts) and (pts.min() < 0 or pts[:, 0].max() > width or pts[:, 1].max() > height):
                errors.append(f"{item.key}: reaches outside the {width}x{height} frame")
            bounds = item.bounds() if isinstance(item, ManualRegion) else [b for b in (item.span.start, item.span.end) if b]
            if photo and bounds:
                errors.append(f"{item.key}: a photo has no time range (remove start/end/keys)")
                continue
            for b in bounds:
                if b.unit == "frame" and frames is not None and b.value > frames - 1:
                    errors.append(f"{item.key}: frame {int(b.value)} is past the last frame ({frames - 1})")
                if b.unit == "s" and duration_s is not None and b.value > duration_s + TIME_EPS_S:
                    errors.append(f"{item.key}: {b.value:g} s is past the end of the clip ({duration_s:.3f} s)")
        return errors

    def check_fit(self, width: int, height: int, *, photo: bool, frames: int | None = None, duration_s: float | None = None) -> None:
        errors = self.fit_errors(width, height, photo=photo, frames=frames, duration_s=duration_s)
        if errors:
            raise ManualMasksError("manual masks do not fit the media:\n" + "\n".join(errors))

    def shapes_at(self, index: int, time_s: float | None) -> list[tuple[np.ndarray, str]]:
        """The (polygon (k, 2), method) of every region active on this frame."""
        out = []
        for region in self.regions:
            pts = region.points_at(index, time_s)
            if pts is not None:
                out.append((pts, region.method))
        return out

    def exclude(self, dets: Detections, index: int, time_s: float | None) -> tuple[Detections, np.ndarray]:
        """Split ``dets`` into (kept, bool mask (n,) of the excluded ones) for this frame.

        Only a box lying wholly inside an exclusion's box is excluded: one that crosses its edge
        may be a real face next to the poster, and a partial exclusion would leave part of a face
        bare.
        """
        excluded = np.zeros(len(dets), bool)
        if not len(dets):
            return dets, excluded
        for ex in self.exclusions:
            if not ex.span.contains(index, time_s):
                continue
            x1, y1, x2, y2 = ex.box
            b = dets.xyxy
            inside = (b[:, 0] >= x1) & (b[:, 1] >= y1) & (b[:, 2] <= x2) & (b[:, 3] <= y2)
            excluded |= inside & np.isin(dets.class_id, ex.class_ids)
        return dets[~excluded], excluded


def box_points(box: np.ndarray) -> np.ndarray:
    """The four corners (4, 2) of an xyxy box."""
    x1, y1, x2, y2 = (float(v) for v in box)
    return np.asarray([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], np.float32)


def paint_shapes(image: np.ndarray, shapes: list[tuple[np.ndarray, str]], spec: MaskSpec) -> np.ndarray:
    """Mask each (polygon, method) in ``image`` (H, W, 3 uint8, modified in place); return it.

    The masker runs on the polygon's bounding box; only the pixels inside the polygon (edges
    included) take the masked values.
    """

    h, w = image.shape[:2]
    for pts, method in shapes:
        x1, y1 = (int(np.floor(v)) for v in pts.min(axis=0))
        x2, y2 = (int(np.ceil(v)) for v in pts.max(axis=0))
        x1, y1, x2, y2 = max(0, x1), max(0, y1), min(w, x2), min(h, y2)
        if x2 - x1 < 1 or y2 - y1 < 1:
            continue
        masker = Masker(replace(spec, method=method, shape="box"))
        roi = image[y1:y2, x1:x2]
        masked = masker.apply(roi.copy(), Detections(np.asarray([[0, 0, x2 - x1, y2 - y1]], np.float32), [1.0], [1]))
        inside = np.zeros(roi.shape[:2], np.uint8)
        local = np.round(pts - [x1, y1]).astype(np.int32)
        cv2.fillPoly(inside, [local], 1)
        if len(pts) == 4 and _is_axis_box(pts):
            inside[:] = 1  # a box covers its whole bounding box, the rounded-out edges included
        roi[inside.astype(bool)] = masked[inside.astype(bool)]
    return image


def _is_axis_box(pts: np.ndarray) -> bool:
    xs, ys = np.unique(pts[:, 0]), np.unique(pts[:, 1])
    return len(xs) <= 2 and len(ys) <= 2
