"""The offline tracker over a bounded look-ahead window, for clips of any length.

``track_and_fill`` needs every frame's detections at once; a six-hour clip's frames cannot all
be held. Frames are settled in chunks: a chunk's masks come from tracking the chunk plus
``margin`` frames before and after it, which covers everything a frame's masks depend on
(interpolation across a gap, lead and trail, a weak track's confirmation, a jump's lead and
trail) whenever it lies within ``margin`` frames. A clip no longer than one chunk plus the margin
is tracked exactly as the offline tracker tracks it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from anonymizer.config import TrackSpec
from anonymizer.detections import DETECTED, Detections
from anonymizer.track.linker import CROSSER_STEP, FAST_GAP_FACTOR, track_and_fill


@dataclass(frozen=True)
class ClassTrack:
    """How one class is tracked: its detector's frame step and its confidence split."""

    every: int  # frames between the class's full plans: what only they find is seen this often
    confident: float | None  # hysteresis threshold, None = every detection is confident
    step: int = 1  # frames between the class's detector frames (weak candidates come this often)
    # More sightings never leave an object less masked (linker.KEEP_COVER), and leads and trails
    # also follow a fitted velocity (linker.FIT_SIGHTINGS): for a class whose detector looks
    # through windows that cut boxes short (the plates' closer look, video_zoom).
    keep: bool = False


def window_margin(spec: TrackSpec, classes: dict[str, ClassTrack]) -> int:
    """Frames of context each side of a chunk: the longest reach of any tracking rule, plus one
    detector step (a gap is bridged from the sighting after it, a weak track confirmed by its
    ``confirm_sightings``-th sighting)."""
    reach = max(
        max(
            spec.lead_frames,
            spec.trail_frames,
            FAST_GAP_FACTOR * spec.max_gap_frames + c.every,  # a fast mover's long gap (linker.FAST_GAP_FACTOR)
            spec.confirm_sightings * c.step,
            spec.confirm_still_sightings * c.step,  # its in-place sightings (linker._still)
            spec.confirm_fast_sightings * c.step,
            CROSSER_STEP * spec.confirm_crosser_sightings * c.step,  # a weak crosser's chain (linker._crossers)
        )
        + c.every
        for c in classes.values()
    )
    return max(24, reach)


class WindowTracker:
    """Push each frame's detections in order; settled frames come back with their tracked boxes.

    Per class, what comes back for a frame is what ``track_and_fill`` returns for it: the raw
    detections plus the boxes the tracks add (or, for weak candidates, those hysteresis keeps).
    """

    def __init__(
        self,
        spec: TrackSpec,
        classes: dict[str, ClassTrack],
        *,
        chunk: int | None = None,
        frame_size: tuple[int, int] | None = None,
    ) -> None:
        self.spec = spec
        self.classes = classes
        self.frame_size = frame_size  # (width, height) of the boxes' frame: objects cut by its border
        self.margin = window_margin(spec, classes)
        # Only detections are held (the pictures are decoded again for masking), so a chunk can be
        # long: each frame is then tracked about 1.5 times instead of three.
        self.chunk = chunk or 4 * self.margin
        self.base = 0  # frame index of self.frames[0]
        self.frames: deque[dict[str, Detections | None]] = deque()
        self.settled = 0  # frames before this one have been returned
        self.tracks = {name: 0 for name in classes}
        self.detections = {name: 0 for name in classes}

    def push(self, found: dict[str, Detections | None]) -> list[dict[str, Detections]]:
        """Add the next frame's detections; return the frames settled by it (oldest first)."""
        self.frames.append(found)
        end = self.base + len(self.frames)
        if end - self.settled >= self.chunk + self.margin:
            return self._settle(self.settled + self.chunk, end)
        return []

    def finish(self) -> list[dict[str, Detections]]:
        """The clip ended: settle every frame left."""
        end = self.base + len(self.frames)
        return self._settle(end, end) if end > self.settled else []

    @property
    def held(self) -> int:
        """Frames pushed but not settled yet."""
        return self.base + len(self.frames) - self.settled

    def _settle(self, upto: int, end: int) -> list[dict[str, Detections]]:
        lo = max(self.base, self.settled - self.margin)
        window = list(self.frames)[lo - self.base : end - self.base]
        out: list[dict[str, Detections]] = [{} for _ in range(upto - self.settled)]
        for name, c in self.classes.items():
            per_frame = [f[name] for f in window]
            first, last = self.settled - lo, upto - lo
            filled, n_tracks = track_and_fill(
                per_frame,
                self.spec,
                c.every,
                c.confident,
                counted=range(first, last),
                frame_size=self.frame_size,
                keep=c.keep,
            )
            self.tracks[name] += n_tracks
            for k, dets in enumerate(filled[first:last]):
                out[k][name] = dets
                self.detections[name] += int(np.count_nonzero(dets.source == DETECTED))
        self.settled = upto
        # Keep only the context the next chunk looks back on.
        while self.frames and self.base < self.settled - self.margin:
            self.frames.popleft()
            self.base += 1
        return out
