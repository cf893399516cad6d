"""Why a mask covers only part of an object: ``bench/eval_video.py --diagnose``.

Records, for every video job the bench runs, what the tracker stage received (each class's raw
detections per frame, None where the class did not run) and what it gave back (the padded regions
that were masked, with their source and track id). For every partly masked leak (a mask changed
at least 5 % of the object's pixels: ``videos.is_missed``) it then prints the object's true box and motion, the masks near
it, the nearest raw detection on that frame, and the motion of each nearby mask's track between
its detections. Bench output only: product logs never carry coordinates.

    .venv-test/bin/python bench/eval_video.py --kind crossers --half tune --clips-per-set 3 \\
        --crosser-frames 48 --sets plates-openalpr plates-uc3m-lowres --diagnose
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from anonymizer.detections import DETECTED, Detections
from anonymizer.evaluate.videos import is_missed


@dataclass
class JobRecord:
    """One job's tracker input and output, by frame index."""

    found: dict[int, dict[str, Detections | None]] = field(default_factory=dict)
    regions: dict[int, Detections] = field(default_factory=dict)


class Recorder:
    """Wraps the pipeline's tracker stage so each job's input and output are kept (``jobs``, in
    the order the jobs ran)."""

    def __init__(self) -> None:
        self.jobs: list[JobRecord] = []

    def install(self) -> None:
        import anonymizer.pipeline as pipeline

        base = pipeline.Track
        jobs = self.jobs

        class RecordingTrack(base):  # type: ignore[misc,valid-type]
            def __call__(self, frames: Iterator[Any]) -> Iterator[Any]:
                record = JobRecord()
                jobs.append(record)

                def tap(frames: Iterator[Any]) -> Iterator[Any]:
                    for frame in frames:
                        record.found[frame.index] = dict(frame.found)
                        yield frame

                for frame in super().__call__(tap(frames)):
                    record.regions[frame.index] = frame.regions
                    yield frame

        pipeline.Track = RecordingTrack


def _covered(box: np.ndarray, regions: np.ndarray) -> np.ndarray:
    """Share of ``box``'s area inside each region (n,)."""
    if not len(regions):
        return np.zeros(0)
    x1 = np.maximum(box[0], regions[:, 0])
    y1 = np.maximum(box[1], regions[:, 1])
    x2 = np.minimum(box[2], regions[:, 2])
    y2 = np.minimum(box[3], regions[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    return inter / max(1.0, float((box[2] - box[0]) * (box[3] - box[1])))


def _fmt(box: Any) -> str:
    return "(" + ",".join(f"{float(v):.0f}" for v in box) + ")"


def _track_motion(record: JobRecord, track_id: int, frame: int, reach: int = 20) -> str:
    """The detected boxes' centres of one track id around ``frame``: frame:x,y ... and the mean velocity."""
    seen = []
    for f in range(frame - reach, frame + reach + 1):
        regions = record.regions.get(f)
        if regions is None or not len(regions):
            continue
        sel = (regions.tracker_id == track_id) & (regions.source == DETECTED)
        if sel.any():
            b = regions.xyxy[sel][0]
            seen.append((f, (b[0] + b[2]) / 2, (b[1] + b[3]) / 2))
    if not seen:
        return "no detections of this track within 20 frames"
    text = " ".join(f"{f}:{x:.0f},{y:.0f}" for f, x, y in seen)
    if len(seen) > 1:
        (f0, x0, y0), (f1, x1, y1) = seen[0], seen[-1]
        text += f" (mean {(x1 - x0) / max(1, f1 - f0):.1f},{(y1 - y0) / max(1, f1 - f0):.1f} px/frame)"
    return text


def explain(name: str, leaks: list[dict[str, Any]], record: JobRecord, *, partial_only: bool = True) -> list[str]:
    """Lines describing each (partly masked) leak of one clip."""
    lines = []
    for leak in leaks:
        if partial_only and is_missed(leak):
            continue
        f = int(leak["frame"])
        box = np.asarray(leak["box"], np.float32)
        size = float(leak["size_px"])
        lines.append(
            f"{name} frame {f} object {leak['object']} ({'face' if leak.get('face', True) else 'plate'}, "
            f"{leak.get('role', '?')}): box {_fmt(box)} size {size:.0f} px, true velocity {leak.get('velocity_px')}, "
            f"changed {leak['changed']} (masks: {leak.get('masked')}), retained {leak['retained']}"
        )
        regions = record.regions.get(f)
        near_box = np.concatenate([box[:2] - 2 * size, box[2:] + 2 * size])
        if regions is not None and len(regions):
            cover = _covered(box, regions.xyxy)
            near = np.nonzero(_covered(near_box, regions.xyxy) > 0)[0]
            for i in near:
                src = "det" if regions.source[i] == DETECTED else "pred"
                lines.append(
                    f"    mask {_fmt(regions.xyxy[i])} {src} track {int(regions.tracker_id[i])} class {int(regions.class_id[i])} "
                    f"covers {cover[i]:.2f} of the object; track: {_track_motion(record, int(regions.tracker_id[i]), f)}"
                )
            if not len(near):
                lines.append("    no mask near it")
        found = record.found.get(f, {})
        for cls, dets in found.items():
            if dets is None:
                lines.append(f"    {cls}: not run on this frame")
                continue
            if not len(dets):
                lines.append(f"    {cls}: nothing found on this frame")
                continue
            centres = (dets.xyxy[:, :2] + dets.xyxy[:, 2:]) / 2
            d = np.linalg.norm(centres - (box[:2] + box[2:]) / 2, axis=1)
            i = int(np.argmin(d))
            lines.append(
                f"    {cls}: nearest raw detection {_fmt(dets.xyxy[i])} score {float(dets.confidence[i]):.3f}, {d[i]:.0f} px away"
            )
    return lines
