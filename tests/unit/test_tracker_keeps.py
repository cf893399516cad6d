"""The tracker adds recall, never removes it: more sightings never leave an object less masked.

Hand-made plate detections in a 1080p frame, on the default profile's tracker settings and the
plates' cadence (a detector frame every 2nd frame, the full plan every 6th), shaped after the
losses of the closer look on every gated frame (``video_zoom_every_frame``, issue 26, tune half):
a box cut by a detection window's inner edge, and a neighbour's extra sightings taking every box
near an object seen once.
"""

from __future__ import annotations

import numpy as np

from anonymizer.config import TrackSpec, load_profile
from anonymizer.detections import PLATE, Detections
from anonymizer.track.linker import track_and_fill

SPEC: TrackSpec = load_profile(None).track
SIZE = (1920, 1080)
EVERY = 6  # the plates' full-plan period at the defaults (every_n_frames 2 x video_full_every 3)
CONFIDENT = 0.038  # the plates' threshold


def _frames(sightings: dict[int, list[tuple[float, float, float, float, float]]], n: int) -> list[Detections | None]:
    out: list[Detections | None] = []
    for f in range(n):
        if f % 2:
            out.append(None)  # the plates' detector runs every 2nd frame
            continue
        items = sightings.get(f, [])
        out.append(
            Detections(
                np.array([i[:4] for i in items], np.float32).reshape(-1, 4),
                np.array([i[4] for i in items], np.float32),
                np.full(len(items), PLATE, np.int32),
            )
        )
    return out


def _covered(dets: Detections, box: tuple[float, float, float, float]) -> float:
    """Share of ``box``'s pixels inside the union of ``dets``' boxes."""
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    inside = np.zeros((y1 - y0, x1 - x0), bool)
    for r in dets.xyxy:
        a, b = max(0, int(np.floor(r[0])) - x0), max(0, int(np.floor(r[1])) - y0)
        c, d = max(0, int(np.ceil(r[2])) - x0), max(0, int(np.ceil(r[3])) - y0)
        inside[b:d, a:c] = True
    return float(inside.mean())


def _plate(f: int) -> tuple[float, float, float, float]:
    """A 137x30 px plate crossing at (36, -11.5) px a frame, inside the frame until frame 47."""
    x, y = 60.0 + 36.0 * f, 900.0 - 11.5 * f
    return (x, y, x + 137.0, y + 30.0)


def test_a_last_sighting_cut_by_a_window_edge_keeps_the_trail_the_sighting_before_had():
    # Seen whole on frames 20-44; on frame 46 the closer look's window ends 60 px into the plate
    # (tune half, openalpr clip 1): a box of its left part only, the track's last sighting.
    whole = {f: [(*_plate(f), 0.3)] for f in range(20, 46, 2)}
    x0, y0, _, y1 = _plate(46)
    cut = {**whole, 46: [(x0, y0, x0 + 60.0, y1, 0.33)]}
    n = 48
    without, _ = track_and_fill(_frames(whole, n), SPEC, EVERY, CONFIDENT, frame_size=SIZE, keep=True)
    with_cut, _ = track_and_fill(_frames(cut, n), SPEC, EVERY, CONFIDENT, frame_size=SIZE, keep=True)
    for f in (46, 47):
        assert _covered(without[f], _plate(f)) > 0.9  # the trail of frame 44 hid it
        assert _covered(with_cut[f], _plate(f)) >= _covered(without[f], _plate(f)) - 1e-6, f


def test_a_cut_sighting_in_the_middle_keeps_the_trail_until_the_track_is_whole_again():
    whole = {f: [(*_plate(f), 0.3)] for f in range(20, 40, 2)}
    x0, y0, _, y1 = _plate(30)
    cut = {**whole, 30: [(x0, y0, x0 + 50.0, y1, 0.3)]}
    out, _ = track_and_fill(_frames(cut, 40), SPEC, EVERY, CONFIDENT, frame_size=SIZE, keep=True)
    for f in (29, 30, 31):
        assert _covered(out[f], _plate(f)) > 0.9, f


def test_a_first_sighting_cut_by_a_window_edge_keeps_the_lead_the_sighting_after_has():
    # The plate's first sighting shows only its right part (the window began inside it).
    whole = {f: [(*_plate(f), 0.3)] for f in range(12, 30, 2)}
    _, y0, x1, y1 = _plate(10)
    cut = {**whole, 10: [(x1 - 55.0, y0, x1, y1, 0.3)]}
    n = 30
    without, _ = track_and_fill(_frames(whole, n), SPEC, EVERY, CONFIDENT, frame_size=SIZE, keep=True)
    with_cut, _ = track_and_fill(_frames(cut, n), SPEC, EVERY, CONFIDENT, frame_size=SIZE, keep=True)
    for f in (9, 10, 11):
        assert _covered(with_cut[f], _plate(f)) >= _covered(without[f], _plate(f)) - 1e-6, f
    assert _covered(with_cut[10], _plate(10)) > 0.9


def test_a_sighting_on_the_motions_line_adds_no_kept_trail():
    # A plate seen whole on every detector frame: nothing falls short, nothing is added.
    whole = {f: [(*_plate(f), 0.3)] for f in range(10, 30, 2)}
    out, _ = track_and_fill(_frames(whole, 30), SPEC, EVERY, CONFIDENT, frame_size=SIZE, keep=True)
    assert max(len(d) for d in out[12:28]) <= 2  # a sighting or an interpolated box, plus its held/moved pair


# Tune half, uc3m clip 2 (the closer look's detections, 1080p): plate B crossing at (-29, -31) px
# a frame is found once, on frame 14; crosser X, about 100 px away, on frames 10-24. Without the
# closer look X's sightings on frames 10, 14 and 16 were missing.
X = {
    10: (468, 1038, 560, 1086, 0.465),
    14: (699, 888, 793, 936, 0.056),
    16: (841, 822, 885, 849, 0.150),
    18: (930, 739, 1023, 785, 0.222),
    20: (1046, 664, 1123, 712, 0.866),
    22: (1160, 589, 1255, 637, 0.423),
    24: (1280, 514, 1369, 561, 0.046),
}
B = {14: (947, 835, 1009, 868, 0.130)}
B_TRUTH = {13: (995, 876, 1024, 891), 15: (936, 814, 965, 829)}  # its characters either side


def _sightings(*tracks: dict[int, tuple]) -> dict[int, list[tuple]]:
    out: dict[int, list[tuple]] = {}
    for t in tracks:
        for f, box in t.items():
            out.setdefault(f, []).append(box)
    return out


def test_a_neighbours_extra_sightings_never_leave_an_object_seen_once_less_masked():
    fewer = _sightings({f: b for f, b in X.items() if f not in (10, 14, 16)}, B)
    more = _sightings(X, B)
    before, _ = track_and_fill(_frames(fewer, 30), SPEC, EVERY, CONFIDENT, frame_size=SIZE, keep=True)
    after, _ = track_and_fill(_frames(more, 30), SPEC, EVERY, CONFIDENT, frame_size=SIZE, keep=True)
    for f, box in B_TRUTH.items():
        assert _covered(before[f], box) > 0.5  # linked into X's track, B's frames were masked
        assert _covered(after[f], box) >= _covered(before[f], box) - 1e-6, f


def _random_scene(seed: int, n: int = 36) -> list[Detections | None]:
    """Plates crossing and standing, found on half of the detector frames, jittered, with weak
    candidates and some boxes cut short: what the rules above act on, at random."""
    rng = np.random.default_rng(seed)
    objects = [
        (rng.uniform(0, 1800), rng.uniform(0, 1000), rng.uniform(-90, 90), rng.uniform(-40, 40), rng.uniform(14, 90))
        for _ in range(20)
    ]
    sightings: dict[int, list[tuple]] = {}
    for f in range(0, n, 2):
        for x, y, vx, vy, w in objects:
            if rng.random() < 0.5:
                cx, cy = x + vx * f + rng.uniform(-4, 4), y + vy * f + rng.uniform(-2, 2)
                right = cx + w * (rng.choice([1.0, 1.0, 1.0, 0.4]))
                score = float(rng.choice([0.5, 0.1, 0.03, 0.025]))
                sightings.setdefault(f, []).append((cx, cy, right, cy + w / 3, score))
    return _frames(sightings, n)


def _boxes(out: list[Detections]) -> list[set[tuple[float, ...]]]:
    return [{tuple(np.round(b, 3).tolist()) for b in d.xyxy} for d in out]


def test_the_rules_only_ever_add_boxes():
    for seed in range(20):
        frames = _random_scene(seed)
        with_rules, _ = track_and_fill(frames, SPEC, EVERY, CONFIDENT, frame_size=SIZE, keep=True)
        without, _ = track_and_fill(frames, SPEC, EVERY, CONFIDENT, frame_size=SIZE)  # faces: keep off
        for f, (a, b) in enumerate(zip(_boxes(with_rules), _boxes(without))):
            assert b <= a, (seed, f)
