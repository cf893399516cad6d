"""Recall over time: synthetic clips from labelled photos, where every frame's true boxes are known.

A virtual camera pans and zooms across a labelled photo (an affine map, so every labelled box
maps exactly into every frame), with sensor noise on every frame, motion-blur bursts, and short
"dropout" bursts (strong blur, lower contrast) of the kind that make a detector lose an object for a
few frames so that the tracker has to carry it. The clip is encoded with H.264, run through the
real video pipeline (``Engine.process``), decoded again and compared frame by frame with its
decoded input: a labelled object that is not hidden in a frame is a **leaked object-frame**. The
pixels changed outside every true box are counted as in photos (**collateral**), against the same
clip re-encoded without masks: in a noisy frame the encoder alone moves many pixels by more than
the tolerance.

A transformed box counts only while at least half of it is inside the frame and its size
(sqrt(w*h)) is at least ``MIN_SIZE_PX``; otherwise it is neutral for that frame.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from anonymizer.config import Profile
from anonymizer.evaluate import metrics
from anonymizer.media.video import VideoWriter, iter_frames, probe_video

MIN_SIZE_PX = 6.0
MIN_VISIBLE = 0.5


@dataclass(frozen=True)
class CameraPath:
    """Where the virtual camera looks: a window sliding/zooming linearly between two poses.

    Attributes:
        start_xy, end_xy: window centre in source pixels at the first and last frame.
        start_scale, end_scale: output pixels per source pixel at the first and last frame.
    """

    start_xy: tuple[float, float]
    end_xy: tuple[float, float]
    start_scale: float
    end_scale: float


@dataclass(frozen=True)
class ClipPlan:
    """A synthetic clip: camera path and degradations per frame, all decided up front from a seed."""

    n_frames: int
    size_wh: tuple[int, int]
    fps: int
    path: CameraPath
    noise_sigma: float
    motion_blur_px: tuple[int, ...]  # per frame, 0 = none
    dropout: tuple[bool, ...]  # per frame


def plan_clip(
    image_wh: tuple[int, int],
    boxes: np.ndarray,
    *,
    seed: int,
    n_frames: int = 48,
    size_wh: tuple[int, int] = (640, 360),
    fps: int = 24,
) -> ClipPlan:
    """Plan a clip over one photo: pan between two points near the labelled boxes, zoom in or out.

    The zoom range keeps the photo's median labelled box between roughly 0.8x and 1.6x its size,
    clamped so the window never leaves the photo.
    """
    rng = np.random.default_rng(seed)
    w, h = image_wh
    out_w, out_h = size_wh
    fit = max(out_w / w, out_h / h)  # the smallest scale whose window still lies inside the photo
    lo, hi = max(fit, 0.8), max(fit * 1.05, 1.6)
    s0, s1 = (float(v) for v in rng.uniform(lo, hi, size=2))
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2 if len(boxes) else np.array([[w / 2, h / 2]])
    a, b = centres[rng.integers(len(centres))], centres[rng.integers(len(centres))]
    jitter = rng.normal(0, 0.1, size=(2, 2)) * [w, h]
    p0 = tuple(float(v) for v in a + jitter[0])
    p1 = tuple(float(v) for v in b + jitter[1])
    blur = np.zeros(n_frames, int)
    dropout = np.zeros(n_frames, bool)
    for _ in range(2):  # two motion-blur bursts of 3-6 frames
        start, length = int(rng.integers(0, n_frames)), int(rng.integers(3, 7))
        blur[start : start + length] = int(rng.integers(7, 15))
    start = int(rng.integers(n_frames // 4, 3 * n_frames // 4))  # one dropout burst of 2-3 frames
    dropout[start : start + int(rng.integers(2, 4))] = True
    return ClipPlan(
        n_frames, size_wh, fps, CameraPath(p0, p1, s0, s1), float(rng.uniform(2, 8)), tuple(blur.tolist()), tuple(dropout.tolist())
    )


def frame_affine(plan: ClipPlan, index: int, image_wh: tuple[int, int]) -> np.ndarray:
    """Return the 2x3 source->frame affine matrix of frame ``index`` (window kept inside the photo)."""
    t = index / max(1, plan.n_frames - 1)
    p = plan.path
    scale = p.start_scale + (p.end_scale - p.start_scale) * t
    cx = p.start_xy[0] + (p.end_xy[0] - p.start_xy[0]) * t
    cy = p.start_xy[1] + (p.end_xy[1] - p.start_xy[1]) * t
    out_w, out_h = plan.size_wh
    win_w, win_h = out_w / scale, out_h / scale
    x0 = float(np.clip(cx - win_w / 2, 0, max(0.0, image_wh[0] - win_w)))
    y0 = float(np.clip(cy - win_h / 2, 0, max(0.0, image_wh[1] - win_h)))
    return np.array([[scale, 0, -x0 * scale], [0, scale, -y0 * scale]], np.float64)


def map_boxes(affine: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Apply a scale+translate affine matrix to (n, 4) xyxy boxes."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    s, tx, ty = affine[0, 0], affine[0, 2], affine[1, 2]
    return (boxes * s + [tx, ty, tx, ty]).astype(np.float32)


def render_frame(rgb: np.ndarray, plan: ClipPlan, index: int, rng: np.random.Generator) -> np.ndarray:
    """Render one frame of the clip from the source photo."""
    affine = frame_affine(plan, index, (rgb.shape[1], rgb.shape[0]))
    frame = cv2.warpAffine(rgb, affine, plan.size_wh, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    length = plan.motion_blur_px[index]
    if plan.dropout[index]:
        length = max(length, 17)
    if length:
        kernel = np.zeros((length, length), np.float32)
        kernel[length // 2, :] = 1.0 / length  # horizontal motion blur
        frame = cv2.filter2D(frame, -1, kernel, borderType=cv2.BORDER_REFLECT)
    if plan.dropout[index]:
        frame = (frame.astype(np.float32) * 0.55 + 40).astype(np.uint8)  # dim, washed-out frame
    noise = rng.normal(0, plan.noise_sigma, frame.shape)
    return np.clip(frame.astype(np.float32) + noise, 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class FrameTruth:
    """True boxes of one frame: objects that must be hidden, and neutral ones."""

    boxes: np.ndarray
    object_ids: np.ndarray
    neutral: np.ndarray


def frame_truth(affine: np.ndarray, boxes: np.ndarray, size_wh: tuple[int, int]) -> FrameTruth:
    """Map the photo's labelled boxes into a frame and split them into counted and neutral."""
    mapped = map_boxes(affine, boxes)
    w, h = size_wh
    clipped = np.clip(mapped, 0, [w, h, w, h]).astype(np.float32)
    full = np.prod(np.clip(mapped[:, 2:] - mapped[:, :2], 0, None), axis=1)
    visible = np.prod(np.clip(clipped[:, 2:] - clipped[:, :2], 0, None), axis=1) / np.maximum(full, 1e-9)
    counted = (visible >= MIN_VISIBLE) & (metrics.box_size_px(mapped) >= MIN_SIZE_PX)
    ids = np.arange(len(boxes))
    return FrameTruth(clipped[counted], ids[counted], clipped[~counted & (visible > 0)])


def write_clip(
    frames: Iterable[np.ndarray], path: Path, fps: int, *, crf: int = 16, gop_frames: int | None = None, preset: str = "veryfast"
) -> None:
    """Encode RGB frames as H.264 (nearly lossless by default, so the pipeline sees what the truth describes).

    ``frames`` may be a generator: frames are encoded as they come, so a long 1080p clip never
    has to fit in memory. ``gop_frames`` sets the keyframe interval (x264's default otherwise);
    VMS exports refresh every second or two, and every keyframe moves the static pixels a little.
    """
    frames = iter(frames)
    first = next(frames)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = first.shape[1], first.shape[0]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf), "preset": preset}
        if gop_frames is not None:
            stream.codec_context.gop_size = gop_frames
        for i, rgb in enumerate(itertools.chain([first], frames)):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def read_clip(path: Path) -> list[np.ndarray]:
    """Decode every frame of a video as RGB arrays."""
    return list(iter_clip(path))


def iter_clip(path: Path) -> Iterator[np.ndarray]:
    """Decode a video frame by frame as RGB arrays (one frame in memory at a time)."""
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            yield frame.to_ndarray(format="rgb24")


@dataclass
class ClipResult:
    """Leaks of one clip."""

    name: str
    frames: int
    objects: int
    object_frames: int = 0
    leaked: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    # CPU seconds of the job's process (every thread) while it ran: steadier than ``seconds`` on a
    # machine other work shares.
    cpu_seconds: float = 0.0
    # Pixels changed outside every true box (grown as in metrics.collateral_counts), over all frames.
    collateral_changed: int = 0
    collateral_total: int = 0
    # Object-frames per role of the object (fixed-camera clips: standing, walk, fast, vehicle).
    object_frames_by_role: dict[str, int] = field(default_factory=dict)
    # Object-frames of objects scored by the plate rule (``is_face`` False).
    plate_object_frames: int = 0
    # The job's pass counts per class (``JobResult.passes``: full, dense, gated frames, changed pixels).
    passes: dict[str, dict[str, int]] = field(default_factory=dict)
    # Every frame's truth, kept so a bench can ask which masks were an object's own (not in ``summary``).
    truths: list[FrameTruth] = field(default_factory=list, repr=False)

    def summary(self) -> dict[str, Any]:
        summary = {
            "clip": self.name,
            "frames": self.frames,
            "objects": self.objects,
            "object_frames": self.object_frames,
            "leaked_object_frames": len(self.leaked),
            "collateral": metrics.ratio(self.collateral_changed, self.collateral_total),
            "seconds": round(self.seconds, 2),
            "cpu_seconds": round(self.cpu_seconds, 2),
        }
        if self.object_frames_by_role:
            summary["object_frames_by_role"] = self.object_frames_by_role
        if self.passes:
            summary["passes"] = self.passes
        return {**summary, "leaks": self.leaked}


def synthesize(rgb: np.ndarray, boxes: np.ndarray, plan: ClipPlan, path: Path, *, seed: int) -> list[FrameTruth]:
    """Render, encode and return the truth of every frame of a planned clip."""
    rng = np.random.default_rng(seed)
    image_wh = (rgb.shape[1], rgb.shape[0])
    frames, truths = [], []
    for i in range(plan.n_frames):
        frames.append(render_frame(rgb, plan, i, rng))
        truths.append(frame_truth(frame_affine(plan, i, image_wh), boxes, plan.size_wh))
    write_clip(frames, path, plan.fps)
    return truths


def plain_reencode(src: Path, dst: Path, profile: Profile) -> None:
    """Re-encode ``src`` as the video job would, masking nothing: the reference for collateral."""
    writer = VideoWriter(src, dst, profile.output, probe_video(src, profile.limits))
    try:
        for decoded in iter_frames(src, profile.limits):
            writer.write(decoded.frame, decoded.pts)
        writer.close()
    except BaseException:
        writer.abort()
        raise


def count_leaks(
    name: str, src: Path, dst: Path, truths: list[FrameTruth], is_face: np.ndarray | None = None, *, reference: Path | None = None
) -> ClipResult:
    """Compare the decoded input and output of a clip against its truth; list every leaked object-frame.

    ``is_face`` (per object of the photo) selects the face rule of ``metrics.box_hidden`` (the
    inscribed ellipse); None treats every object as a face. Collateral compares the output with
    ``reference`` (``plain_reencode`` of the input), so that only masks count, not what the
    encoder moves in a noisy frame; without one, with the input.
    """
    # The three clips are decoded in lockstep, one frame each at a time: fixed-camera clips are
    # long, and three decoded copies of a 1080p clip do not fit in memory.
    counts = {"input": 0, "output": 0, "reference": 0}

    def counted(frames: Iterator[np.ndarray], key: str) -> Iterator[np.ndarray]:
        for frame in frames:
            counts[key] += 1
            yield frame

    before = counted(iter_clip(src), "input")
    after = counted(iter_clip(dst), "output")
    plain = counted(iter_clip(reference), "reference") if reference is not None else None
    objects: set[int] = set()
    result = ClipResult(name, 0, 0)
    index = -1
    for index, (a, b) in enumerate(zip(before, after)):
        if index >= len(truths):
            break
        truth = truths[index]
        p = a if plain is None else next(plain, None)
        if p is None:
            break
        changed, outside = metrics.collateral_counts(p, b, np.concatenate([truth.boxes, truth.neutral]))
        result.collateral_changed += changed
        result.collateral_total += outside
        for box, oid in zip(truth.boxes, truth.object_ids):
            objects.add(int(oid))
            result.object_frames += 1
            face = True if is_face is None else bool(is_face[oid])
            result.plate_object_frames += 0 if face else 1
            verdict = metrics.box_hidden(a, b, box, ellipse=face)
            if not verdict.hidden:
                result.leaked.append(
                    {
                        "frame": index,
                        "object": int(oid),
                        "box": [round(float(v), 1) for v in box],
                        "size_px": round(float(metrics.box_size_px(box[None])[0]), 1),
                        "retained": None if np.isnan(verdict.retained) else round(verdict.retained, 3),
                        # Against the input: the re-encode alone moves a fast small object's pixels.
                        "changed": round(verdict.changed, 3),
                        # Against the plain re-encode (when there is one): ~0 = no mask touched it (a
                        # miss); otherwise a mask that fell short or was too weak (``is_missed``).
                        "masked": round(metrics.masked_share(p, b, box), 3) if plain is not None else None,
                        "face": face,
                    }
                )
    # Drain what is left so that a length mismatch is reported with every clip's true count.
    for frames in (before, after, plain):
        if frames is not None:
            for _ in frames:
                pass
    if reference is None:
        counts["reference"] = counts["input"]
    if not counts["input"] == counts["output"] == counts["reference"] == len(truths):
        raise ValueError(
            f"{name}: {counts['input']} input, {counts['output']} output, {counts['reference']} reference frames, {len(truths)} truths"
        )
    result.frames = counts["input"]
    result.objects = len(objects)
    result.truths = list(truths[: result.frames])
    return result


def evaluate_clip(
    engine: Any,
    name: str,
    rgb: np.ndarray,
    boxes: np.ndarray,
    plan: ClipPlan,
    workdir: Path,
    *,
    seed: int,
    is_face: np.ndarray | None = None,
) -> ClipResult:
    """Synthesize one clip, anonymize it with ``engine.process`` (the real video job) and count leaks."""
    src = workdir / f"{name}.mp4"
    truths = synthesize(rgb, boxes, plan, src, seed=seed)
    return anonymize_and_score(engine, name, src, truths, workdir, is_face=is_face)


def anonymize_and_score(
    engine: Any,
    name: str,
    src: Path,
    truths: list[FrameTruth],
    workdir: Path,
    *,
    is_face: np.ndarray | None = None,
    tag: str = "",
) -> ClipResult:
    """Anonymize a synthesized clip with ``engine.process`` (the real video job) and count its leaks.

    Shared by every clip generator (panned here, fixed-camera in ``fixed_camera``), so that all of
    them are scored the same way: collateral against ``plain_reencode`` of the input. ``tag``
    names the output when several engines run on one clip (the plain re-encode is made once).
    """
    dst = workdir / f"{name}.anonymized{'.' + tag if tag else ''}.mp4"
    expect = getattr(engine, "expect", None)
    if expect is not None:  # an oracle masks the true boxes themselves (bench/eval_video.py --oracle)
        expect(truths, is_face)
    start, cpu = time.perf_counter(), time.process_time()
    job = engine.process(src, dst)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    reference = workdir / f"{name}.plain.mp4"
    if not (tag and reference.is_file()):
        plain_reencode(src, reference, engine.profile)
    result = count_leaks(name, src, dst, truths, is_face, reference=reference)
    result.seconds, result.cpu_seconds = seconds, cpu
    result.passes = dict(getattr(job, "passes", None) or {})
    return result


def reference_profile(profile: Profile) -> Profile:
    """The reference a schedule is judged against: every pass of every class's full plan on every
    frame, no gating (``every_n_frames`` 1, ``video_full_every`` 1, ``detect.gating`` off); the
    rest of the profile (thresholds, margins, tracker, masks) as given."""
    from dataclasses import replace

    detect = profile.detect
    every = {"every_n_frames": 1, "video_full_every": 1}
    detect = replace(detect, gating=False, faces=replace(detect.faces, **every), plates=replace(detect.plates, **every))
    return replace(profile, name=f"{profile.name}-reference", detect=detect)


def is_missed(leak: dict[str, Any]) -> bool:
    """Whether no mask touched a leaked object-frame (else it was partly masked): under 5 % of its
    pixels changed by the masks (against the plain re-encode where the clip has one)."""
    masked = leak.get("masked")
    return (leak["changed"] if masked is None else masked) < 0.05


def leak_keys(result: ClipResult) -> set[tuple[int, int]]:
    """(frame, object) of every leaked object-frame of a clip."""
    return {(int(leak["frame"]), int(leak["object"])) for leak in result.leaked}


def collateral(results: list[ClipResult]) -> float | None:
    """Share of the pixels outside every true box that changed, over several clips."""
    return metrics.ratio(sum(r.collateral_changed for r in results), sum(r.collateral_total for r in results))


def leaks_per_thousand(results: list[ClipResult]) -> float | None:
    """Leaked object-frames per 1,000 labelled object-frames over several clips."""
    total = sum(r.object_frames for r in results)
    return metrics.ratio(1000 * sum(len(r.leaked) for r in results), total)
