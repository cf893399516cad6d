"""The bounded look-ahead tracker gives the offline tracker's masks, holding only its window."""

import numpy as np

from anonymizer.config import TrackSpec
from anonymizer.detections import Detections
from anonymizer.track.linker import track_and_fill
from anonymizer.track.window import ClassTrack, WindowTracker, window_margin


def clip(n_frames: int, seed: int = 0) -> list[Detections | None]:
    """Three well-separated objects moving steadily, with missed frames and weak frames."""
    rng = np.random.default_rng(seed)
    frames = []
    for f in range(n_frames):
        boxes, scores = [], []
        for k, (x0, speed) in enumerate(((20.0, 1.5), (400.0, -1.0), (900.0, 0.5))):
            if rng.random() < 0.25:
                continue  # missed
            x = x0 + speed * f
            y = 100 + 250 * k
            boxes.append([x, y, x + 30, y + 30])
            scores.append(0.9 if rng.random() < 0.3 else 0.08)  # mostly weak: hysteresis matters
        frames.append(Detections(np.array(boxes, np.float32).reshape(-1, 4), np.array(scores, np.float32), np.zeros(len(boxes), np.int32)))
    return frames


def as_sets(dets: Detections) -> set[tuple[float, ...]]:
    return {tuple(np.round(b, 2)) for b in dets.xyxy.tolist()}


def run_window(frames, spec, confident):
    tracker = WindowTracker(spec, {"face": ClassTrack(1, confident)})
    out, most_held = [], 0
    for found in frames:
        out.extend(s["face"] for s in tracker.push({"face": found}))
        most_held = max(most_held, tracker.held)
    out.extend(s["face"] for s in tracker.finish())
    return out, most_held


def test_same_masks_as_the_offline_tracker_on_a_long_clip_holding_only_the_window():
    spec = TrackSpec()
    frames = clip(600)
    offline, _ = track_and_fill(frames, spec, 1, 0.12)
    windowed, most_held = run_window(frames, spec, 0.12)
    assert len(windowed) == len(offline) == 600
    for f, (a, b) in enumerate(zip(offline, windowed)):
        assert as_sets(a) == as_sets(b), f
    margin = window_margin(spec, {"face": ClassTrack(1, 0.12)})
    assert most_held <= 5 * margin + 1  # a chunk plus its look-ahead, never the clip


def test_a_short_clip_is_tracked_exactly_as_offline():
    spec = TrackSpec()
    frames = clip(100, seed=3)
    offline, n_offline = track_and_fill(frames, spec, 1, 0.12)
    tracker = WindowTracker(spec, {"face": ClassTrack(1, 0.12)})
    assert all(tracker.push({"face": f}) == [] for f in frames)
    windowed = [s["face"] for s in tracker.finish()]
    assert [as_sets(d) for d in windowed] == [as_sets(d) for d in offline]
    assert tracker.tracks["face"] == n_offline


def test_the_frame_size_reaches_the_tracker():
    # A 28x22 face entering at the left edge at 32 px a frame, seen on every 4th frame: its first
    # sighting is cut by the border (16 of its 28 px). With the frame size, the window's masks are
    # the offline tracker's with it, which restore the face's size there (and differ from those without).
    spec = TrackSpec()

    def face(f: int) -> list[float]:
        x = 32.0 * f - 140  # frame 4: -12, 16 of its 28 px inside
        return [max(x, 0.0), 500.0, x + 28, 522.0]

    def found(f: int) -> Detections:
        boxes = [face(f)] if f % 4 == 0 and f >= 4 else []
        return Detections(
            np.array(boxes, np.float32).reshape(-1, 4),
            np.full(len(boxes), 0.9, np.float32),
            np.zeros(len(boxes), np.int32),
        )

    frames = [found(f) for f in range(24)]
    offline, _ = track_and_fill(frames, spec, 4, frame_size=(1920, 1080))
    unsized, _ = track_and_fill(frames, spec, 4)
    tracker = WindowTracker(spec, {"face": ClassTrack(4, None)}, frame_size=(1920, 1080))
    windowed = [s["face"] for f in frames for s in tracker.push({"face": f})] + [s["face"] for s in tracker.finish()]
    assert [as_sets(d) for d in windowed] == [as_sets(d) for d in offline]
    assert [as_sets(d) for d in offline] != [as_sets(d) for d in unsized]
