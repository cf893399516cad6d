"""One job: read -> detect -> track -> regions -> mask -> write, for a photo or a video.

A video streams through the stages of ``anonymizer.stream`` in one decode; a photo is detected,
masked and written in one go.

``Engine`` loads the detectors once; ``Engine.process(src, dst)`` anonymizes one file. Output is
written under a temporary name beside ``dst``, verified, and renamed only when complete
(``anonymizer.durable``, ``anonymizer.media.verify``), so a failed job never leaves a partial
file; the daemon, the workers and the CLI all call exactly this.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from anonymizer.config import Profile
from anonymizer.detect.cascade import detect_cascade
from anonymizer.detect.factory import build_detectors, build_text_cue, plate_shape, resolve_backend, video_text_cue
from anonymizer.detect.onnx import release_shared_arena
from anonymizer.detect.text import add_text_candidates, text_candidates
from anonymizer.detections import CLASS_IDS, CLASS_NAMES, FACE, PLATE, Detections
from anonymizer.durable import fsync_and_rename, sha256_file, temp_path_for
from anonymizer.errors import MediaError
from anonymizer.jobs.run import output_name
from anonymizer.mask.maskers import Masker
from anonymizer.mask.regions import ManualMasks, pad_and_clip
from anonymizer.media.image import read_photo, write_photo
from anonymizer.media.sniff import check_image_header, expected_suffixes, sniff
from anonymizer.media.verify import verify_output
from anonymizer.media.video import VideoWriter, check_complete, probe_video
from anonymizer.stream.run import run
from anonymizer.stream.stages import Detect, Mask, Prescale, Read, Track
from anonymizer.stream.timeline import Overlay, Timeline
from anonymizer.track.window import ClassTrack

# ``progress(stage, done, total, **detail)``: called often (every frame, every inference pass,
# and every stream.run.WAIT_S while a video's stages work), also with unchanged values; what it
# raises stops the job. ``detail`` (``passes=``) says that work advanced inside a long frame.
ProgressFn = Callable[..., None]


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
    passes: dict[str, dict[str, int]] = field(default_factory=dict)  # video: frames per kind of pass
    output_path: Path | None = None  # not part of the summary: a path may name a person
    # The output as verified before it got its name (anonymizer.media.verify): what a publisher
    # checks the file against instead of decoding it again.
    output_sha256: str | None = None
    output_size: int | None = None
    # The sidecar's effect (counts, the files' SHA-256), when the job had one.
    overlay: dict[str, Any] = field(default_factory=dict)
    # Per-frame provenance for the QA report (anonymizer.review.report): in the summary as runs
    # of frames per class and the frames worth a look, never a box or a coordinate.
    timeline: Timeline | None = None

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
            **({"passes": self.passes} if self.passes else {}),
            **self.overlay,
            **({"provenance": self.timeline.provenance()} if self.timeline is not None else {}),
        }


class Engine:
    """Detectors, tracker settings and masker for one profile; reusable across many files."""

    def __init__(self, profile: Profile, *, backend: str | None = None) -> None:
        """``backend``: the built-in models' runtime (``anonymizer.detect.factory.resolve_backend``);
        None is torch on CUDA, onnxruntime on the CPU."""
        self.profile = profile
        # Photos may get another plan than video frames (profile detect.photos): built on the
        # first photo, so a video-only folder never loads a second set of detectors.
        self._photo_profile = profile.for_photos()
        self.detectors, infos, self.device = build_detectors(
            profile.detect, backend=backend, photos=self._photo_profile is profile
        )
        self.backend = resolve_backend(self.device, backend)
        # Plate-shaped text regions are plate candidates too (anonymizer.detect.text): in photos
        # with ``detect.plate_text.enabled``, in video with ``detect.plate_text.video``.
        self.text_cue = build_text_cue(profile.detect)
        self.video_text = video_text_cue(profile.detect, self.text_cue)
        if self.text_cue is not None:
            infos = [*infos, self.text_cue.info]
        self.models = [info.as_audit() for info in infos]
        self.masker = Masker(profile.mask)
        # The video stages are the process's parallelism; OpenCV's own pool on top of them split
        # every small mask's resize across threads and spent a tenth of a panned clip's CPU
        # handing work over (docs/benchmarks.md, "OpenCV's thread pool"). Photos ran no slower.
        cv2.setNumThreads(1)
        self.class_specs = {FACE: profile.detect.faces, PLATE: profile.detect.plates}
        # A batching (torch) detector gets the passes of this many video frames per call.
        self.batch = 8 if self.backend == "torch" else 1
        # Video stages on their own threads (decode, inference, masking and encoding overlap);
        # tests may run them one after another on the calling thread.
        self.threaded = True
        self._photo_engine: Engine | None = None if self._photo_profile is not profile else self

    def _allow_inference(self, allowed: bool) -> None:
        """Let inference calls run, or end those in flight (onnxruntime's RunOptions.terminate);
        detectors without run options (torch) finish their call."""
        for detector in self.detectors.values():
            for raw in detector.raws:
                options = getattr(raw, "run_options", None)
                if options is not None:
                    options.terminate = not allowed

    @property
    def photo_engine(self) -> Engine:
        """The engine photos are processed with: this one, or one on ``profile.for_photos()``."""
        if self._photo_engine is None:
            self._photo_engine = Engine(self._photo_profile)
            self._photo_engine.threaded = self.threaded
        return self._photo_engine

    # ------------------------------------------------------------------ pure, on arrays

    def detect_image(self, rgb: np.ndarray, progress: ProgressFn | None = None) -> Detections:
        """Raw detections of every enabled class in one RGB image (source pixels, unpadded).

        ``progress("detect <class>", crops done, crops in all)`` follows each inference call, so
        a photo that takes minutes reports progress (and can be stopped) like a video does.
        A class whose ``cascade`` is enabled runs its expensive passes only where its cheap pass
        saw candidates (anonymizer.detect.cascade); the others run every pass of their plan.
        """

        found = []
        for name, detector in self.detectors.items():
            report = None
            if progress is not None:
                stage = f"detect {name}"

                def report(done: int, total: int, stage: str = stage) -> None:
                    progress(stage, done, total)

            if detector.spec.cascade.enabled:
                dets = detect_cascade(detector, detector.spec.cascade, rgb, progress=report)[0]
            else:
                dets = detector.detect_many([rgb], progress=report)[0]
            if name == "plate" and self.text_cue is not None and self.profile.detect.plate_text.enabled:
                dets = self.plate_text(rgb, dets)
            found.append(dets)
        return Detections.merge(found)

    def plate_text(self, rgb: np.ndarray, plates: Detections) -> Detections:
        """``plates`` followed by the plate-shaped text regions of a photo that no plate box covers."""

        assert self.text_cue is not None
        spec = self.profile.detect.plate_text
        xyxy, scores = self.text_cue(rgb, spec.side)
        return add_text_candidates(plates, text_candidates(xyxy, scores, rgb.shape[:2], plate_shape(spec)))

    def regions(self, dets: Detections, frame_wh: tuple[int, int], *, video: bool = False) -> Detections:
        """The padded, clipped regions that get masked for these detections (of a video frame)."""
        return pad_and_clip(dets, self.class_specs, frame_wh, ellipse=self.profile.mask.shape == "ellipse", video=video)

    def anonymize_image(self, rgb: np.ndarray) -> tuple[np.ndarray, Detections]:
        """Return (masked copy of ``rgb``, the regions masked)."""
        regions = self.regions(self.detect_image(rgb), (rgb.shape[1], rgb.shape[0]))
        return self.masker.apply(rgb.copy(), regions), regions

    # ------------------------------------------------------------------ files

    def release_memory(self) -> None:
        """Give back what CPU inference kept for reuse within a job (the shared onnxruntime arena).

        A daemon or worker calls this between jobs: the arena holds about the largest pass the
        last job ran (600 MB after a 12 MP photo) and would hold it while the folder is idle.
        GPU memory (CUDA sessions' own arenas, torch's cache) is not touched.
        """
        release_shared_arena()

    def process(
        self,
        src: Path,
        dst: Path,
        progress: ProgressFn | None = None,
        *,
        follow_symlinks: bool = False,
        masks: ManualMasks | None = None,
    ) -> JobResult:
        """Anonymize ``src`` into ``dst``. Raise MediaError for unusable input.

        ``masks``: the operator's manual regions (masked as well as every detection) and
        exclusions (see anonymizer.review.sidecar); a mask that does not fit the media raises
        ManualMasksError (a MediaError) and nothing is written.

        The format is decided by content, not by name: when ``dst``'s suffix does not fit the
        content (a video named .jpg), the right suffix is appended; ``result.output_path`` says
        where the output went. Nothing exists there unless the whole job succeeded and the
        written file verified (re-opened, every frame decodes: JobError otherwise);
        ``result.output_sha256`` and ``output_size`` identify the verified file.
        """
        src, dst = Path(src), Path(dst)
        sniffed = sniff(src, max_file_bytes=self.profile.limits.max_file_bytes, follow_symlinks=follow_symlinks)
        dst = dst.with_name(output_name(dst.name, expected_suffixes(sniffed.format), sniffed.suffix))
        tmp = temp_path_for(dst)
        try:
            if sniffed.kind == "image":
                result = self.photo_engine._process_photo(src, tmp, progress, masks)
            else:
                result = self._process_video(src, tmp, progress, masks)
            started = time.perf_counter()
            verify_output(tmp, sniffed.kind, self.profile.limits, frames=result.frames, progress=progress)
            result.output_sha256, result.output_size = sha256_file(tmp)
            result.timings["verify_s"] = time.perf_counter() - started
            fsync_and_rename(tmp, dst)
        finally:
            tmp.unlink(missing_ok=True)
        result.output_path = dst
        return result

    def _result(self, kind: str) -> JobResult:
        counts = {name: ClassCounts() for name in self.detectors}
        models = self.models
        text_runs = self.profile.detect.plate_text.enabled if kind == "image" else self.video_text is not None
        if self.text_cue is not None and not text_runs:  # the audit names the models that run
            models = [m for m in models if m["id"] != self.text_cue.info.id]
        return JobResult(kind, models, self.profile.sha256, self.device, counts=counts)

    def _count(self, result: JobResult, regions: Detections, raw: Detections | None) -> None:
        for name in self.detectors:
            cid = CLASS_IDS[name]
            c = result.counts[name]
            n_regions = int(np.count_nonzero(regions.class_id == cid))
            c.regions += n_regions
            c.masked_frames += 1 if n_regions else 0
            if raw is not None:
                c.detections += int(np.count_nonzero(raw.class_id == cid))

    def _overlay(self, masks: ManualMasks | None) -> Overlay:
        thresholds = {name: self.class_specs[CLASS_IDS[name]].threshold for name in self.detectors}
        return Overlay(masks, Timeline(thresholds, max_gap_frames=self.profile.track.max_gap_frames), self.profile.mask)

    def _process_photo(
        self, src: Path, tmp: Path, progress: ProgressFn | None = None, masks: ManualMasks | None = None
    ) -> JobResult:
        t0 = time.perf_counter()
        result = self._result("image")
        check_image_header(src, self.profile.limits.max_pixels)
        photo = read_photo(src, self.profile.limits)
        if masks:
            masks.check_fit(photo.rgb.shape[1], photo.rgb.shape[0], photo=True)
        overlay = self._overlay(masks)
        t1 = time.perf_counter()
        raw = self.detect_image(photo.rgb, progress)
        t2 = time.perf_counter()
        regions = self.regions(overlay.select(0, None, raw), (photo.rgb.shape[1], photo.rgb.shape[0]))
        masked = overlay.paint(self.masker.apply(photo.rgb, regions), overlay.shapes_at(0, None))
        write_photo(photo, masked, tmp, self.profile.output)
        t3 = time.perf_counter()
        self._count(result, regions, raw)
        for name in self.detectors:
            result.counts[name].tracks = result.counts[name].detections
        result.height, result.width = photo.rgb.shape[:2]
        result.frames = 1
        result.timings = {"decode_s": t1 - t0, "detect_s": t2 - t1, "mask_encode_s": t3 - t2, "total_s": t3 - t0}
        overlay.timeline.finish(1)
        result.timeline, result.overlay = overlay.timeline, overlay.summary()
        return result

    def _process_video(self, src: Path, tmp: Path, progress: ProgressFn | None, masks: ManualMasks | None = None) -> JobResult:
        """One decode: read -> detect -> track over a bounded window -> mask -> encode.

        The output is written under ``tmp`` while frames stream through; any error (a decode error
        mid-file, fewer frames than declared, a frame size change) aborts the job, and ``process``
        removes ``tmp``, so no output exists unless the whole file was read and written.
        """
        t0 = time.perf_counter()
        profile = self.profile
        info = probe_video(src, profile.limits)
        result = self._result("video")
        result.width, result.height = info.width, info.height
        total = info.frames_declared or int((info.duration_s or 0) * (info.fps or 0))
        if progress:
            progress("detect", 0, total)  # status shows the frame count from the job's start
        if masks:
            # Checked again once every frame is decoded: a container may declare no frame count.
            masks.check_fit(info.width, info.height, photo=False, frames=info.frames_declared or None, duration_s=info.duration_s)
        overlay = self._overlay(masks)

        # With gating, every frame is converted: a shaking fixed camera has its classes run on
        # frames their cadence skips (anonymizer.detect.schedule), decided after the reader has
        # run ahead of them.
        everies = [1] if profile.detect.gating else [self.class_specs[CLASS_IDS[name]].every_n_frames for name in self.detectors]
        # On a CUDA device, NVDEC decodes (both decodes), sparing the CPU cores for x264: the
        # H100/H200 have no NVENC. Anywhere else, or for a codec NVDEC lacks, the CPU decodes.
        hwaccel = self.device == "cuda"
        # Threaded, the reader makes the whole-frame shrinks detection will cut passes from; not
        # for a batching (GPU) detector, whose batch of frames would hold theirs too.
        prescale = Prescale(self.detectors) if self.threaded and self.batch == 1 else None
        read = Read(src, profile.limits, (info.width, info.height), lambda i: any(i % e == 0 for e in everies),
                    blocks=profile.detect.gating, hwaccel=hwaccel, prescale=prescale)
        cancel = threading.Event()  # set when the job is abandoned: every stage thread ends (stream.run)
        detect = Detect(self.detectors, gate=profile.detect.gating, refresh_frames=profile.detect.gating_refresh_frames,
                        batch=self.batch, cancel=cancel, text=self.video_text, prescale=prescale)
        classes = {}
        for name in self.detectors:
            spec = self.class_specs[CLASS_IDS[name]]
            confident = spec.threshold if spec.track_threshold is not None else None
            # Objects only the full plan finds are seen every (every_n_frames * video_full_every) frames.
            # keep: the closer look's windows cut boxes short (linker.KEEP_COVER).
            classes[name] = ClassTrack(
                spec.every_n_frames * spec.video_full_every, confident, spec.every_n_frames, keep=spec.video_zoom > 1
            )
        track = Track(
            profile.track, classes, lambda dets, wh: self.regions(dets, wh, video=True), overlay, (info.width, info.height)
        )
        mask = Mask(src, profile.limits, self.masker, threaded=self.threaded, overlay=overlay, hwaccel=hwaccel)
        stages = [detect, track, mask]

        writer: VideoWriter | None = None
        written, encode_s = 0, 0.0

        def report() -> None:
            # Per frame, and every stream.run.WAIT_S while the stages work: the frames detected
            # (the leading edge, where the time goes), then the frames masked and written behind
            # the tracker's look-ahead. The callback may raise to stop the job (SIGTERM): that
            # abandons the chain here, on the caller's thread, and every stage thread ends.
            if progress:
                if detect.finished:
                    progress("mask", written, total)
                else:
                    # ``passes``: each inference call advances it, so liveness (the daemon's
                    # watchdog) sees work inside a frame whose passes take seconds.
                    progress("detect", detect.done, total, passes=detect.passes)

        frames = run(read, stages, threaded=self.threaded, depth=2, cancel=cancel, idle=report)
        try:
            report()
            for image, pts, frame_regions in frames:
                if writer is None:
                    writer = VideoWriter(src, tmp, profile.output, info, rotation=read.rotation)
                self._count(result, frame_regions, None)
                started = time.perf_counter()
                writer.write(image, pts)
                encode_s += time.perf_counter() - started
                written += 1
                report()
            check_complete(info, read.frames, read.last_time)
            if writer is None or written != read.frames:
                raise MediaError(f"{written} of {read.frames} decoded frames were written")
            if masks:
                masks.check_fit(info.width, info.height, photo=False, frames=read.frames, duration_s=info.duration_s)
            writer.close()
        except BaseException:
            # Stopped or failed: end the inference call in flight on the Detect thread too (a
            # 4K pass takes seconds), so that closing the chain below does not wait for it.
            self._allow_inference(False)
            if writer is not None:
                writer.abort()
            raise
        finally:
            # Stop every stage's thread now, not when the traceback lets go of them: a job stopped
            # by SIGTERM or failed mid-file must not keep decoding the source behind the daemon.
            frames.close()
            # Every later call (this engine's next job, a photo, the evaluation) runs again. A pass
            # still running on a thread the close gave up on finishes then, and that thread ends.
            self._allow_inference(True)
        if profile.output.audio == "drop" or not info.has_audio:
            result.audio = "dropped" if info.has_audio else "none"
        else:
            result.audio = "copied" if writer.audio_streams_dropped == 0 else "partly dropped (container)"
        t1 = time.perf_counter()
        for name in self.detectors:
            result.counts[name].tracks = track.tracker.tracks[name]
            result.counts[name].detections = track.tracker.detections[name]
        result.frames = written
        result.duration_s = float(read.last_time or 0.0) + (1.0 / info.fps if info.fps else 0.0)
        overlay.timeline.finish(written)
        result.timeline, result.overlay = overlay.timeline, overlay.summary()
        # Each stage's own busy time (the stages overlap on their threads: they add up to more
        # than total_s); read_s is the first decode with its colour conversion, encode_s x264's.
        result.timings = {"read_s": read.seconds, "detect_s": detect.seconds, "track_s": track.seconds,
                          "mask_s": mask.seconds, "encode_s": encode_s, "total_s": t1 - t0}
        if self.video_text is not None:
            result.timings["text_s"] = detect.text_seconds  # part of detect_s
        result.passes = {name: dict(s.stats) for name, s in detect.schedules.items()}
        return result


__all__ = ["CLASS_NAMES", "Engine", "JobResult"]
