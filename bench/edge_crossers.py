"""Hand-made crossers at the frame's edges through the tracker alone, with and without the frame size.

Pure tracker (arrays in, boxes out; seconds, no model): a face or plate enters or leaves at each
of the four edges, or two cross in one lane in opposite directions (each hiding the other while
they overlap), at 32-115 px a frame. On the frames a cadence runs, the detector finds an object
while at least half of it is inside the frame, as its box clipped to the frame (what the
detectors return). A case is bare when, on some judged frame where at least half of an object is
visible, no tracked box (clipped to the frame, as masks are) covers that visible part. A single
crosser is judged on the 12 frames after its leading side enters (before its trailing side
leaves) in a 48-frame clip, so that the clip's own ends play no part; a pair on every frame.

    .venv-test/bin/python bench/edge_crossers.py

Cadences: faces on every frame with the full plan every 4th (``every``), the object found on every
frame or only on full-plan frames; plates on every 2nd frame with the full plan every 6th, found on
every plate frame or only on full-plan frames. Without ``frame_size`` the linker is exactly the
code before it knew the frame size (linker.EDGE_PX).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np

from anonymizer.config import TrackSpec
from anonymizer.detections import FACE, Detections
from anonymizer.track.linker import track_and_fill

W, H = 1920, 1080
SPEC = TrackSpec(iou_match=0.1, max_gap_frames=15, lead_frames=5, trail_frames=8)  # the default profile's
# (frames between detector frames, full-plan period, frames between sightings)
CADENCES = {
    "faces, found every frame": (1, 4, 1),
    "faces, full plan only": (1, 4, 4),
    "plates, found every plate frame": (2, 6, 2),
    "plates, full plan only": (2, 6, 6),
}
SIZES = [(28.0, 22.0), (22.0, 11.0), (40.0, 32.0)]
SPEEDS = [32.0, 55.0, 80.0, 115.0]
Box = Callable[[int], np.ndarray]


def visible(box: np.ndarray) -> tuple[float, np.ndarray]:
    inside = np.clip(box, 0, [W, H, W, H])
    return float(np.prod(np.maximum(inside[2:] - inside[:2], 0)) / np.prod(box[2:] - box[:2])), inside


def edge_path(edge: str, leaving: bool, speed: float, w: float, h: float, crossing: float) -> Box:
    """Entering: the leading side crosses the border at frame ``crossing``; leaving: the trailing side."""

    def truth(f: int) -> np.ndarray:
        d = speed * (f - crossing)
        if edge in ("left", "right"):
            x = (-d if leaving else d - w) if edge == "left" else (W - w + d if leaving else W - d)
            return np.array([x, 500, x + w, 500 + h])
        y = (-d if leaving else d - h) if edge == "top" else (H - h + d if leaving else H - d)
        return np.array([900, y, 900 + w, y + h])

    return truth


def bare(
    objects: list[Box],
    hidden: Callable[[int, int], bool],
    cadence: tuple[int, int, int],
    n: int,
    sized: bool,
    judged: range,
) -> bool:
    step, every, found_every = cadence
    frames: list[Detections | None] = []
    for f in range(n):
        if f % step:
            frames.append(None)
            continue
        boxes = (
            []
            if f % found_every
            else [visible(o(f))[1] for k, o in enumerate(objects) if visible(o(f))[0] >= 0.5 and not hidden(k, f)]
        )
        frames.append(
            Detections(np.array(boxes, np.float32).reshape(-1, 4), np.full(len(boxes), 0.9), np.full(len(boxes), FACE))
        )
    out, _ = track_and_fill(frames, SPEC, detect_every=every, frame_size=(W, H) if sized else None)
    for f in judged:
        masks = np.clip(out[f].xyxy, 0, [W, H, W, H])
        for k, o in enumerate(objects):
            share, part = visible(o(f))
            if share < 0.5 or hidden(k, f):
                continue
            if not (
                (masks[:, :2] <= part[:2] + 1e-3).all(axis=1) & (masks[:, 2:] >= part[2:] - 1e-3).all(axis=1)
            ).any():
                return True
    return False


def main() -> None:
    print("| case | cadence | cases | bare without frame size | bare with frame size |")
    print("|---|---|---|---|---|")
    for (edge, leaving), (name, cadence) in itertools.product(
        itertools.product(["left", "right", "top", "bottom"], [False, True]), CADENCES.items()
    ):
        counts = [0, 0, 0]
        for speed, (w, h), phase in itertools.product(SPEEDS, SIZES, range(18)):
            crossing = 16 + phase / 3
            path = edge_path(edge, leaving, speed, w, h, crossing)
            # Judged on the 12 frames after it enters (before it leaves), in a clip that runs on
            # well past them: the edge's part, not the clip's ends.
            judged = (
                range(int(crossing), int(crossing) + 13)
                if not leaving
                else range(int(crossing) - 12, int(crossing) + 2)
            )
            counts[0] += 1
            for sized in (False, True):
                counts[1 + sized] += bare([path], lambda k, f: False, cadence, 48, sized, judged)
        print(
            f"| {'leaving' if leaving else 'entering'} at the {edge} | {name} | {counts[0]} | {counts[1]} | {counts[2]} |"
        )
    for name, cadence in CADENCES.items():
        counts = [0, 0, 0]
        for speed, shift_a, shift_b, dy in itertools.product(
            [60.0, 80.0, 115.0], range(0, 80, 10), range(0, 80, 20), [0, 8, 20]
        ):

            def a(f: int, s=speed, d=shift_a) -> np.ndarray:
                return np.array([-20 - d + s * f, 500, 8 - d + s * f, 522])

            def b(f: int, s=speed, d=shift_b, dy=dy) -> np.ndarray:
                return np.array([W - 8 + d - s * f, 500 + dy, W + 20 + d - s * f, 522 + dy])

            def hidden(k: int, f: int, a=a, b=b) -> bool:  # the second one behind the first
                return k == 1 and abs(a(f)[0] - b(f)[0]) < 28

            counts[0] += 1
            for sized in (False, True):
                n = int(2000 / speed) + 4
                counts[1 + sized] += bare([a, b], hidden, cadence, n, sized, range(n))
        print(f"| two crossers, one lane, opposite directions | {name} | {counts[0]} | {counts[1]} | {counts[2]} |")


if __name__ == "__main__":
    main()
