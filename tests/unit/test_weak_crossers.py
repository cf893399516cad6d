"""Weak crossers found by their motion (issue 26, ``track.confirm_crosser_sightings``): a face
crossing a busy still scene that the detector sees only under its threshold, on a few frames, is
masked from where it enters to where it leaves; still texture, a slow walker and a panning camera's
weak boxes are not chained; the rule only ever adds masks."""

from dataclasses import replace

import numpy as np
from media_factory import box_cover, half_visible

from anonymizer.config import TrackSpec, load_profile
from anonymizer.detections import DETECTED, FACE, PLATE, Detections
from anonymizer.mask.regions import pad_and_clip
from anonymizer.track.linker import _crossers, track_and_fill
from anonymizer.track.window import ClassTrack, WindowTracker

CONFIDENT = 0.12
SPEC = TrackSpec(
    iou_match=0.1,
    max_gap_frames=15,
    lead_frames=5,
    trail_frames=8,
    confirm_sightings=12,
    confirm_max_px=64,
    confirm_crosser_sightings=4,
)
OFF = replace(SPEC, confirm_crosser_sightings=0)
W, H = 1920, 1080
PROFILE = load_profile(None)
SPECS = {FACE: PROFILE.detect.faces, PLATE: PROFILE.detect.plates}


def scored(pairs: list[tuple[list[float], float]]) -> Detections:
    boxes = np.array([b for b, _ in pairs], np.float32).reshape(-1, 4)
    return Detections(boxes, np.array([s for _, s in pairs], np.float32), np.full(len(pairs), FACE))


def crowd(rng: np.random.Generator, n: int = 80) -> list[list[float]]:
    """Still weak texture of a busy scene: 12-30 px boxes, most of them near the bottom left."""
    out = []
    for _ in range(n):
        x, y, s = rng.uniform(0, 700), rng.uniform(600, 1060), rng.uniform(12, 30)
        out.append([x, y, x + s, y + s * rng.uniform(0.9, 1.3)])
    return out


def crosser_box(f: int) -> list[float]:
    """The tune half's weak crosser (faces-wider clip 2): 20x34 px at (-41, -26) px a frame, entering
    at the bottom edge around frame 16 and leaving at the left one after frame 25."""
    cx, cy = 375 - 41 * (f - 16), 1087 - 26 * (f - 16)
    return [cx - 10, cy - 17, cx + 10, cy + 17]


def scene(seen: dict[int, float], n_frames: int = 40, seed: int = 0, pan: float = 0.0) -> list[Detections]:
    """A still busy scene of flickering weak texture (and one confident face far away), with the
    crosser found at the given scores on the frames in ``seen`` (its box jittering by a few px).
    ``pan``: px a frame every texture box moves (a camera panning over the scene)."""
    rng = np.random.default_rng(seed)
    texture = crowd(rng)
    frames = []
    for f in range(n_frames):
        pairs: list[tuple[list[float], float]] = [([1500.0, 100.0, 1540.0, 150.0], 0.9)]
        for b in texture:
            if rng.random() < 0.7:  # texture flickers in and out
                j = rng.uniform(-1.5, 1.5, 4)
                pairs.append(
                    (
                        [b[0] + pan * f + j[0], b[1] + j[1], b[2] + pan * f + j[2], b[3] + j[3]],
                        float(rng.uniform(0.05, 0.09)),
                    )
                )
        if f in seen:
            b = np.clip(np.asarray(crosser_box(f)) + rng.uniform(-4, 4, 4), 0, [W, H, W, H])
            pairs.append((b.tolist(), seen[f]))
        frames.append(scored(pairs))
    return frames


def masked(out: list[Detections]) -> list[Detections]:
    """The padded regions the video job masks for the tracker's output."""
    return [pad_and_clip(o, SPECS, (W, H), ellipse=PROFILE.mask.shape == "ellipse", video=True) for o in out]


def cover(regions: Detections, box: list[float]) -> float:
    return box_cover(regions, box, W, H)


def crosser_shows(f: int) -> bool:
    """At least half of the crosser lies inside the frame on frame ``f``."""
    return half_visible(np.asarray(crosser_box(f), np.float64), W, H)


SEEN = {19: 0.074, 20: 0.070, 22: 0.078, 23: 0.055, 24: 0.072}  # as on the tune clip


def test_a_weak_crosser_in_a_busy_still_scene_is_masked_wherever_half_of_it_shows():
    frames = scene(SEEN)
    visible = [f for f in range(40) if crosser_shows(f)]
    assert visible[0] <= 17 and visible[-1] >= 25  # two frames before its first sighting, one after its last
    out = masked(track_and_fill(frames, SPEC, confident=CONFIDENT)[0])
    assert all(cover(out[f], crosser_box(f)) >= 0.9 for f in visible), [
        round(cover(out[f], crosser_box(f)), 2) for f in visible
    ]
    # Before the rule, its sightings joined still texture's tracks (some of them persistent enough
    # to be masked), and no track followed it: bare on frames with no sighting (17, 18, 21 here) and one with.
    before = masked(track_and_fill(frames, OFF, confident=CONFIDENT)[0])
    assert sum(cover(before[f], crosser_box(f)) < 0.9 for f in visible) >= 3


def test_three_weak_sightings_are_not_a_crosser():
    frames = scene({19: 0.074, 20: 0.07, 22: 0.078})
    assert _crossers(frames, CONFIDENT, 4) == []


def test_still_flickering_texture_is_never_chained():
    frames = scene({})
    assert _crossers(frames, CONFIDENT, 4) == []
    on, _ = track_and_fill(frames, SPEC, confident=CONFIDENT)
    off, _ = track_and_fill(frames, OFF, confident=CONFIDENT)
    assert [len(a) for a in on] == [len(b) for b in off]


def test_a_slow_weak_walker_is_not_a_crosser():
    # 20x34 px at 4 px a frame (0.12 of its size): not a fast mover, its boxes overlap frame to frame.
    frames = [scored([([300.0 + 4 * f, 500.0, 320.0 + 4 * f, 534.0], 0.07)]) for f in range(20)]
    assert _crossers(frames, CONFIDENT, 4) == []

    def busy_with_walker(px_a_frame: float) -> list[Detections | None]:
        """A busy scene seen every 2nd frame, and a 20 px weak walker at this speed."""
        busy = scene({})
        for f in range(0, 40, 2):
            x = 1200.0 + px_a_frame * f
            busy[f] = Detections.merge([busy[f], scored([([x, 300.0, x + 20, 320.0], 0.07)])])
        return [d if f % 2 == 0 else None for f, d in enumerate(busy)]

    # At 5 px a frame its sightings 10 px apart overlap under the "still" IoU, so it moves, but at
    # 0.25 of its size a frame, under FAST_SPEED; twice as fast (0.5 of its size) it is a crosser.
    assert _crossers(busy_with_walker(5.0), CONFIDENT, 4) == []
    assert _crossers(busy_with_walker(10.0), CONFIDENT, 4)


def test_a_panning_camera_moves_every_weak_box_and_chains_none():
    # Every texture box moves at 12 px a frame (about half the boxes' size): each one "moves", so
    # the frame's weak candidates are mostly movers, and the camera, not the objects, moves.
    frames = scene({}, pan=12.0)
    assert _crossers(frames, CONFIDENT, 4) == []


def test_a_crosser_seen_on_every_other_frame_is_chained_across_the_gaps():
    # Plates come every 2nd frame: a chain's next sighting may be a detector frame or two later.
    seen = {18: 0.07, 20: 0.07, 22: 0.06, 24: 0.07}
    frames = [d if f % 2 == 0 else None for f, d in enumerate(scene(seen))]
    chains = _crossers(frames, CONFIDENT, 4)
    assert [t.frames for t in chains] == [[18, 20, 22, 24]]


def test_the_rule_only_ever_adds_masks():
    rng = np.random.default_rng(3)
    for k in range(6):
        seen = {int(f): float(rng.uniform(0.05, 0.11)) for f in rng.choice(np.arange(14, 28), size=6, replace=False)}
        frames = scene(seen, seed=k)
        on, _ = track_and_fill(frames, SPEC, confident=CONFIDENT)
        off, _ = track_and_fill(frames, OFF, confident=CONFIDENT)
        for a, b in zip(on, off):
            for box in b.xyxy:
                assert np.any(np.all(np.isclose(a.xyxy, box), axis=1))
            # each raw detection is packed once, as without the rule
            assert len(a[a.source == DETECTED]) == len(b[b.source == DETECTED]) + sum(
                1 for box in a.xyxy[a.source == DETECTED] if not np.any(np.all(np.isclose(b.xyxy, box), axis=1))
            )


def test_the_window_tracker_masks_a_weak_crosser_late_in_a_long_clip():
    # The crosser's chain lies in a later chunk of a clip several windows long: masked as offline.
    early = scene({}, n_frames=200, seed=1)
    late = scene(SEEN, seed=1)
    frames = early + late
    tracker = WindowTracker(SPEC, {"face": ClassTrack(4, CONFIDENT)}, frame_size=(W, H))
    out = []
    for found in frames:
        out.extend(s["face"] for s in tracker.push({"face": found}))
    out.extend(s["face"] for s in tracker.finish())
    assert len(out) == len(frames) and tracker.chunk < len(frames)
    regions = masked(out[200:])
    assert all(cover(regions[f], crosser_box(f)) >= 0.9 for f in range(40) if crosser_shows(f))


def flicker(movers: int, n_frames: int = 12, seed: int = 3) -> list[Detections]:
    """Still texture (400 weak boxes) and ``movers`` weak boxes at new random places each frame
    (rain, leaves): under a quarter of the weak candidates move, so only the count can tell."""
    rng = np.random.default_rng(seed)
    texture = [[x, y, x + 20, y + 24] for x, y in zip(rng.uniform(0, 1800, 400), rng.uniform(0, 1000, 400))]
    frames = []
    for _ in range(n_frames):
        pairs = [(b, 0.06) for b in texture]
        for x, y, s in zip(rng.uniform(0, 1880, movers), rng.uniform(0, 1040, movers), rng.uniform(12, 30, movers)):
            pairs.append(([x, y, x + s, y + s], 0.07))
        frames.append(scored(pairs))
    return frames


def test_dense_flicker_starts_no_chain_and_every_raw_detection_is_packed_once(monkeypatch):
    import anonymizer.track.linker as linker

    dense = flicker(linker.CROSSER_MAX_MOVERS + 12)
    assert linker._movers(dense, CONFIDENT) == {} and _crossers(dense, CONFIDENT, 4) == []
    monkeypatch.setattr(linker, "CROSSER_MAX_MOVERS", 10**6)  # without the bound every frame moves
    assert len(linker._movers(dense, CONFIDENT)) == len(dense)
    # Below the bound random movers may chain by chance; a sighting two chains share is packed once.
    out, _ = track_and_fill(dense, SPEC, confident=CONFIDENT, frame_size=(W, H))
    for o in out:
        raw = o.xyxy[o.source == DETECTED]
        assert len({b.tobytes() for b in raw}) == len(raw)
