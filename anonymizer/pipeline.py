"""One job: read -> detect -> track -> regions -> mask -> write, for a photo or a video.

``Engine`` loads the detectors once; ``Engine.process(src, dst)`` anonymizes one file. Output is
written under a temporary name beside ``dst`` and renamed only when complete, so a failed job
never leaves a partial file; the daemon and the CLI both call exactly this.
"""

from __future__ import annotations

import os
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import av
import numpy as np

from anonymizer.config import Profile
from anonymizer.detect.factory import build_detectors
from anonymizer.detections import CLASS_IDS, CLASS_NAMES, DETECTED, FACE, PLATE, Detections
from anonymizer.errors import JobError, MediaError
from anonymizer.mask.maskers import Masker
from anonymizer.mask.regions import pad_and_clip
from anonymizer.media.image import read_photo, write_photo
from anonymizer.media.sniff import check_image_header, expected_suffixes, sniff
from anonymizer.media.video import (
    OPEN_OPTIONS,
    DecodedFrame,
    VideoWriter,
    check_complete,
    frame_rotation,
    iter_frames,
    probe_video,
)
from anonymizer.track.linker import track_and_fill

TEMP_PREFIX = ".anonymizer-"
TEMP_MARK = ".partial"
ProgressFn = Callable[[str, int, int], None]
T = TypeVar("T")


@dataclass
class ClassCounts:
    detections: int = 0
    tracks: int = 0
    regions: int = 0
    masked_frames: int = 0


@dataclass
class JobResult:
    """What a job did, for the audit record: counts and identities, never coordinates or names."""

    kind: str
    models: list[dict[str, str]]
    profile_sha256: str
    device: str
    width: int = 0
    height: int = 0
    frames: int = 0
    duration_s: float = 0.0
    audio: str = "none"
    counts: dict[str, ClassCounts] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    output_path: Path | None = None  # not part of the summary: a path may name a person

    def summary(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "models": self.models,
            "profile_sha256": self.profile_sha256,
            "device": self.device,
            "width": self.width,
            "height": self.height,
            "frames": self.frames,
            "duration_s": round(self.duration_s, 3),
            "audio": self.audio,
            "counts": {name: vars(c) for name, c in self.counts.items()},
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
        }


def is_temp_name(name: str) -> bool:
    """True for the engine's own temporary outputs (a crash mid-job leaves them behind)."""
    return name.startswith(TEMP_PREFIX) and TEMP_MARK in name


def temp_path_for(dst: Path) -> Path:
    """A hidden temporary name in ``dst``'s folder (same filesystem, so the rename is atomic)."""
    return dst.parent / f"{TEMP_PREFIX}{uuid.uuid4().hex[:12]}{TEMP_MARK}{dst.suffix.lower()}"


def fsync_and_rename(tmp: Path, dst: Path) -> None:
    """Flush ``tmp`` to disk, rename it to ``dst`` and flush the folder entry."""
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, dst)
    dir_fd = os.open(dst.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def prefetch(items: Iterable[T], depth: int = 8) -> Iterator[T]:
    """Run an iterator (a decoder) on its own thread, ``depth`` items ahead of the consumer.

    An exception in the producer is re-raised in the consumer; abandoning the generator stops it.
    """
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    end = object()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put((item, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put((end, None))
        except BaseException as exc:  # handed to the consumer, which re-raises it
            q.put((end, exc))

    thread = threading.Thread(target=produce, name="decoder", daemon=True)
    thread.start()
    try:
        while True:
            item, exc = q.get()
            if item is end:
                if exc is not None:
                    raise exc
                return
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            try:
                q.get_nowait()
            except queue.Empty:
                thread.join(0.05)


class Engine:
    """Detectors, tracker settings and masker for one profile; reusable across many files."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.detectors, infos, self.device = build_detectors(profile.detect)
        self.models = [info.as_audit() for info in infos]
        self.masker = Masker(profile.mask)
        self.class_specs = {FACE: profile.detect.faces, PLATE: profile.detect.plates}
        self.batch = 8 if self.device == "cuda" else 1

    # ------------------------------------------------------------------ pure, on arrays

    def detect_image(self, rgb: np.ndarray, progress: ProgressFn | None = None) -> Detections:
        """Raw detections of every enabled class in one RGB image (source pixels, unpadded).

        ``progress("detect <class>", crops done, crops in all)`` follows each inference call, so
        a photo that takes minutes reports progress (and can be stopped) like a video does.
        A class whose ``cascade`` is enabled runs its expensive passes only where its cheap pass
        saw candidates (anonymizer.detect.cascade); the others run every pass of their plan.
        """
        from anonymizer.detect.cascade import detect_cascade

        found = []
        for name, detector in self.detectors.items():
            report = None
            if progress is not None:
                stage = f"detect {name}"

                def report(done: int, total: int, stage: str = stage) -> None:
                    progress(stage, done, total)

            if detector.spec.cascade.enabled:
                found.append(detect_cascade(detector, detector.spec.cascade, rgb, progress=report)[0])
            else:
                found.append(detector.detect_many([rgb], progress=report)[0])
        return Detections.merge(found)

    def regions(self, dets: Detections, frame_wh: tuple[int, int], *, video: bool = False) -> Detections:
        """The padded, clipped regions that get masked for these detections (of a video frame)."""
        return pad_and_clip(dets, self.class_specs, frame_wh, ellipse=self.profile.mask.shape == "ellipse", video=video)

    def anonymize_image(self, rgb: np.ndarray) -> tuple[np.ndarray, Detections]:
        """Return (masked copy of ``rgb``, the regions masked)."""
        regions = self.regions(self.detect_image(rgb), (rgb.shape[1], rgb.shape[0]))
        return self.masker.apply(rgb.copy(), regions), regions

    # ------------------------------------------------------------------ files

    def process(
        self, src: Path, dst: Path, progress: ProgressFn | None = None, *, follow_symlinks: bool = False
    ) -> JobResult:
        """Anonymize ``src`` into ``dst``. Raise MediaError for unusable input.

        The format is decided by content, not by name: when ``dst``'s suffix does not fit the
        content (a video named .jpg), the right suffix is appended; ``result.output_path`` says
        where the output went. Nothing exists there unless the whole job succeeded.
        """
        src, dst = Path(src), Path(dst)
        sniffed = sniff(src, max_file_bytes=self.profile.limits.max_file_bytes, follow_symlinks=follow_symlinks)
        if dst.suffix.lower() not in expected_suffixes(sniffed.format):
            dst = dst.with_name(dst.name + sniffed.suffix)
        tmp = temp_path_for(dst)
        try:
            if sniffed.kind == "image":
                result = self._process_photo(src, tmp, progress)
            else:
                result = self._process_video(src, tmp, progress)
            fsync_and_rename(tmp, dst)
        finally:
            tmp.unlink(missing_ok=True)
        result.output_path = dst
        return result

    def _result(self, kind: str) -> JobResult:
        counts = {name: ClassCounts() for name in self.detectors}
        return JobResult(kind, self.models, self.profile.sha256, self.device, counts=counts)

    def _count(self, result: JobResult, regions: Detections, raw: Detections | None) -> None:
        for name in self.detectors:
            cid = CLASS_IDS[name]
            c = result.counts[name]
            n_regions = int(np.count_nonzero(regions.class_id == cid))
            c.regions += n_regions
            c.masked_frames += 1 if n_regions else 0
            if raw is not None:
                c.detections += int(np.count_nonzero(raw.class_id == cid))

    def _process_photo(self, src: Path, tmp: Path, progress: ProgressFn | None = None) -> JobResult:
        t0 = time.perf_counter()
        result = self._result("image")
        check_image_header(src, self.profile.limits.max_pixels)
        photo = read_photo(src, self.profile.limits)
        t1 = time.perf_counter()
        raw = self.detect_image(photo.rgb, progress)
        t2 = time.perf_counter()
        regions = self.regions(raw, (photo.rgb.shape[1], photo.rgb.shape[0]))
        masked = self.masker.apply(photo.rgb, regions)
        write_photo(photo, masked, tmp, self.profile.output)
        t3 = time.perf_counter()
        self._count(result, regions, raw)
        for name in self.detectors:
            result.counts[name].tracks = result.counts[name].detections
        result.height, result.width = photo.rgb.shape[:2]
        result.frames = 1
        result.timings = {"decode_s": t1 - t0, "detect_s": t2 - t1, "mask_encode_s": t3 - t2, "total_s": t3 - t0}
        return result

    def _process_video(self, src: Path, tmp: Path, progress: ProgressFn | None) -> JobResult:
        t0 = time.perf_counter()
        profile = self.profile
        info = probe_video(src, profile.limits)
        result = self._result("video")
        result.width, result.height = info.width, info.height
        total = info.frames_declared or int((info.duration_s or 0) * (info.fps or 0))

        # Pass 1: decode everything (proves the file complete before anything is written) and
        # detect on every n-th frame per class.
        per_class: dict[str, list[Detections | None]] = {name: [] for name in self.detectors}
        rotation, n_frames, last_time = 0, 0, None
        detect_s = 0.0
        pending: list[tuple[int, np.ndarray]] = []

        def flush() -> None:
            nonlocal detect_s
            t = time.perf_counter()
            for name, detector in self.detectors.items():
                every = self.class_specs[CLASS_IDS[name]].every_n_frames
                wanted = [(i, rgb) for i, rgb in pending if i % every == 0]
                found = detector.detect_many([rgb for _, rgb in wanted], video=True) if wanted else []
                found = [boxes_to_stored(d, rotation, (info.width, info.height)) for d in found]
                by_index = dict(zip((i for i, _ in wanted), found))
                for i, _ in pending:
                    per_class[name].append(by_index.get(i))
            detect_s += time.perf_counter() - t
            pending.clear()

        everies = [self.class_specs[CLASS_IDS[name]].every_n_frames for name in self.detectors]

        def decode_for_detection() -> Iterator[tuple[DecodedFrame, np.ndarray | None]]:
            # Runs on the decoder thread, so colour conversion overlaps with inference.
            rotation = 0
            for decoded in iter_frames(src, profile.limits):
                if decoded.index == 0:
                    rotation = frame_rotation(decoded.frame)
                if not any(decoded.index % every == 0 for every in everies):
                    yield decoded, None  # no detector runs on this frame: skip the conversion
                else:
                    # Detect on the picture as it is displayed: a phone clip stored sideways
                    # shows sideways faces, which face detectors miss.
                    yield decoded, display_upright(decoded.rgb(), rotation)

        for decoded, rgb in prefetch(decode_for_detection()):
            if decoded.index == 0:
                rotation = frame_rotation(decoded.frame)
            if decoded.frame.width != info.width or decoded.frame.height != info.height:
                raise MediaError("frame size changes mid-stream; refusing rather than masking the wrong pixels")
            n_frames, last_time = decoded.index + 1, decoded.frame.time
            pending.append((decoded.index, rgb))
            if len(pending) >= self.batch:
                flush()
            if progress:
                progress("detect", n_frames, total)
        flush()
        check_complete(info, n_frames, last_time)
        t1 = time.perf_counter()

        # Track each class on its own (their detectors may run at different rates), then merge.
        per_frame: list[list[Detections]] = [[] for _ in range(n_frames)]
        for name, frames in per_class.items():
            spec = self.class_specs[CLASS_IDS[name]]
            confident = spec.threshold if spec.track_threshold is not None else None
            filled, n_tracks = track_and_fill(frames, profile.track, spec.every_n_frames, confident)
            result.counts[name].tracks = n_tracks
            result.counts[name].detections = sum(int(np.count_nonzero(d.source == DETECTED)) for d in filled)
            for i, dets in enumerate(filled):
                per_frame[i].append(dets)
        regions = [self.regions(Detections.merge(parts), (info.width, info.height), video=True) for parts in per_frame]
        t2 = time.perf_counter()

        # Pass 2: decode again, mask, encode; audio packets are copied untouched.
        writer = VideoWriter(src, tmp, profile.output, info, rotation=rotation)
        try:
            written = 0
            for decoded in prefetch(iter_frames(src, profile.limits)):
                if decoded.index >= n_frames:
                    raise MediaError("source changed while being processed (more frames on second read)")
                frame_regions = regions[decoded.index]
                self._count(result, frame_regions, None)
                frame = decoded.frame
                if not len(frame_regions):
                    writer.write(frame, decoded.pts)
                elif frame.format.name == "yuv420p" and frame.width % 2 == 0 and frame.height % 4 == 0:
                    # PyAV packs each chroma plane into H/4 rows of W: exact only when 4 | H.
                    yuv = self.masker.apply_yuv420(frame.to_ndarray(), frame_regions)
                    writer.write(av.VideoFrame.from_ndarray(yuv, format="yuv420p"), decoded.pts)
                else:
                    writer.write(self.masker.apply(decoded.rgb(), frame_regions), decoded.pts)
                written += 1
                if progress:
                    progress("encode", written, n_frames)
            if written != n_frames:
                raise MediaError(f"source changed while being processed ({written} of {n_frames} frames on second read)")
            writer.close()
        except BaseException:
            writer.abort()
            raise
        if profile.output.audio == "drop" or not info.has_audio:
            result.audio = "dropped" if info.has_audio else "none"
        else:
            result.audio = "copied" if writer.audio_streams_dropped == 0 else "partly dropped (container)"
        verify_video(tmp, n_frames)
        t3 = time.perf_counter()
        result.frames = n_frames
        result.duration_s = float(last_time or 0.0) + (1.0 / info.fps if info.fps else 0.0)
        result.timings = {"detect_pass_s": t1 - t0, "detect_s": detect_s, "track_s": t2 - t1, "encode_pass_s": t3 - t2, "total_s": t3 - t0}
        return result


def display_upright(rgb: np.ndarray, rotation: int) -> np.ndarray:
    """Rotate stored pixels counter-clockwise by ``rotation`` degrees, as a player displays them."""
    k = (rotation // 90) % 4
    return np.ascontiguousarray(np.rot90(rgb, k)) if k else rgb


def boxes_to_stored(dets: Detections, rotation: int, stored_wh: tuple[int, int]) -> Detections:
    """Map boxes found on ``display_upright`` pixels back to the stored frame's pixels."""
    k = (rotation // 90) % 4
    if not k or not len(dets):
        return dets
    w, h = stored_wh
    x1, y1, x2, y2 = dets.xyxy.T
    if k == 1:  # rot90: displayed (x', y') is stored (w - y', x')
        xs, ys = (w - y2, w - y1), (x1, x2)
    elif k == 2:
        xs, ys = (w - x2, w - x1), (h - y2, h - y1)
    else:  # k == 3: displayed (x', y') is stored (y', h - x')
        xs, ys = (y1, y2), (h - x2, h - x1)
    return dets.with_xyxy(np.stack([xs[0], ys[0], xs[1], ys[1]], axis=1))


def verify_video(path: Path, expected_frames: int) -> None:
    """Re-open a written video and count its video packets; raise JobError on any mismatch."""
    try:
        with av.open(str(path), options=dict(OPEN_OPTIONS)) as container:
            stream = container.streams.video[0]
            count = sum(1 for p in container.demux(stream) if p.size)
    except (av.error.FFmpegError, IndexError) as exc:
        # strerror only: an FFmpeg error's str() quotes the path, and paths may name people.
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise JobError(f"written output cannot be re-opened: {reason}") from exc
    if count != expected_frames:
        raise JobError(f"written output has {count} frames, expected {expected_frames}")


__all__ = ["Engine", "JobResult", "TEMP_PREFIX", "TEMP_MARK", "CLASS_NAMES", "fsync_and_rename", "verify_video"]
