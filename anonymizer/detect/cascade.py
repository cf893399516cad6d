"""The photo cascade: a cheap pass over the whole photo decides where the expensive passes run.

The full plan (``ClassDetector.plan``) runs every scale, tile and mirrored pass on every pixel;
on a crowd photo that is tens of times one 1x pass, and most of it finds nothing. The cascade runs
the cheap pass (every scale-1, unmirrored pass of the plan) at a low threshold first; its weak
candidates (**cues**, scoring ``cue_threshold`` or more) say where identity may be, and each
expensive pass runs only there:

- a dynamic-input model (CenterFace) runs an upscaled or mirrored pass on **crops** of the scaled
  image around the cues (context added, snapped to the model's 32 px stride so the crop sees the
  same pixel grid as the whole pass); when the crops would cover most of the picture, the plan's
  own passes run instead;
- a fixed-input model (platedet, letterboxed to 640 px) runs the plan's own **tiles** that hold a
  cue (a smaller crop would show the model a different scale), and its zoom-out pass when the
  cheap pass saw any cue at all.

A mirrored pass other than the cheap one is there for a turned face that scores weakly
unmirrored, so with ``mirrored_no_context`` (an option, off: it cuts faces) its crops cover the cues' own
cells only; the context around a cue is what the unmirrored upscaled passes look at.

Where a pass runs, it runs as the full plan would over that region, at the class's threshold:
the cascade never returns fewer boxes there than the full plan (tests/unit/test_cascade.py). It
only skips passes, or parts of them, where the cheap pass saw nothing worth a second look. Photos
only: video frames have the tracker and their neighbours.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from anonymizer.config import CascadeSpec
from anonymizer.detect.multiscale import ClassDetector, Pass, PassProgress, tile_spans, zooms_out
from anonymizer.detections import Detections

STRIDE = 32  # CenterFace's input is padded to multiples of 32: crops start on that grid


def cheap_scale(scales: tuple[float, ...]) -> float:
    """The scale of the cheap pass: 1x when planned, else the smallest scale of at least 1."""
    if 1.0 in scales:
        return 1.0
    at_least_one = [s for s in scales if s >= 1.0]
    return min(at_least_one) if at_least_one else max(scales)


def cheap_scales(spec_scales: tuple[float, ...], always: tuple[float, ...]) -> tuple[float, ...]:
    """The scales whose unmirrored passes always run on the whole photo: ``always`` where planned,
    else the one ``cheap_scale`` picks."""
    planned = tuple(s for s in always if s in spec_scales)
    return planned or (cheap_scale(spec_scales),)


def split_plan(
    plan: list[Pass], scales: float | tuple[float, ...], *, mirrored: bool = False
) -> tuple[list[Pass], list[Pass]]:
    """Given the full plan, return (cheap passes: at ``scales``, unmirrored unless ``mirrored``
    adds the mirrored ones, every other pass)."""
    scales = scales if isinstance(scales, tuple) else (scales,)

    def is_cheap(p: Pass) -> bool:
        return p.scale in scales and (mirrored or not p.flipped)

    return [p for p in plan if is_cheap(p)], [p for p in plan if not is_cheap(p)]


@dataclass(frozen=True)
class Cues:
    """The cheap pass's candidates that steer the expensive passes (source pixels)."""

    xyxy: np.ndarray  # float32 (n, 4)
    confidence: np.ndarray  # float32 (n,)

    def __len__(self) -> int:
        return len(self.confidence)

    def select(self, keep: np.ndarray) -> Cues:
        return Cues(self.xyxy[keep], self.confidence[keep])

    def sized(self, max_px: float) -> Cues:
        """The cues whose longer side is at most ``max_px`` (0 = all)."""
        if max_px <= 0 or not len(self.xyxy):
            return self
        wh = self.xyxy[:, 2:] - self.xyxy[:, :2]
        return self.select(wh.max(axis=1) <= max_px)

    def for_pass(self, rule: CascadeSpec, scale: float, flipped: bool = False) -> Cues:
        """The cues that ask for a pass at ``scale`` (mirrored or not; the cheap pass's own scale
        means its mirrored pass) around them: every weak cue, and for an upscaled pass every cue
        it shows at most ``upscale_below_px`` across; an upscaled mirrored pass only around weak
        cues when ``mirrored_weak_only``; no upscaled pass around a cue it shows more than
        ``upscale_max_px`` across (when set)."""
        keep = self.confidence < rule.weak_below
        if scale > 1:
            wh = self.xyxy[:, 2:] - self.xyxy[:, :2]
            shown = wh.max(axis=1) * scale
            if not (flipped and rule.mirrored_weak_only):
                keep |= (shown <= rule.upscale_below_px) if rule.upscale_below_px > 0 else True
            if rule.upscale_max_px > 0:
                keep &= shown <= rule.upscale_max_px
        return self.select(keep)


def cue_mask(cues: Cues, height: int, width: int, rule: CascadeSpec) -> np.ndarray:
    """Cells (``rule.cell_px`` source px) where the rule asks for a pass: every cue, grown by
    ``context`` of its size plus ``context_px`` on each side. Returns a bool (rows, cols) grid."""
    cell = rule.cell_px
    grid = np.zeros((math.ceil(height / cell), math.ceil(width / cell)), bool)
    for x1, y1, x2, y2 in cues.xyxy:
        pad_x = rule.context * (x2 - x1) + rule.context_px
        pad_y = rule.context * (y2 - y1) + rule.context_px
        c0, c1 = int(max(0, x1 - pad_x) // cell), int(min(width - 1, x2 + pad_x) // cell)
        r0, r1 = int(max(0, y1 - pad_y) // cell), int(min(height - 1, y2 + pad_y) // cell)
        grid[r0 : r1 + 1, c0 : c1 + 1] = True
    return grid


def mask_rectangles(grid: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Bounding rectangles (c0, r0, c1, r1, exclusive ends) of the 8-connected marked cells."""
    import cv2

    count, _, stats, _ = cv2.connectedComponentsWithStats(grid.astype(np.uint8), connectivity=8)
    return [(int(x), int(y), int(x + w), int(y + h)) for x, y, w, h, _ in stats[1:count]]


def crop_passes(
    grid: np.ndarray, height: int, width: int, scale: float, flipped: bool, rule: CascadeSpec, tile_size: int,
    fit: bool = False,
) -> list[Pass]:
    """Passes over crops of the image scaled by ``scale`` that cover the marked cells of ``grid``,
    with ``rule.crop_context_px`` (scaled px) of context, starting on the stride grid; a crop larger
    than ``tile_size`` is tiled as the plan tiles a whole image (``fit``: ``tile_spans``, with a
    stride of slack, since each tile's start moves back onto the grid). The last tile of a row or
    column always reaches the crop's end: moved back onto the grid it would stop up to a stride
    short of it, so it may be that much larger than ``tile_size``."""
    sh, sw = max(1, round(height * scale)), max(1, round(width * scale))
    margin = rule.crop_context_px
    passes = []
    for c0, r0, c1, r1 in mask_rectangles(grid):
        x0 = max(0, int(c0 * rule.cell_px * scale) - margin) // STRIDE * STRIDE
        y0 = max(0, int(r0 * rule.cell_px * scale) - margin) // STRIDE * STRIDE
        x1 = min(sw, math.ceil(c1 * rule.cell_px * scale) + margin)
        y1 = min(sh, math.ceil(r1 * rule.cell_px * scale) + margin)
        rows = tile_spans(y1 - y0, tile_size, 0.2, fit=fit, slack=STRIDE)
        cols = tile_spans(x1 - x0, tile_size, 0.2, fit=fit, slack=STRIDE)
        # A crop's only tile keeps tile_size: its start moved back onto the grid, its end stays x1.
        side_h = rows[0][1] - rows[0][0] if fit and len(rows) > 1 else tile_size
        side_w = cols[0][1] - cols[0][0] if fit and len(cols) > 1 else tile_size
        for row, (ty, _) in enumerate(rows):
            ay = (y0 + ty) // STRIDE * STRIDE
            ey = y1 if row == len(rows) - 1 else min(sh, ay + side_h, y1)
            for col, (tx, _) in enumerate(cols):
                ax = (x0 + tx) // STRIDE * STRIDE
                ex = x1 if col == len(cols) - 1 else min(sw, ax + side_w, x1)
                passes.append(Pass(scale, ax, ay, ex, ey, flipped))
    return passes


def tile_holds_cue(p: Pass, cues: Cues, rule: CascadeSpec) -> bool:
    """Whether a plan tile (scaled px) holds a cue's centre, within ``context_px`` (source px)."""
    if not len(cues.xyxy):
        return False
    cx = (cues.xyxy[:, 0] + cues.xyxy[:, 2]) / 2
    cy = (cues.xyxy[:, 1] + cues.xyxy[:, 3]) / 2
    pad = rule.context_px
    inside = (cx >= p.x0 / p.scale - pad) & (cx <= p.x1 / p.scale + pad) & (cy >= p.y0 / p.scale - pad) & (cy <= p.y1 / p.scale + pad)
    return bool(inside.any())


def plan_expensive(
    detector: ClassDetector, rule: CascadeSpec, height: int, width: int, rest: list[Pass], cues: Cues
) -> list[Pass]:
    """Given the plan's passes other than the cheap ones and the cheap pass's cues, return the
    passes to run: every one of ``rest`` the rule asks for, or crops of them (see the module doc)."""
    spec = detector.spec
    fixed_input = getattr(detector.raw, "fixed_input", None)
    cues = cues.select(cues.confidence >= rule.cue_threshold)
    chosen: list[Pass] = []
    groups: dict[tuple[float, bool], list[Pass]] = {}
    for p in rest:
        groups.setdefault((p.scale, p.flipped), []).append(p)
    for (scale, flipped), passes in groups.items():
        wanted = cues.for_pass(rule, scale, flipped)
        if fixed_input:
            if zooms_out(height, width, scale, spec, fixed_input):
                chosen += passes if len(cues.xyxy) else []
            else:
                chosen += [p for p in passes if tile_holds_cue(p, wanted, rule)]
            continue
        if not len(wanted.xyxy):
            continue
        # A mirrored pass looks again at the cues themselves (a turned face scores weakly unmirrored);
        # the context around them is the unmirrored passes' business (neighbours too small to cue).
        region_rule = replace(rule, context=0.0, context_px=0.0) if flipped and rule.mirrored_no_context else rule
        crops = crop_passes(
            cue_mask(wanted, height, width, region_rule), height, width, scale, flipped, rule, spec.tile_size, spec.tile_fit
        )
        crop_area = sum((p.x1 - p.x0) * (p.y1 - p.y0) for p in crops)
        full_area = sum((p.x1 - p.x0) * (p.y1 - p.y0) for p in passes)
        chosen += passes if crop_area >= rule.full_above * full_area else crops
    return chosen


def cascade_passes(
    detector: ClassDetector, rule: CascadeSpec, rgb: np.ndarray, *, progress: PassProgress | None = None
) -> tuple[list[tuple[float, bool, np.ndarray, np.ndarray]], int]:
    """Run one photo through the cascade. Returns (each pass's (scale, mirrored, xyxy, scores) at
    the class's threshold, as ``ClassDetector.detect_passes`` returns them; inference calls made)."""
    height, width = rgb.shape[:2]
    spec = detector.spec
    cheap, rest = split_plan(detector.plan(height, width), cheap_scales(spec.scales, rule.always_scales), mirrored=rule.always_mirrored)
    floor = min(rule.cue_threshold, spec.threshold)
    # Cues come from the same run: a lower threshold only adds weaker boxes (they never suppress
    # a stronger one in the model's own NMS), so the boxes at the class's threshold are unchanged.
    cheap_out = detector.detect_passes([rgb], plans=[cheap], threshold=floor, progress=progress)[0]
    if cheap_out:
        cues = Cues(np.concatenate([o[2] for o in cheap_out]).reshape(-1, 4), np.concatenate([o[3] for o in cheap_out]))
    else:
        cues = Cues(np.zeros((0, 4), np.float32), np.zeros(0, np.float32))
    out = [(s, f, xyxy[conf >= spec.threshold], conf[conf >= spec.threshold]) for s, f, xyxy, conf in cheap_out]
    expensive = plan_expensive(detector, rule, height, width, rest, cues)
    if expensive:
        report = None
        if progress is not None:

            def report(done: int, total: int) -> None:
                progress(len(cheap) + done, len(cheap) + total)

        out += detector.detect_passes([rgb], plans=[expensive], progress=report)[0]
    return out, len(cheap) + len(expensive)


def detect_cascade(
    detector: ClassDetector, rule: CascadeSpec, rgb: np.ndarray, *, progress: PassProgress | None = None
) -> tuple[Detections, int]:
    """Detect one class in one photo through the cascade. Returns (merged detections, inference calls)."""
    passes, calls = cascade_passes(detector, rule, rgb, progress=progress)
    return detector.merge_passes(passes), calls
