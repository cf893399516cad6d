"""The video path as stages: read -> detect -> track (bounded look-ahead) -> mask; the caller writes.

Each stage is one object with one method, ``__call__(frames) -> frames``, over ``Frame`` items
flowing one way. ``anonymizer.stream.run`` chains them, sequentially or threaded.

Memory stays flat in the clip's duration and small at any resolution: the tracker's look-ahead
window holds detections, never pictures. The frames are decoded twice, side by side: once ahead,
for detection, and once behind the tracker, for masking (decoding costs little beside detection,
and holding a window of 4K frames would cost gigabytes). The second decode must give the same
frames, pts for pts, or the job fails.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import av
import cv2
import numpy as np

from anonymizer.config import LimitsSpec, TrackSpec
from anonymizer.detect import gating
from anonymizer.detect.multiscale import ClassDetector, scaled_image
from anonymizer.detect.schedule import ClassSchedule
from anonymizer.detect.text import VideoTextCue, add_text_candidates
from anonymizer.detections import Detections
from anonymizer.errors import MediaError
from anonymizer.mask.maskers import Masker
from anonymizer.media.video import DecodedFrame, frame_rotation, iter_frames
from anonymizer.stream.run import Cancelled, prefetch
from anonymizer.track.window import ClassTrack, WindowTracker


@dataclass
class Frame:
    """One decoded frame on its way through the stages.

    Attributes:
        index, pts: the frame's position in the stream and its timestamp.
        size: stored width and height.
        rotation: display rotation of the clip, from its first frame.
        rgb: the upright picture detection runs on; dropped once detected.
        blocks: block means for fixed-camera gating (``gating.block_means``), or None.
        found: per class, what the detector found (None: the class did not run on this frame).
        regions: padded, clipped regions to mask, once tracked.
        time_s: seconds from the first frame (what a sidecar's time ranges refer to).
        text_areas: where the plates' text cue looks on this frame (source px), or None.
        scaled: ``rgb`` already shrunk to the scales the detectors' plans cut passes from
            (``Prescale``), or None; dropped with ``rgb``.
    """

    index: int
    pts: int | None
    size: tuple[int, int]
    rotation: int = 0
    rgb: np.ndarray | None = None
    blocks: np.ndarray | None = None
    found: dict[str, Detections | None] = field(default_factory=dict)
    regions: Detections | None = None
    time_s: float | None = None
    text_areas: np.ndarray | None = None
    scaled: dict[float, np.ndarray] | None = None


class Overlay(Protocol):
    """The operator's masks on each frame (anonymizer.stream.timeline.Overlay)."""

    def select(self, index: int, time_s: float | None, dets: Detections) -> Detections: ...

    def shapes_at(self, index: int, time_s: float | None) -> list[tuple[np.ndarray, str]]: ...

    def paint(self, image: np.ndarray, shapes: list[tuple[np.ndarray, str]]) -> np.ndarray: ...


def _seconds_from(first: list[float | None], time: float | None) -> float | None:
    """``time`` relative to the first frame's (kept in ``first``): a clip may start at pts > 0."""
    if time is None:
        return None
    if first[0] is None:
        first[0] = time
    return time - first[0]


class Prescale:
    """The whole-frame shrinks a frame's detectors will cut passes from, made ahead of them.

    A plan's passes at a scale below 1 (``cctv-fast``'s faces at 0.67, the plates' zoom-out at
    0.5) are cut from the whole frame resized to that scale, on every frame that runs them, even
    when gating leaves a few small crops: at 1080p the 0.67 resize takes 11 ms, a sixth of
    ``cctv-fast``'s detect thread on a fixed camera (docs/benchmarks.md, ninth session). Made on
    the reader's thread, which has time to spare while the detector works, by the same function
    (``multiscale.scaled_image``), so detection sees the same pixels.

    Only what the frame will use, as far as the reader can tell ahead of the schedule: on a
    class's cadence frames, its plan's scales on the frames the cadence gives the full plan, and
    on the others the scales its last frame off the full plan ran (a still camera's gated passes
    run the plan's scales over the changed areas; a moving camera's dense pass runs none of
    them). ``Detect`` reports each planned frame (``ran``). A guess that misses costs a resize on
    the spare thread, or leaves one to the detector as before; it never changes a pixel. (The
    full-plan guess counts cadence frames; the schedule also counts a shaking camera's extra
    frames, so after a shake the guess may be off by some frames: a cost in time only.)
    """

    def __init__(self, detectors: dict[str, ClassDetector]) -> None:
        self.detectors = detectors
        self._plans: dict[tuple[int, int], dict[str, frozenset[float]]] = {}
        self._between: dict[str, frozenset[float]] = {}  # per class: what its last frame off the full plan ran

    def ran(self, name: str, full: bool, passes: list) -> None:
        """Called by ``Detect`` with each frame's planned passes for class ``name``. A gated frame
        where nothing changed runs none, and the next ones get no shrink until one runs passes
        again: a quiet fixed camera (most of a CCTV archive) would otherwise pay 11 ms a frame
        for shrinks nobody cuts from."""
        if not full:
            self._between[name] = frozenset(p.scale for p in passes if p.scale < 1)

    def __call__(self, index: int, rgb: np.ndarray) -> dict[float, np.ndarray] | None:
        height, width = rgb.shape[:2]
        plans = self._plans.get((height, width))
        if plans is None:
            plans = self._plans[(height, width)] = {
                name: frozenset(p.scale for p in d.plan(height, width, video=True) if p.scale < 1)
                for name, d in self.detectors.items()
            }
        scales: set[float] = set()
        for name, d in self.detectors.items():
            every = d.spec.every_n_frames
            if index % every or not plans[name]:
                continue
            full = (index // every) % d.spec.video_full_every == 0
            scales |= plans[name] if full else plans[name] & self._between.get(name, frozenset())
        return {scale: scaled_image(rgb, scale) for scale in sorted(scales)} or None


class Read:
    """Decode every frame, check its size, and convert the frames a detector will see.

    Runs on the decoder's thread when threaded, so colour conversion (and ``prescale``'s
    resizes) overlap inference.
    """

    def __init__(
        self,
        src: Path,
        limits: LimitsSpec,
        size: tuple[int, int],
        wanted: Callable[[int], bool],
        *,
        blocks: bool,
        hwaccel: bool = False,
        prescale: Prescale | None = None,
    ) -> None:
        self.src, self.limits, self.size, self.wanted, self.blocks = src, limits, size, wanted, blocks
        self.prescale = prescale
        self.hwaccel = hwaccel  # decode on the CUDA device when there is one (media.video.iter_frames)
        self.seconds = 0.0  # decoding and conversion, not the consumer's time
        self.frames = 0
        self.last_time: float | None = None
        self.rotation = 0

    def __iter__(self) -> Iterator[Frame]:
        rotation = 0
        first: list[float | None] = [None]
        clock = time.perf_counter()
        for decoded in iter_frames(self.src, self.limits, hwaccel=self.hwaccel):
            if decoded.index == 0:
                rotation = self.rotation = frame_rotation(decoded.frame)
            if (decoded.frame.width, decoded.frame.height) != self.size:
                raise MediaError("frame size changes mid-stream; refusing rather than masking the wrong pixels")
            self.frames, self.last_time = decoded.index + 1, decoded.frame.time
            frame = Frame(decoded.index, decoded.pts, self.size, rotation, time_s=_seconds_from(first, decoded.frame.time))
            if self.wanted(decoded.index):
                # Detect on the picture as it is displayed: a phone clip stored sideways shows
                # sideways faces, which face detectors miss.
                frame.rgb = display_upright(decoded.rgb(), rotation)
                if self.blocks:
                    frame.blocks = gating.block_means(cv2.cvtColor(frame.rgb, cv2.COLOR_RGB2GRAY))
                if self.prescale is not None:
                    frame.scaled = self.prescale(decoded.index, frame.rgb)
            self.seconds += time.perf_counter() - clock
            yield frame
            clock = time.perf_counter()


class Detect:
    """Run each class's scheduled passes (cadence, gating) on the frames it wants.

    Frames are taken ``batch`` at a time so a batching (GPU) detector gets the passes of several
    frames in one call. Batching never changes what is found: each frame is planned after the one
    before it, as one by one (a shake seen on a frame makes the next one wanted), and a refresh
    is detected before the frames after it are planned (they carry what it finds).
    ``done`` counts the frames detected and ``finished`` says every frame was: the job's progress
    (the leading edge, where the time goes; the tracker holds frames back for its look-ahead).
    ``cancel`` is checked after every inference call: a 4K frame's passes take seconds, and a
    stopped job must not wait for them.
    ``text``: the plates' text cue (``detect.plate_text.video``): on the plate frames it picks,
    its plate-shaped text regions are added to the plate detections (before a refresh keeps them),
    never replacing one.
    """

    def __init__(
        self,
        detectors: dict[str, ClassDetector],
        *,
        gate: bool,
        refresh_frames: int,
        batch: int = 1,
        cancel: threading.Event | None = None,
        text: VideoTextCue | None = None,
        prescale: Prescale | None = None,
    ) -> None:
        # A look's carried boxes are known once the frame before it found its own: frames planned
        # in batches compare with the refresh only.
        self.schedules = {
            name: ClassSchedule(d, gate=gate, refresh_frames=refresh_frames, remember=batch == 1) for name, d in detectors.items()
        }
        self.prescale = prescale  # told what each frame ran, to guess what the next ones will
        self.text = text if "plate" in self.schedules else None
        if self.text is not None:
            self.schedules["plate"].stats["text"] = 0  # plate frames the text cue ran on
        self.text_seconds = 0.0
        self.batch = batch
        self.cancel = cancel
        self.seconds = 0.0
        self.done = 0
        self.passes = 0  # inference calls made: a 4K frame's passes take seconds (liveness)
        self.finished = False

    def __call__(self, frames: Iterator[Frame]) -> Iterator[Frame]:
        pending: list[Frame] = []
        for frame in frames:
            pending.append(frame)
            if len(pending) >= self.batch:
                yield from self._detect(pending)
                pending = []
        yield from self._detect(pending)
        self.finished = True

    def _check(self, *_: int) -> None:
        self.passes += 1
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled()

    def _detect(self, frames: list[Frame]) -> list[Frame]:
        start = time.perf_counter()
        for name, schedule in self.schedules.items():
            for f in frames:
                f.found[name] = None
            planned: list[tuple[Frame, tuple[list, Detections, bool]]] = []
            for f in frames:
                # Frames the reader converted only: a shaking camera asks for more frames than the
                # cadence, which the reader knows of only where another class wants them too.
                if f.rgb is None or not schedule.wants(f.index):
                    continue
                planned.append((f, schedule.plan(f.index, f.rgb, f.blocks)))
                if self.prescale is not None:
                    self.prescale.ran(name, schedule.last_full, planned[-1][1][0])
                if self.text is not None and name == "plate":
                    f.text_areas = self.text.areas(
                        f.rgb, full=schedule.last_full, refresh=planned[-1][1][2], crops=schedule.last_crops
                    )
                if planned[-1][1][2]:  # a refresh: the frames after it carry what it finds
                    self._run(name, schedule, planned)
                    planned = []
            self._run(name, schedule, planned)
        for f in frames:
            # Masking decodes the frame again: free the picture and its block means now, or the
            # tracker's look-ahead would hold half a megabyte per 4K frame it waits on.
            f.rgb = f.blocks = f.scaled = None
        self.seconds += time.perf_counter() - start
        self.done += len(frames)
        return frames

    def _run(self, name: str, schedule: ClassSchedule, planned: list[tuple[Frame, tuple[list, Detections, bool]]]) -> None:
        """Detect the planned passes of several frames in one batch and store what each found."""
        if not planned:
            return
        images = [f.rgb for f, _ in planned]
        passes = schedule.detector.detect_passes(
            images,  # type: ignore[arg-type]
            video=True,
            plans=[plan for _, (plan, _, _) in planned],
            progress=self._check,
            scaled=[f.scaled for f, _ in planned],
        )
        for (f, (_, carried, refresh)), found in zip(planned, passes):
            dets = schedule.detector.merge_passes(found)
            if self.text is not None and name == "plate" and f.text_areas is not None:
                started = time.perf_counter()
                dets = add_text_candidates(dets, self.text.candidates(f.rgb, f.text_areas))  # type: ignore[arg-type]
                self.text_seconds += time.perf_counter() - started
                schedule.stats["text"] += 1
                f.text_areas = None
                self._check()
            if refresh:
                schedule.refreshed(dets)
            else:
                schedule.looked_at(dets)
            f.found[name] = boxes_to_stored(Detections.merge([dets, carried]), f.rotation, *f.size)


class Track:
    """Track each class over a bounded look-ahead window; frames leave with their regions."""

    def __init__(
        self,
        spec: TrackSpec,
        classes: dict[str, ClassTrack],
        regions: Callable[[Detections, tuple[int, int]], Detections],
        overlay: Overlay | None = None,
        frame_size: tuple[int, int] | None = None,
    ) -> None:
        # frame_size: the stored frame's (width, height), the boxes' frame (Frame.size): the
        # tracker follows objects that its border cuts.
        self.tracker = WindowTracker(spec, classes, frame_size=frame_size)
        self.regions = regions
        self.overlay = overlay
        self.seconds = 0.0

    def __call__(self, frames: Iterator[Frame]) -> Iterator[Frame]:
        held: deque[Frame] = deque()
        for frame in frames:
            held.append(frame)
            start = time.perf_counter()
            settled = self.tracker.push(frame.found)
            self.seconds += time.perf_counter() - start
            yield from self._release(held, settled)
        start = time.perf_counter()
        settled = self.tracker.finish()
        self.seconds += time.perf_counter() - start
        yield from self._release(held, settled)

    def _release(self, held: deque[Frame], settled: list[dict[str, Detections]]) -> Iterator[Frame]:
        for per_class in settled:
            frame = held.popleft()
            dets = Detections.merge(list(per_class.values()))
            if self.overlay is not None:
                # Exclusions judge the tracked boxes themselves, before padding: a face wholly
                # inside a poster's box is excluded even if its padded mask would cross the edge.
                dets = self.overlay.select(frame.index, frame.time_s, dets)
            frame.regions = self.regions(dets, frame.size)
            frame.found = {}
            yield frame


class Mask:
    """Decode the clip a second time, behind the tracker, and mask each frame's regions.

    Yields (frame to encode, its pts, its regions). The second decode must match the first frame
    for frame (count and pts): a source that changed while being processed fails the job.
    """

    def __init__(
        self,
        src: Path,
        limits: LimitsSpec,
        masker: Masker,
        *,
        threaded: bool = True,
        overlay: Overlay | None = None,
        hwaccel: bool = False,
    ) -> None:
        self.src, self.limits, self.masker, self.threaded = src, limits, masker, threaded
        self.overlay, self.hwaccel = overlay, hwaccel
        self.seconds = 0.0  # masking (the second decode runs on its own thread when threaded)

    def __call__(self, frames: Iterator[Frame]) -> Iterator[tuple[av.VideoFrame | np.ndarray, int | None, Detections]]:
        decoded_frames = iter_frames(self.src, self.limits, hwaccel=self.hwaccel)
        source = prefetch(decoded_frames, 2, "decode-mask") if self.threaded else decoded_frames
        try:
            for f in frames:
                decoded = next(source, None)
                if decoded is None or decoded.index != f.index or decoded.pts != f.pts:
                    raise MediaError("source changed while being processed (the second decode differs)")
                start = time.perf_counter()
                shapes = self.overlay.shapes_at(f.index, f.time_s) if self.overlay is not None else []
                masked = self._mask(decoded, f.regions if f.regions is not None else Detections.empty(), shapes)
                self.seconds += time.perf_counter() - start
                yield masked
            if next(source, None) is not None:
                raise MediaError("source changed while being processed (more frames on the second decode)")
        finally:
            source.close()

    def _mask(
        self, decoded: DecodedFrame, regions: Detections, shapes: list | None = None
    ) -> tuple[av.VideoFrame | np.ndarray, int | None, Detections]:
        frame = decoded.frame
        if shapes and self.overlay is not None:
            # Manual regions (polygons) are painted on RGB: a frame that has them skips the
            # yuv420p fast path; the detections are masked first, the manual regions on top.
            rgb = self.masker.apply(decoded.rgb(), regions) if len(regions) else decoded.rgb()
            return self.overlay.paint(rgb, shapes), decoded.pts, regions
        if not len(regions):
            return frame, decoded.pts, regions
        if frame.format.name == "nv12":
            # What NVDEC's frames download as: one plane shuffle (swscale) keeps the masking on
            # the yuv420p planes instead of two colour conversions through RGB.
            frame = frame.reformat(format="yuv420p")
        if frame.format.name == "yuv420p" and frame.width % 2 == 0 and frame.height % 4 == 0:
            # PyAV packs each chroma plane into H/4 rows of W: exact only when 4 | H.
            yuv = self.masker.apply_yuv420(frame.to_ndarray(), regions)
            return av.VideoFrame.from_ndarray(yuv, format="yuv420p"), decoded.pts, regions
        return self.masker.apply(decoded.rgb(), regions), decoded.pts, regions


def display_upright(rgb: np.ndarray, rotation: int) -> np.ndarray:
    """Rotate stored pixels counter-clockwise by ``rotation`` degrees, as a player displays them."""
    k = (rotation // 90) % 4
    return np.ascontiguousarray(np.rot90(rgb, k)) if k else rgb


def boxes_to_stored(dets: Detections, rotation: int, width: int, height: int) -> Detections:
    """Map boxes found on ``display_upright`` pixels back to the stored frame's pixels."""
    k = (rotation // 90) % 4
    if not k or not len(dets):
        return dets
    w, h = width, height
    x1, y1, x2, y2 = dets.xyxy.T
    if k == 1:  # rot90: displayed (x', y') is stored (w - y', x')
        xs, ys = (w - y2, w - y1), (x1, x2)
    elif k == 2:
        xs, ys = (w - x2, w - x1), (h - y2, h - y1)
    else:  # k == 3: displayed (x', y') is stored (y', h - x')
        xs, ys = (y1, y2), (h - x2, h - x1)
    return dets.with_xyxy(np.stack([xs[0], ys[0], xs[1], ys[1]], axis=1))
