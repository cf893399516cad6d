"""The tracker's cheaper paths give what the plain per-track code gives, to the bit.

The tracker was made cheaper for crowds (docs/benchmarks.md, "CPU outside the models"):
predictions of every live track in one ``_coast`` call, ``np.allclose`` written out, ``_speed``
asked only where it decides whether a track stays live. These tests compare each with the plain
form it replaced, on random tracks, and the whole tracker on a crowd with the same frames.
"""

import numpy as np
import pytest

from anonymizer.config import TrackSpec
from anonymizer.detections import Detections
from anonymizer.track import linker
from anonymizer.track.linker import Track


def random_tracks(seed: int, n: int = 200) -> list[Track]:
    rng = np.random.default_rng(seed)
    tracks = []
    for i in range(n):
        k = int(rng.integers(1, 6))
        frames = sorted(int(f) for f in rng.choice(40, size=k, replace=False))
        start = rng.uniform(0, 1800, 2)
        size = rng.uniform(2, 200, 2)
        boxes = []
        for f in frames:
            xy = start + rng.normal(0, 3, 2) * f + rng.normal(0, 1.5, 2)
            wh = size * rng.uniform(0.8, 1.2)
            boxes.append(np.concatenate([xy, xy + wh]).astype(np.float32))
        tracks.append(Track(i, 0, frames, boxes, [float(rng.random())] * k))
    return tracks


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_all_predictions_at_once_equal_each_track_s_own(seed):
    tracks = random_tracks(seed)
    for frame in (0, 5, 20, 39, 40, 47):
        expected = np.stack([t.predict(frame) for t in tracks])
        got = linker._predict_all(tracks, frame)
        assert got.dtype == expected.dtype and np.array_equal(got, expected)


def test_guesses_keep_np_allclose_s_answer():
    rng = np.random.default_rng(3)
    held = rng.uniform(0, 1000, (3000, 4)).astype(np.float32)
    # Differences around the tolerance (0.5 px plus 1e-5 of the value), both ways, and equal boxes.
    moved = (held + rng.choice([0, 0.25, 0.49, 0.5, 0.5001, 0.51, 1.0, -0.5, -0.51], (3000, 4))).astype(np.float32)
    moved[::7] = held[::7]
    for h, m in zip(held, moved):
        expected = [h] if np.allclose(h, m, atol=0.5) else [h, m]
        got = linker._guesses(h, m)
        assert len(got) == len(expected) and all(np.array_equal(a, b) for a, b in zip(got, expected))


def crowd_frames(seed: int, n_frames: int = 40, n_objects: int = 120) -> list[Detections | None]:
    """A panned crowd's detections: objects drifting, flickering in and out, fast movers, boxes cut
    by the frame's edge, some frames not detected."""
    rng = np.random.default_rng(seed)
    start = rng.uniform(-50, 1900, (n_objects, 2))
    velocity = rng.normal(0, 4, (n_objects, 2)) * np.where(rng.random(n_objects) < 0.1, 10, 1)[:, None]
    size = rng.uniform(4, 120, (n_objects, 2))
    frames: list[Detections | None] = []
    for f in range(n_frames):
        if f % 5 == 4:
            frames.append(None)
            continue
        seen = rng.random(n_objects) < 0.7
        xy = start[seen] + velocity[seen] * f + rng.normal(0, 1.0, (int(seen.sum()), 2))
        xyxy = np.clip(np.concatenate([xy, xy + size[seen]], axis=1), 0, [1920, 1080, 1920, 1080])
        keep = (xyxy[:, 2] - xyxy[:, 0] > 1) & (xyxy[:, 3] - xyxy[:, 1] > 1)
        conf = rng.uniform(0.02, 0.9, int(keep.sum()))
        frames.append(
            Detections(xyxy[keep].astype(np.float32), conf.astype(np.float32), np.zeros(int(keep.sum()), np.int32))
        )
    return frames


@pytest.mark.parametrize("seed", [0, 1])
def test_tracking_a_crowd_gives_the_same_boxes_as_the_per_track_predictions(seed, monkeypatch):
    per_frame = crowd_frames(seed)
    spec = TrackSpec()
    fast, _ = linker.track_and_fill(per_frame, spec, 2, 0.3, frame_size=(1920, 1080))

    def one_by_one(tracks, frame):
        return np.stack([t.predict(frame) for t in tracks])

    monkeypatch.setattr(linker, "_predict_all", one_by_one)
    monkeypatch.setattr(
        linker, "_guesses", lambda held, moved: [held] if np.allclose(held, moved, atol=0.5) else [held, moved]
    )
    speed = linker._speed
    fast_ones = []

    def plain_alive(t, frame, max_gap, long_gap):
        fast_ones.append(speed(t, first=False) is not None)
        return frame - t.frames[-1] <= (long_gap if fast_ones[-1] else max_gap)

    monkeypatch.setattr(linker, "_alive", plain_alive)
    plain, _ = linker.track_and_fill(per_frame, spec, 2, 0.3, frame_size=(1920, 1080))
    assert len(fast) == len(plain)
    assert sum(len(d) for d in fast) > 1000 and any(fast_ones)  # a crowd, with fast movers
    for a, b in zip(fast, plain):
        for x, y in (
            (a.xyxy, b.xyxy),
            (a.confidence, b.confidence),
            (a.class_id, b.class_id),
            (a.tracker_id, b.tracker_id),
            (a.source, b.source),
        ):
            assert np.array_equal(x, y)
