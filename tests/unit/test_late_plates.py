"""A small plate that the closer look finds only now and then is linked across two full-plan
periods (``linker.LATE_PERIODS``, issue 26, tune half seed 11): hand-made plate detections in a
1080p frame on the default tracker settings and the plates' cadence."""

from __future__ import annotations

import numpy as np
from media_factory import box_cover

from anonymizer.config import load_profile
from anonymizer.detections import PLATE, Detections
from anonymizer.mask.regions import pad_and_clip
from anonymizer.track import linker
from anonymizer.track.linker import track_and_fill

PROFILE = load_profile(None)
SPEC = PROFILE.track
SIZE = (1920, 1080)
EVERY = 6  # the plates' full-plan period at the defaults (every_n_frames 2 x video_full_every 3)
CONFIDENT = 0.038  # the plates' threshold


def plate(f: int) -> list[float]:
    """The tune clip's plate: 30x7 px at (-34.5, -23.5) px a frame, entering at the right edge."""
    cx, cy = 1906 - 34.5 * (f - 6), 384.5 - 23.5 * (f - 6)
    return [cx - 15, cy - 3.5, cx + 15, cy + 3.5]


def frames(seen: dict[int, list[float]], n: int = 30) -> list[Detections | None]:
    """Plate detector frames every 2nd frame; a confident standing plate far away on each of them."""
    out: list[Detections | None] = []
    for f in range(n):
        if f % 2:
            out.append(None)
            continue
        boxes = [[200.0, 900.0, 260.0, 915.0]] + ([seen[f]] if f in seen else [])
        out.append(
            Detections(np.array(boxes, np.float32), np.full(len(boxes), 0.4, np.float32), np.full(len(boxes), PLATE))
        )
    return out


def masked(out: list[Detections]) -> list[Detections]:
    specs = {PLATE: PROFILE.detect.plates}
    return [pad_and_clip(o, specs, SIZE, ellipse=False, video=True) for o in out]


def cover(regions: Detections, box: list[float]) -> float:
    return box_cover(regions, box, *SIZE)


# As found on the tune clip: at the right edge (cut by it), then 10 and 6 frames later, the last
# box at the top edge larger than the plate.
SEEN = {
    6: [1872.0, 377.0, 1920.0, 391.0],
    16: [1545.0, 143.0, 1577.0, 152.0],
    22: [1321.0, 0.0, 1388.0, 13.0],
}


def test_a_plate_seen_two_full_plan_periods_apart_is_masked_all_the_way():
    out = masked(track_and_fill(frames(SEEN), SPEC, EVERY, CONFIDENT, frame_size=SIZE, keep=True)[0])
    assert all(cover(out[f], plate(f)) >= 0.9 for f in range(6, 23)), [
        round(cover(out[f], plate(f)), 2) for f in range(6, 23)
    ]


def test_one_period_left_it_bare(monkeypatch):
    monkeypatch.setattr(linker, "LATE_PERIODS", 1)
    out = masked(track_and_fill(frames(SEEN), SPEC, EVERY, CONFIDENT, frame_size=SIZE, keep=True)[0])
    assert sum(cover(out[f], plate(f)) < 0.9 for f in range(6, 23)) >= 10


def test_faces_keep_one_period():
    # Only a class tracked with ``keep`` (the closer look's windows) links that late.
    first = linker.link(frames(SEEN), SPEC, EVERY, SIZE)
    assert not any(t.alternative and t.frames[:2] == [6, 16] for t in first)
    late = linker.link(frames(SEEN), SPEC, EVERY, SIZE, share_taken=True)
    assert any(t.alternative and t.frames == [6, 16, 22] for t in late)


def test_late_links_only_ever_add_masks(monkeypatch):
    rng = np.random.default_rng(11)
    for _ in range(15):
        objects = [
            (
                rng.uniform(0, 1800),
                rng.uniform(0, 1000),
                rng.uniform(-60, 60),
                rng.uniform(-40, 40),
                rng.uniform(14, 60),
            )
            for _ in range(5)
        ]
        seen: list[Detections | None] = []
        for f in range(40):
            if f % 2:
                seen.append(None)
                continue
            boxes = [
                [x + vx * f, y + vy * f, x + vx * f + s, y + vy * f + s / 3]
                for x, y, vx, vy, s in objects
                if rng.random() < 0.3
            ]
            seen.append(
                Detections(
                    np.array(boxes, np.float32).reshape(-1, 4),
                    np.full(len(boxes), 0.3, np.float32),
                    np.full(len(boxes), PLATE),
                )
            )
        now, _ = track_and_fill(seen, SPEC, EVERY, CONFIDENT, frame_size=SIZE, keep=True)
        monkeypatch.setattr(linker, "LATE_PERIODS", 1)
        before, _ = track_and_fill(seen, SPEC, EVERY, CONFIDENT, frame_size=SIZE, keep=True)
        monkeypatch.setattr(linker, "LATE_PERIODS", 2)
        for a, b in zip(now, before):
            for box in b.xyxy:
                assert np.any(np.all(np.isclose(a.xyxy, box), axis=1))
