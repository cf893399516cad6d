"""Which passes a class runs on each video frame: a cadence over time, gating over space.

Time is a dimension of the search, not a multiplier. On every detector frame a class runs one
cheap **dense** pass over the whole frame (no tiles, no mirror, at most ``video_dense_side`` px on
its longer side); its **full** plan (every video scale, tile and mirrored pass) runs on every
``video_full_every``-th detector frame. A frame that skipped the full plan is covered by the
dense pass and by the tracker: an object only the full plan finds is interpolated between two
full frames, and masked ``lead_frames`` before and ``trail_frames`` after them (the window
tracker stretches lead and trail to at least the cadence).

Fixed cameras (``detect.gating``): a region whose pixels did not change since the class's last
**refresh** (a full plan over the whole frame) keeps what that refresh found; the passes of the
frame run only over the changed areas (a model with a fixed input size runs a pass whole when its
area changed at all, so what it sees is exactly what the full plan shows it). A refresh happens
on the full plan's first frame once ``gating_refresh_frames`` frames have passed (the frames before
it stay gated against the old one) and whenever the camera moves. A fixed-input model can also
look closer at the changed areas of a gated frame (``video_zoom``): windows of its input size over
the enlarged frame, so a small plate crossing the view is seen ``video_zoom`` times larger than the
full plan's finest pass shows it (``finest_view``, ``zoom_windows``).

Between refreshes, off the full plan, a region is looked at again only while it keeps changing
(``remember``): every gated frame's **look** (its passes over the changed areas) is remembered,
the block means it saw and what it found, and a region that changed since the refresh but not
since its last look keeps what that look found. A car that parked, a walker who stopped,
compression grain a new GOP left all over the frame: looked at once and then on the full plan's
frames, not on every detector frame until the next refresh.
"""

from __future__ import annotations

import math

import numpy as np

from anonymizer.config import ClassSpec
from anonymizer.detect import gating
from anonymizer.detect.multiscale import ClassDetector, Pass, tile_starts, zooms_out
from anonymizer.detections import Detections, box_iou


def dense_pass(height: int, width: int, spec: ClassSpec, fixed_input: int | None) -> Pass:
    """The one cheap pass over the whole frame, never upscaled."""
    if fixed_input:
        return Pass(1.0, 0, 0, width, height)  # letterboxed whole to the model's input
    scale = min(1.0, spec.video_dense_side / max(height, width)) if spec.video_dense_side else 1.0
    return Pass(scale, 0, 0, max(1, int(round(width * scale))), max(1, int(round(height * scale))))


def restrict(passes: list[Pass], boxes: np.ndarray, fixed_input: int | None) -> list[Pass]:
    """The passes cut down to where ``boxes`` (source pixels) lie.

    A fully convolutional model sees a crop of the scaled image exactly as it sees that region in
    the whole one (apart from its outer edge, which the change context covers); a fixed-input
    model would rescale a crop, so its pass runs whole or not at all.
    """
    out = []
    for p in passes:
        region = np.array([p.x0, p.y0, p.x1, p.y1], np.float32) / p.scale
        for box in boxes:
            x1, y1 = max(box[0], region[0]), max(box[1], region[1])
            x2, y2 = min(box[2], region[2]), min(box[3], region[3])
            if x2 <= x1 or y2 <= y1:
                continue
            if fixed_input:
                out.append(p)
                break
            out.append(
                Pass(
                    p.scale,
                    max(p.x0, int(math.floor(x1 * p.scale))),
                    max(p.y0, int(math.floor(y1 * p.scale))),
                    min(p.x1, int(math.ceil(x2 * p.scale))),
                    min(p.y1, int(math.ceil(y2 * p.scale))),
                    p.flipped,
                )
            )
    return out


def finest_view(passes: list[Pass], spec: ClassSpec, fixed_input: int, height: int, width: int) -> float:
    """How large a fixed-input model sees the frame's objects in the finest of ``passes``
    (source px to network px): each pass's scale times its letterbox ratio.

    A 640x360 frame letterboxed whole is seen at 1; a 1080p frame in the plan's 1280 px tiles at
    0.5. The closer look is relative to this, so it costs the same windows at any resolution.
    """
    views = []
    for p in passes:
        h, w = (height, width) if zooms_out(height, width, p.scale, spec, fixed_input) else (p.y1 - p.y0, p.x1 - p.x0)
        views.append(p.scale * min(fixed_input / max(1, h), fixed_input / max(1, w)))
    return max(views, default=1.0)


def zoom_windows(boxes: np.ndarray, zoom: float, window: int, height: int, width: int) -> list[Pass]:
    """Passes at ``zoom`` whose crops, ``window`` px square (the model's input, so nothing is
    shrunk again), cover every box (source pixels), with the tiles' usual overlap.

    A box smaller than a window gets one window centred on it; a window that would cross the
    frame's edge is moved inside. Windows repeated by neighbouring boxes run once.
    """
    sh, sw = max(1, int(round(height * zoom))), max(1, int(round(width * zoom)))
    side_h, side_w = min(window, sh), min(window, sw)
    out: dict[Pass, None] = {}
    for x1, y1, x2, y2 in np.asarray(boxes, np.float32).reshape(-1, 4) * zoom:
        starts = []
        for lo, hi, side, limit in ((x1, x2, side_w, sw), (y1, y2, side_h, sh)):
            length = hi - lo
            if length <= side:
                first = [int(round((lo + hi - side) / 2))]
            else:
                first = [int(math.floor(lo)) + s for s in tile_starts(int(math.ceil(length)), side, 0.2)]
            starts.append([min(max(0, s), limit - side) for s in first])
        for y in starts[1]:
            for x in starts[0]:
                out[Pass(zoom, x, y, x + side_w, y + side_h)] = None
    return list(out)


class ClassSchedule:
    """One class's cadence and gating state over one clip (frames arrive in order)."""

    def __init__(self, detector: ClassDetector, *, gate: bool, refresh_frames: int, remember: bool = True) -> None:
        """``remember``: keep what each look found (the caller hands every frame's detections to
        ``refreshed`` or ``looked_at`` before it plans the next frame: no batches of frames)."""
        self.detector = detector
        self.spec = detector.spec
        self.gate = gate
        self.refresh_frames = refresh_frames
        self.fixed_input = getattr(detector.raw, "fixed_input", None)
        self.detector_frames = 0
        self.reference: np.ndarray | None = None  # block means at the last refresh
        self.refreshed_at = -(10**9)
        self.kept = Detections.empty()  # what the last refresh found
        self.remember = remember
        self.looked: np.ndarray | None = None  # block means as the last look (or refresh) saw each cell
        self.memory = Detections.empty()  # what the looks since the refresh found, where nothing changed since
        self._look: Detections | None = None  # the memory a pending look carries over, until looked_at
        self._look_crops = np.zeros((0, 4), np.float32)  # ... and the areas it looks at
        self.looked_closer = False  # whether the last gated frame's passes had the closer look
        # A fixed camera that shakes (wind, a passing truck) moves every object by a different
        # jolt each frame, which no interpolation between detector frames follows: from the first
        # moving frame until the camera is still again, at most ``refresh_frames`` after it last
        # was, the class runs on every frame. A camera that keeps moving (a pan, a dashcam) is
        # not a shaking fixed one: past that bound the cadence is back.
        self.still_at = -(10**9)  # the last gated frame (the camera was still)
        self.shaking = False
        self.stats = {"full": 0, "dense": 0, "gated": 0, "refresh": 0, "camera_moved": 0, "zoomed": 0, "shaken": 0}
        self.stats["off_cadence"] = 0  # still-camera frames the cadence skips that ran gated passes
        self.stats["zoom_capped"] = 0  # gated frames off the full plan too changed for the closer look
        # Gated frames: pixels of the changed areas the passes ran over, and of the whole frames.
        self.stats |= {"changed_px": 0, "frame_px": 0}
        # What the last planned frame was, for the plates' text cue (anonymizer.detect.text.
        # VideoTextCue): whether it ran the full plan, and the areas a gated frame looked at
        # (None: the frame was not gated, its passes saw the whole frame).
        self.last_full = False
        self.last_crops: np.ndarray | None = None

    def wants(self, index: int) -> bool:
        """Whether the detector runs on frame ``index``: the cadence, or every frame while shaking,
        or (``video_gated_every_frame``) every frame while the camera is still."""
        if self.shaking and index - self.still_at <= self.refresh_frames:
            return True
        if index % self.spec.every_n_frames == 0:
            return True
        return self._still(index)

    def _still(self, index: int) -> bool:
        """Whether an off-cadence frame may run gated passes: the class asks for it, the camera was
        still at the last gated frame and the last refresh is recent enough to compare against."""
        return (
            self.gate
            and self.spec.video_gated_every_frame
            and self.reference is not None
            and not self.shaking
            and index - self.refreshed_at < self.refresh_frames
        )

    def plan(self, index: int, rgb: np.ndarray, blocks: np.ndarray | None) -> tuple[list[Pass], Detections, bool]:
        """Return (passes to run on this frame, detections carried over, whether it is a refresh)."""
        height, width = rgb.shape[:2]
        self.last_full, self.last_crops = False, None
        off_cadence = index % self.spec.every_n_frames and not (self.shaking and index - self.still_at <= self.refresh_frames)
        if off_cadence and self.spec.video_gated_every_frame:
            return self._off_cadence(index, rgb, blocks)
        full = self.detector_frames % self.spec.video_full_every == 0
        self.last_full = full
        self.detector_frames += 1
        passes = self.detector.plan(height, width, video=True)
        if not full:
            passes = [dense_pass(height, width, self.spec, self.fixed_input)]
        if not self.gate or blocks is None:
            self.stats["full" if full else "dense"] += 1
            return passes, Detections.empty(), False
        # A refresh that is due waits for the full plan's frame; the frames before it stay gated
        # against the old one. Falling back to the dense pass there (as before) showed a small
        # crosser at a third of its size on up to two plate frames in every refresh period (tune
        # half, 144-frame uc3m crossers clip, frame 104: a 34 px plate entering at 46 px a frame,
        # found at 0.31 by the closer look's window and not at all by the dense pass).
        due = index - self.refreshed_at >= self.refresh_frames
        change = self._change(blocks, height, width)
        if change is not None and not change.camera_moved and not (due and full):
            self.stats["gated"] += 1
            self.still_at, self.shaking = index, False
            # The full plan's frames look again at every area that differs from the refresh,
            # as before: a look that missed something (blur as a car stops, a face half hidden
            # as a walker arrives) is not what its area keeps until the next refresh.
            fresh = change if full else self._fresh(change, blocks, height, width)
            crops, carried, remembered = self._look_again(change, fresh, height, width)
            self._count_gated(crops, height, width)
            self.last_crops = crops
            passes = self._gated_passes(full, crops, height, width)
            self._looking(crops, blocks, remembered, full)
            return passes, carried, False
        if change is not None and change.camera_moved:
            self.stats["camera_moved"] += 1
            self.reference = None  # stale: the next full frame starts a new one
            self.shaking = self.shaking or index - self.still_at <= self.refresh_frames
        if self.shaking and index % self.spec.every_n_frames:
            self.stats["shaken"] += 1  # a frame the cadence alone would have skipped
        if not full:
            # A moving camera, or no refresh yet to compare with: the cadence still decides
            # which plan runs, over the whole frame; the next full plan is the refresh.
            self.stats["dense"] += 1
            return passes, Detections.empty(), False
        self.stats["refresh"] += 1
        if change is not None and not change.camera_moved and self.fixed_input and self.spec.video_zoom > 1:
            # A still camera's due refresh is a full-plan frame like the others: its closer look
            # runs over what changed since the old refresh (without it, a small crosser was seen
            # at the plan's finest view alone on one plate frame in every refresh period).
            passes = passes + self._closer(passes, self._areas(change.boxes, change), height, width)
        self.reference, self.refreshed_at = blocks, index
        self.looked = blocks.copy() if self.remember else None
        return passes, Detections.empty(), True

    def _off_cadence(
        self, index: int, rgb: np.ndarray, blocks: np.ndarray | None
    ) -> tuple[list[Pass], Detections, bool]:
        """A frame the cadence skips, on a still camera: the gated passes over the changed areas
        when they need fewer passes than the full plan, else none. It is not a detector frame of
        the cadence (the full plan's turn and the refresh do not move), and a camera that moved
        is left to the next frame of the cadence."""
        height, width = rgb.shape[:2]
        change = None if blocks is None else self._change(blocks, height, width)
        if change is None or change.camera_moved:
            return [], Detections.empty(), False
        fresh = self._fresh(change, blocks, height, width)
        crops, carried, remembered = self._look_again(change, fresh, height, width)
        if not len(crops):
            return [], carried, False
        plan = self.detector.plan(height, width, video=True)
        passes = self._gated_passes(False, crops, height, width)
        if self.fixed_input and len(passes) >= len(plan):
            return [], carried, False  # a large change: the cadence's frames cover it
        self.stats["off_cadence"] += 1
        self._count_gated(crops, height, width)
        self.last_crops = crops
        self._looking(crops, blocks, remembered, False)
        return passes, carried, False

    def _change(self, blocks: np.ndarray, height: int, width: int) -> gating.Change | None:
        """What changed in ``blocks`` since the last refresh, or None when there is no reference
        to compare against (none yet, dropped when the camera moved, or another frame size)."""
        if self.reference is None or self.reference.shape != blocks.shape:
            return None
        return gating.compare(self.reference, blocks, (width, height))

    def _fresh(self, change: gating.Change, blocks: np.ndarray, height: int, width: int) -> gating.Change | None:
        """What changed since each cell's last look, where looks are remembered (else None). The
        refresh alone tells whether the camera moved."""
        if self.looked is None or self.looked.shape != blocks.shape:
            return None
        return gating.compare(self.looked, blocks, (width, height), shift=False)

    def _looking(self, crops: np.ndarray, blocks: np.ndarray, remembered: Detections, full: bool) -> None:
        """A gated frame's passes run over ``crops``: remember what its cells look like now, and
        the memory it carries over, until ``looked_at`` adds what it finds. Only a look that ran
        every pass a full frame's look runs counts: a fixed-input model off the full plan runs
        windows at its finest view, without the whole zoomed-out pass, and counts only with the
        closer look (``video_zoom_every_frame``, not capped by ``video_zoom_max_share``)."""
        if self.looked is None or self.looked.shape != blocks.shape:
            return
        if self.fixed_input and not (full or self.looked_closer):
            return
        for box in np.asarray(crops, np.float32).reshape(-1, 4):
            cells = gating.cells_under(box, blocks.shape)
            self.looked[cells] = blocks[cells]
        self._look, self._look_crops = remembered, np.asarray(crops, np.float32).reshape(-1, 4)

    def looked_at(self, found: Detections) -> None:
        """Record what a gated frame's look found in the areas it looked at: with the memory it
        carried over, it is what the frames after it keep where nothing changes again. Boxes a
        window found past those areas are the refresh's to keep (else a false positive in the
        still background would stay until the next refresh). Of a remembered box and one the
        look found over it again (IoU 0.5), the more confident is kept."""
        if self._look is None:
            return
        remembered, self._look = self._look, None
        centres = (found.xyxy[:, :2] + found.xyxy[:, 2:]) / 2
        crops = self._look_crops
        inside = (
            (centres[:, None, 0] >= crops[None, :, 0])
            & (centres[:, None, 0] < crops[None, :, 2])
            & (centres[:, None, 1] >= crops[None, :, 1])
            & (centres[:, None, 1] < crops[None, :, 3])
        ).any(axis=1)
        found = found[inside]
        if len(remembered) and len(found):
            same = box_iou(remembered.xyxy, found.xyxy) >= 0.5
            surer = found.confidence[None, :] >= remembered.confidence[:, None]
            found = found[~(same & ~surer).any(axis=0)]
            remembered = remembered[~(same & surer).any(axis=1)]
        self.memory = Detections.merge([found, remembered])

    def _look_again(
        self, change: gating.Change, fresh: gating.Change | None, height: int, width: int
    ) -> tuple[np.ndarray, Detections, Detections]:
        """On a still camera: (the areas a gated frame looks at, float32 (n, 4) source px; what it
        carries over unchanged; the part of that from the memory of looks).

        ``change`` is what changed since the refresh, ``fresh`` since each cell's last look (None:
        looks are not remembered). A gated frame looks at the areas changed since the refresh that
        still change, each whole as before (small plates are found or not by where a window puts
        them): an object that came in and stopped was looked at. It carries what the refresh found
        where nothing changed since, and what the looks found where nothing changed since them.

        Every object the refresh found that a change touches is dropped from what is carried, so
        every one of them is looked at again, whole: ``touches`` counts a change a cell away from
        a box (a walker passing just under a standing face), where the changed area itself does
        not show the face (gated crowd clips lost such faces for as long as the walker stayed
        near them).
        """
        now = change if fresh is None else change.active(fresh, (width, height))
        touched = change.touches(self.kept.xyxy) if len(self.kept) else np.zeros(0, bool)
        live = touched & now.touches(self.kept.xyxy) if len(self.kept) else touched
        carried = self.kept[~touched] if len(self.kept) else self.kept
        look = gating.around(self.kept.xyxy[live], (width, height)) if live.any() else np.zeros((0, 4), np.float32)
        remembered = self.memory
        if fresh is not None and len(self.memory):
            # A remembered object stays while its area settled: where the area still changes it
            # is looked at again, whole, and what that look finds replaces it (a walker's last
            # box, carried beside his new one, pulled his track off him); where its own cells
            # changed outside such areas they are back to what the refresh saw: it left. Where
            # nothing differs from the refresh any more, the refresh's boxes are carried, not
            # a look's second view of the same faces.
            xyxy = self.memory.xyxy
            remembered = self.memory[change.touches(xyxy) & ~now.touches(xyxy) & ~fresh.on(xyxy)]
            if len(remembered) and len(carried):
                # The refresh's box that a look found again is carried once (one track, not two).
                remembered = remembered[~(box_iou(remembered.xyxy, carried.xyxy) >= 0.9).any(axis=1)]
        if fresh is not None and len(self.kept):
            # A refresh's box beside an area that settled is not looked at again: carried, unless
            # a remembered box covers it (the look's own view of it). Its look may have missed it,
            # and the cells at a changed area's edge flicker about the threshold.
            settled = touched & ~live
            if settled.any():
                kept = self.kept[settled]
                if len(remembered):
                    kept = kept[~(box_iou(kept.xyxy, remembered.xyxy) >= 0.3).any(axis=1)]
                carried = Detections.merge([carried, kept])
        crops = np.concatenate([self._areas(now.boxes, change), look]).astype(np.float32)
        return crops, Detections.merge([carried, remembered]), remembered

    def _areas(self, boxes: np.ndarray, change: gating.Change) -> np.ndarray:
        """The crops a gated frame's passes run over, for ``boxes``, areas of ``change``.

        Many scattered areas (compression grain at a new GOP, stray cells): a fully convolutional
        model's cost follows its crops' pixels, so they merge only where cheaper. A fixed-input
        model's windows centred on each would cost more than tiling the box around them all, and
        small plates are found or not by where a window puts them: the box around every changed
        area, settled ones too, so its windows stay where they were before looks were remembered
        (rain, snow: rare).
        """
        if len(boxes) <= gating.MAX_AREAS:
            return boxes
        return change.around_all if self.fixed_input else gating.merge_crops(boxes)

    def _count_gated(self, crops: np.ndarray, height: int, width: int) -> None:
        """Count the pixels a gated frame's passes run over (``crops``) and of the whole frame."""
        self.stats["changed_px"] += int(gating.covered_px(crops, (width, height)))
        self.stats["frame_px"] += width * height

    def _gated_passes(self, full: bool, crops: np.ndarray, height: int, width: int) -> list[Pass]:
        """The passes of a gated frame (a still camera): the full plan's resolution over what changed.

        On every detector frame, full or not, the changed areas are seen as the full plan sees
        them: a small face crossing a 1080p frame at 80 px a frame is 9 px in the 640 px dense
        pass and gone before the next full frame. A fully convolutional model runs the full plan's
        passes cut to the changed areas (the cost follows the changed area, never above the full
        plan's). A fixed-input model runs windows of its input size at the full plan's finest view
        over them (as many as the changed area needs, never more than the full plan's passes; with its
        dense pass where a changed area is large), on full frames the full plan itself and its
        closer look (``video_zoom``).
        """
        plan = self.detector.plan(height, width, video=True)
        self.looked_closer = False
        if not self.fixed_input:
            return restrict(plan, crops, None)
        if full:
            passes = restrict(plan, crops, self.fixed_input)
            if self.spec.video_zoom > 1:
                # Part of the full plan: between two full frames the tracker carries what it found.
                passes += self._closer(plan, crops, height, width)
            return passes
        passes = self._finest(plan, crops, height, width)
        if self.spec.video_zoom > 1 and self.spec.video_zoom_every_frame and len(crops):
            share = self.spec.video_zoom_max_share
            if share < 1 and gating.covered_px(crops, (width, height)) > share * width * height:
                self.stats["zoom_capped"] += 1  # most of the frame changed: the full plan's frames look closer
                return passes
            # A 12-40 px plate crossing a 1080p frame is 6-20 px at the finest view and gone
            # before the next full frame; at the closer look on every detector frame it is found
            # more often (docs/recall.md, "Plates no pass finds").
            passes += self._closer(plan, crops, height, width)
        return passes

    def _closer(self, plan: list[Pass], crops: np.ndarray, height: int, width: int) -> list[Pass]:
        """The closer look's windows over ``crops`` (``video_zoom`` times the finest view)."""
        zoom = self.spec.video_zoom * finest_view(plan, self.spec, self.fixed_input or 0, height, width)
        self.stats["zoomed"] += 1
        self.looked_closer = True
        return zoom_windows(crops, zoom, self.fixed_input or 0, height, width)

    def _finest(self, plan: list[Pass], crops: np.ndarray, height: int, width: int) -> list[Pass]:
        """A gated frame off the full plan: windows at the full plan's finest view over ``crops``."""
        view = finest_view(plan, self.spec, self.fixed_input, height, width)
        windows = zoom_windows(crops, view, self.fixed_input, height, width) if len(crops) else []
        if len(windows) >= len(plan):
            return restrict(plan, crops, self.fixed_input)
        # A changed area wider than half a window may be a plate filmed from up close, which the
        # windows show too large to recognise: the dense pass (the whole frame, smaller) runs too.
        sides = crops[:, 2:] - crops[:, :2] if len(crops) else np.zeros((0, 2), np.float32)
        if len(sides) and float(sides.max()) * view > self.fixed_input / 2:
            windows = [dense_pass(height, width, self.spec, self.fixed_input), *windows]
        return windows

    def refreshed(self, found: Detections) -> None:
        """Record what a refresh found: unchanged regions keep it until the next refresh."""
        self.kept = found
        self.memory, self._look = Detections.empty(), None
