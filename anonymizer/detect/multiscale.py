"""Multi-scale, tiled and flipped inference around one raw detector.

Small objects are the leak: a 12 px face in a crowd vanishes when a 1080p frame is squeezed into a
640 px network input. Each configured scale resizes the whole frame; a scaled frame larger than
``tile_size`` is cut into overlapping tiles so nothing is shrunk further; the results of all passes
are merged with NMS in source-pixel coordinates.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import cv2
import numpy as np

from anonymizer.config import ClassSpec
from anonymizer.detect.base import RawDetector
from anonymizer.detections import Detections, nms

PassProgress = Callable[[int, int], None]


class Pass(NamedTuple):
    """One inference: the image scaled by ``scale``, cropped to (x0, y0, x1, y1) in scaled pixels,
    optionally mirrored."""

    scale: float
    x0: int
    y0: int
    x1: int
    y1: int
    flipped: bool = False


def tile_starts(length: int, tile: int, overlap: float) -> list[int]:
    """Given a side length, return tile start offsets so tiles of ``tile`` px cover it with overlap."""
    if length <= tile:
        return [0]
    stride = tile * (1.0 - overlap)
    count = math.ceil((length - tile) / stride) + 1
    step = (length - tile) / (count - 1)
    return [int(round(i * step)) for i in range(count)]


def tile_spans(length: int, tile: int, overlap: float, *, fit: bool = False, slack: int = 0) -> list[tuple[int, int]]:
    """(start, end) of the tiles that cover ``length``: as many as ``tile_starts`` lays, spread evenly.

    ``fit``: the tiles shrink to the smallest side (a multiple of 32, plus ``slack``, at most
    ``tile``) at which neighbours still share ``overlap * tile`` px, the overlap the fixed size
    guarantees at least. A 3072 px side takes two tiles either way: 2048 px ones share 1,024 px,
    fitted 1,760 px ones 448, and a 3x crowd photo's passes feed the network about a quarter fewer
    pixels (docs/benchmarks.md, "Photos: where the time goes"). Off, the tiles are ``tile`` px.
    """
    starts = tile_starts(length, tile, overlap)
    if len(starts) == 1:
        return [(0, min(length, tile))]
    side = tile
    if fit:
        count = len(starts)
        # One pixel over the overlap asked for: each start is rounded to a whole pixel.
        fitted = math.ceil((length + (count - 1) * (math.ceil(overlap * tile) + 1)) / count)
        side = min(tile, -(-fitted // 32) * 32 + slack)
        step = (length - side) / (count - 1)
        starts = [int(round(i * step)) for i in range(count)]
    return [(s, min(s + side, length)) for s in starts]


def zooms_out(height: int, width: int, scale: float, spec: ClassSpec, fixed_input: int | None) -> bool:
    """Whether a pass below scale 1 must be padded back to the full size to show objects smaller.

    A letterboxing model enlarges a shrunk image right back to its input size; on a gray canvas of
    the original size the picture stays shrunk. This is what finds a plate filmed from up close,
    which fills most of the frame and looks like no plate the model was trained on.
    """
    return bool(fixed_input) and scale < 1 and height <= spec.tile_size and width <= spec.tile_size


def plan_passes(
    height: int, width: int, spec: ClassSpec, *, video: bool = False, fixed_input: int | None = None
) -> list[tuple[float, int, int, int, int]]:
    """Return (scale, x0, y0, x1, y1) crops, in scaled-image pixels, that one image is run through.

    Video frames may use cheaper ``video_scales``: an object missed in one frame is still caught
    in its neighbours and carried over by the tracker, which a single photo cannot count on.
    A model with a fixed input (``fixed_input`` px, letterboxed) sees the same picture for every
    scale at which the whole image fits one tile, so such repeats are skipped; a scale below 1 is
    shown on a canvas of the full size instead (see ``zooms_out``).
    """
    passes = []
    whole_image_views: list[float] = []
    scales = spec.video_scales if video and spec.video_scales else spec.scales
    for scale in scales:
        sh, sw = max(1, int(round(height * scale))), max(1, int(round(width * scale)))
        if fixed_input and sh <= spec.tile_size and sw <= spec.tile_size:
            canvas_h, canvas_w = (height, width) if zooms_out(height, width, scale, spec, fixed_input) else (sh, sw)
            seen_at = scale * min(fixed_input / canvas_h, fixed_input / canvas_w)
            if any(abs(seen_at - other) < 0.01 * other for other in whole_image_views):
                continue
            whole_image_views.append(seen_at)
        # A fixed-input model letterboxes each tile to its input: there the tile's size is the
        # zoom, so its tiles keep tile_size.
        fit = spec.tile_fit and not fixed_input
        for y0, y1 in tile_spans(sh, spec.tile_size, spec.tile_overlap, fit=fit):
            for x0, x1 in tile_spans(sw, spec.tile_size, spec.tile_overlap, fit=fit):
                passes.append((scale, x0, y0, x1, y1))
    return passes


def scaled_image(rgb: np.ndarray, scale: float) -> np.ndarray:
    """The whole image at ``scale``: what every pass at that scale is cut from."""
    if scale == 1.0:
        return rgb
    height, width = rgb.shape[:2]
    size = (max(1, int(round(width * scale))), max(1, int(round(height * scale))))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)


class ClassDetector:
    """Runs one raw detector for one class over every planned pass and merges the results."""

    def __init__(
        self,
        raw: RawDetector,
        spec: ClassSpec,
        class_id: int,
        *,
        batch_size: int = 8,
        detail_raw: RawDetector | None = None,
    ) -> None:
        self.raw = raw
        # The passes that look closer than the base view run this one instead, when given
        # (``detail_precision``, ``video_detail_precision``): small objects only, where a cheaper
        # graph's scores hold.
        self.detail_raw = detail_raw
        self.batch_size = batch_size
        self.spec = spec
        self.class_id = class_id

    @property
    def raws(self) -> list[RawDetector]:
        """Every raw detector this class runs (the audit names each; a cancel must end each)."""
        return [r for r in (self.raw, self.detail_raw) if r is not None]

    @property
    def detail_factor(self) -> float:
        """``detail_threshold / threshold``: how much lower the detail graph scores the same object.

        The detail passes run at every cut-off times this, and their scores are divided by it,
        so what leaves ``detect_passes`` is on the base graph's scale: the cascade's cues, the
        merge's NMS and the tracker's confident cut then treat both graphs' boxes alike.
        """
        if self.detail_raw is None or self.spec.detail_threshold is None:
            return 1.0
        return self.spec.detail_threshold / self.spec.threshold

    def looks_closer(self, p: Pass, height: int, width: int, video: bool) -> bool:
        """Whether pass ``p`` over an image of this size runs ``detail_raw``.

        Photos: a pass that enlarges the picture (``detail_precision``). Video: a pass at the
        frame's full resolution or more where the dense pass shrinks the frame
        (``video_detail_precision``): the dense pass is the base view there (a fixed-input
        model's dense pass letterboxes the whole frame to its input), and so is any other pass
        such a model is shown the whole frame in.
        """
        if self.detail_raw is None:
            return False
        spec = self.spec
        if not video:
            return (spec.detail_precision or spec.precision) != spec.precision and p.scale > 1
        if (spec.video_detail_precision or spec.precision) == spec.precision or p.scale < 1:
            return False
        fixed_input = getattr(self.raw, "fixed_input", None)
        dense_side = fixed_input or spec.video_dense_side
        if not dense_side or max(height, width) <= dense_side:
            return False  # the dense pass sees the frame as it is: nothing looks closer
        whole = p.x0 == 0 and p.y0 == 0 and p.x1 >= round(width * p.scale) and p.y1 >= round(height * p.scale)
        return not (fixed_input and whole and p.scale == 1)

    def __call__(self, rgb: np.ndarray) -> Detections:
        return self.detect_many([rgb])[0]

    def detect_many(
        self, images: list[np.ndarray], *, video: bool = False, progress: PassProgress | None = None
    ) -> list[Detections]:
        """Detect in several images; a raw detector with ``batch`` gets same-shaped crops together."""
        return [self.merge_passes(p) for p in self.detect_passes(images, video=video, progress=progress)]

    def merge_passes(self, passes: list[tuple[float, bool, np.ndarray, np.ndarray]]) -> Detections:
        """Merge what ``detect_passes`` returned for one image."""
        found = [(xyxy, conf) for _, _, xyxy, conf in passes if len(xyxy)]
        return self.merge([b for b, _ in found], [c for _, c in found])

    def plan(self, height: int, width: int, *, video: bool = False) -> list[Pass]:
        """Every pass the class's settings ask for on an image of this size, mirrored ones included."""
        fixed_input = getattr(self.raw, "fixed_input", None)
        passes = []
        for scale, x0, y0, x1, y1 in plan_passes(height, width, self.spec, video=video, fixed_input=fixed_input):
            passes.append(Pass(scale, x0, y0, x1, y1, False))
            if self.spec.video_flip if video else self.spec.flip:
                passes.append(Pass(scale, x0, y0, x1, y1, True))
        return passes

    def detect_passes(
        self,
        images: list[np.ndarray],
        *,
        video: bool = False,
        threshold: float | None = None,
        plans: list[list[Pass]] | None = None,
        progress: PassProgress | None = None,
        scaled: list[dict[float, np.ndarray] | None] | None = None,
    ) -> list[list[tuple[float, bool, np.ndarray, np.ndarray]]]:
        """Per image, every pass's raw output: (scale, mirrored, xyxy in source pixels, scores).

        ``threshold`` overrides the class's (bench/face_frontier.py caches passes at a low floor).
        ``plans`` (one list of passes per image) replaces the full plan: a cascade or a video
        cadence runs a subset of it, or passes over crops of the image. ``progress(done, total)``
        follows every inference call (an exception it raises aborts the detection). ``scaled``
        (one dict per image, or None) holds whole-image resizes already made by ``scaled_image``
        (the video reader makes them on its own thread: ``anonymizer.stream.stages.Prescale``).
        """
        # Video keeps weaker candidates too: the tracker masks them only when they join a track that
        # also has a confident detection (see anonymizer.track.linker).
        if threshold is None:
            threshold = self.spec.threshold
            if video and self.spec.track_threshold is not None:
                threshold = min(threshold, self.spec.track_threshold)
        factor = self.detail_factor
        jobs = []  # (image index, pass), in plan order
        for index, rgb in enumerate(images):
            plan = plans[index] if plans is not None else self.plan(*rgb.shape[:2], video=video)
            jobs.extend((index, p) for p in plan)
        outputs: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(jobs)
        widths: list[int] = [0] * len(jobs)
        # A class with a detail graph runs on onnxruntime, one crop a call (the factory builds
        # none for torch, the batching runtime).
        batch = getattr(self.raw, "batch", None) if self.detail_raw is None else None
        # Video frames of 5:3 or wider may take a frame-shaped copy of a fixed-input graph
        # (``video_shaped_input``), where the pass's detector has one; photos keep the square
        # input the photo plan was tuned on.
        shaped = video
        done = 0
        # One scale at a time, each crop cut (and mirrored) just before its inference: a 24 MP
        # photo's scale-3 crops would otherwise all exist at once (gigabytes, and tens of seconds
        # before the first inference reports progress).
        for scale in sorted({p.scale for _, p in jobs}):
            members = [j for j, (_, p) in enumerate(jobs) if p.scale == scale]
            resized: dict[int, np.ndarray] = {}
            for j in members:
                index = jobs[j][0]
                if index not in resized:
                    made = scaled[index] if scaled is not None else None
                    resized[index] = made[scale] if made and scale in made else scaled_image(images[index], scale)
            if batch is not None:
                # Same-shaped crops share a call; a fixed-input model letterboxes each crop to
                # its input, so crops of any shape share one.
                fixed = getattr(self.raw, "fixed_input", None)
                groups: dict[tuple[int, ...], list[int]] = {}
                for j in members:
                    p = jobs[j][1]
                    groups.setdefault(() if fixed else (p.y1 - p.y0, p.x1 - p.x0), []).append(j)
                runs = [g[i : i + self.batch_size] for g in groups.values() for i in range(0, len(g), self.batch_size)]
            else:
                runs = [[j] for j in members]
            for run in runs:
                crops = [self._crop(images[jobs[j][0]], resized[jobs[j][0]], jobs[j][1]) for j in run]
                raw, cut = self.raw, threshold
                index, first = jobs[run[0]]
                detail = self.looks_closer(first, *images[index].shape[:2], video)
                if detail:
                    raw, cut = self.detail_raw, threshold * factor
                if batch is not None:
                    found = batch(crops, cut)
                elif shaped and getattr(raw, "frame_shaped", False):
                    found = [raw(crops[0], cut, shaped=True)]  # type: ignore[call-arg]
                else:
                    found = [raw(crops[0], cut)]
                if detail and factor != 1:  # onto the base graph's scale
                    found = [(xyxy, np.minimum(np.asarray(conf, np.float32) / factor, 1.0)) for xyxy, conf in found]
                for j, crop, out in zip(run, crops, found):
                    outputs[j], widths[j] = out, crop.shape[1]
                done += len(run)
                if progress is not None:
                    progress(done, len(jobs))
            del resized

        per_image: list[list[tuple[float, bool, np.ndarray, np.ndarray]]] = [[] for _ in images]
        for ((index, p), (xyxy, conf)), width in zip(zip(jobs, outputs), widths):  # type: ignore[misc]
            xyxy = np.asarray(xyxy, np.float32).reshape(-1, 4)
            if p.flipped and len(xyxy):
                xyxy = xyxy.copy()
                xyxy[:, [0, 2]] = width - xyxy[:, [2, 0]]
            per_image[index].append((p.scale, p.flipped, (xyxy + [p.x0, p.y0, p.x0, p.y0]) / p.scale, conf))
        return per_image

    def _crop(self, rgb: np.ndarray, scaled: np.ndarray, p: Pass) -> np.ndarray:
        """The pixels one pass shows the network."""
        height, width = rgb.shape[:2]
        crop = scaled[p.y0 : p.y1, p.x0 : p.x1]
        if zooms_out(height, width, p.scale, self.spec, getattr(self.raw, "fixed_input", None)):
            # Top-left on a neutral gray canvas: box coordinates stay those of the scaled image.
            canvas = np.full((height, width, 3), 114, np.uint8)
            canvas[: crop.shape[0], : crop.shape[1]] = crop
            crop = canvas
        return np.ascontiguousarray(crop[:, ::-1]) if p.flipped else crop

    def merge(self, boxes: list[np.ndarray], scores: list[np.ndarray]) -> Detections:
        """Merge boxes (source pixels) from several passes: size filter, then NMS."""
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
