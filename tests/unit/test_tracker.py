"""The tracker only adds: every raw detection survives; gaps, leads and trails are filled."""

import numpy as np
import pytest

from anonymizer.config import TrackSpec
from anonymizer.detections import DETECTED, FACE, PREDICTED, Detections
from anonymizer.track.linker import link, track_and_fill


def det(*boxes):
    return Detections(np.array(boxes, np.float32).reshape(-1, 4), np.full(len(boxes), 0.9), np.full(len(boxes), FACE))


SPEC = TrackSpec(iou_match=0.1, max_gap_frames=5, lead_frames=2, trail_frames=3)


def test_every_raw_detection_is_kept_even_when_unmatched():
    frames = [det([0, 0, 10, 10]), det([100, 100, 110, 110], [0, 0, 10, 10]), det()]
    out, _ = track_and_fill(frames, SPEC)
    for raw, filled in zip(frames, out):
        kept = filled[filled.source == DETECTED]
        assert len(kept) == len(raw)
        assert np.allclose(np.sort(kept.xyxy, axis=0), np.sort(raw.xyxy, axis=0))


def test_gap_is_interpolated_from_both_sides():
    frames = [det([0, 0, 10, 10])] + [det()] * 3 + [det([20, 0, 30, 10])]
    out, n_tracks = track_and_fill(frames, SPEC)
    assert n_tracks == 1
    middle = out[2]
    assert (middle.source == PREDICTED).all()
    cx = (middle.xyxy[:, 0] + middle.xyxy[:, 2]) / 2
    k = int(np.argmin(np.abs(cx - 15)))
    assert abs(cx[k] - 15) < 1.0  # half way between the two sightings
    # the predicted box is grown, never shrunk, around the interpolated one
    assert middle.xyxy[k, 2] - middle.xyxy[k, 0] >= 10


def test_steady_motion_is_interpolated_with_one_box_per_frame():
    frames = [det([0, 0, 10, 10]), det(), det([10, 0, 20, 10]), det(), det([20, 0, 30, 10]), det(), det([30, 0, 40, 10])]
    out, _ = track_and_fill(frames, SPEC)
    assert [len(d) for d in out[3:6]] == [1, 1, 1]


def test_a_track_that_jumps_leaves_a_mask_where_it_was_and_where_it_lands():
    # Weak small plates side by side: the track hops from the left one to the right one, whose
    # last sighting then gets a trail in place, and the landing spot a lead.
    left, right = [0, 0, 20, 6], [30, 0, 50, 6]
    frames = [det(left), det(), det(left), det(), det(right), det(), det()]
    out, n_tracks = track_and_fill(frames, TrackSpec(iou_match=0.1, max_gap_frames=5, lead_frames=2, trail_frames=3))
    assert n_tracks == 1
    assert _covers(out[3], left) and _covers(out[4], left)  # the plate it left stays masked
    assert _covers(out[3], right)  # the plate it joined is masked before it was seen


def test_mask_starts_before_first_and_ends_after_last_detection():
    frames = [det()] * 4 + [det([10, 10, 30, 30])] + [det()] * 6
    out, _ = track_and_fill(frames, SPEC)
    covered = [i for i, d in enumerate(out) if len(d)]
    assert covered == [2, 3, 4, 5, 6, 7]


def _covers(dets, box):
    return any((d[:2] <= np.array(box[:2])).all() and (d[2:] >= np.array(box[2:])).all() for d in dets.xyxy)


def test_trail_masks_both_the_moved_and_the_held_box():
    frames = [det([0, 0, 10, 10]), det([10, 0, 20, 10]), det()]
    out, _ = track_and_fill(frames, SPEC)
    predicted = out[2][out[2].source == PREDICTED]
    assert _covers(predicted, [20, 0, 30, 10])  # kept moving right
    # ... and where it was last seen: two jittery sightings of a tiny plate gave a velocity that
    # carried the mask away from a plate that had not moved (a leak in the video evaluation)
    assert _covers(predicted, [10, 0, 20, 10])


def test_lead_masks_both_the_held_and_the_backward_moved_box():
    frames = [det(), det(), det([20, 0, 30, 10]), det([30, 0, 40, 10])]
    out, _ = track_and_fill(frames, SPEC)
    lead = out[1][out[1].source == PREDICTED]
    assert _covers(lead, [10, 0, 20, 10])  # where it came from
    assert _covers(lead, [20, 0, 30, 10])  # where it was first seen


def test_a_shrinking_track_never_predicts_an_inside_out_box():
    # Each sighting 2 px narrower: coasting that for 8 frames would give x2 < x1, and no mask.
    frames = [det([0, 0, 12, 12]), det([1, 0, 11, 12])] + [det()] * 8
    out, _ = track_and_fill(frames, TrackSpec(iou_match=0.1, max_gap_frames=5, lead_frames=0, trail_frames=8))
    for filled in out[2:]:
        wh = filled.xyxy[:, 2:] - filled.xyxy[:, :2]
        assert len(filled) and (wh >= 10).all()


def test_a_still_object_gets_one_predicted_box_not_two():
    frames = [det([0, 0, 10, 10]), det([0, 0, 10, 10]), det()]
    out, _ = track_and_fill(frames, SPEC)
    assert len(out[2]) == 1


def test_frames_the_detector_skipped_are_covered():
    # Detector ran on every 3rd frame (None elsewhere); lone detections still cover their skip.
    frames = [det([0, 0, 10, 10]), None, None, det(), None, None]
    out, _ = track_and_fill(frames, TrackSpec(max_gap_frames=0, lead_frames=0, trail_frames=0), detect_every=3)
    assert [len(d) > 0 for d in out[:3]] == [True, True, True]


def test_fast_small_objects_link_by_centre_distance():
    frames = [det([0, 0, 8, 8]), det([7, 0, 15, 8]), det([14, 0, 22, 8])]
    tracks = link(frames, SPEC)
    assert len(tracks) == 1 and tracks[0].frames == [0, 1, 2]


def test_tracks_end_after_max_gap():
    frames = [det([0, 0, 10, 10])] + [det()] * 20 + [det([0, 0, 10, 10])]  # gap 21 > 5 + 1
    assert len(link(frames, SPEC)) == 2


def scored(*pairs):
    """Detections from (box, score) pairs."""
    boxes = np.array([b for b, _ in pairs], np.float32).reshape(-1, 4)
    return Detections(boxes, np.array([s for _, s in pairs], np.float32), np.full(len(pairs), FACE))


def test_weak_detections_on_a_confirmed_track_are_kept():
    # A face scores 0.9, then 0.08 in three blurred frames (below the 0.15 threshold), then 0.9 again.
    box = [10, 10, 30, 30]
    frames = [scored((box, 0.9))] + [scored((box, 0.08))] * 3 + [scored((box, 0.9))]
    out, n_tracks = track_and_fill(frames, SPEC, confident=0.15)
    assert n_tracks == 1
    for filled in out:
        kept = filled[filled.source == DETECTED]
        assert len(kept) == 1 and np.allclose(kept.xyxy[0], box)


def test_weak_detections_alone_are_dropped_with_their_track():
    # Texture that scores 0.08 in every frame never reaches the threshold: no mask, no prediction.
    frames = [scored(([100, 100, 120, 120], 0.08))] * 5 + [scored(([0, 0, 10, 10], 0.9))]
    out, n_tracks = track_and_fill(frames, SPEC, confident=0.15)
    assert n_tracks == 1
    assert all(len(filled) == 0 for filled in out[:3])  # frames 3-4 hold only the lead of the real face
    assert all(not np.any(filled.xyxy[:, 0] >= 100) for filled in out)


def test_weak_start_of_a_track_is_masked_before_its_first_confident_frame():
    # A face entering the frame scores low until it is fully visible: its weak frames are masked
    # even beyond lead_frames (2 here), because they belong to the confirmed track.
    box = [50, 50, 70, 70]
    frames = [scored((box, 0.06))] * 6 + [scored((box, 0.8))]
    out, _ = track_and_fill(frames, SPEC, confident=0.15)
    assert all(len(filled[filled.source == DETECTED]) == 1 for filled in out)


def test_without_a_confidence_split_every_detection_counts():
    frames = [scored(([100, 100, 120, 120], 0.08))] * 3
    out, n_tracks = track_and_fill(frames, SPEC)
    assert n_tracks == 1 and all(len(filled) == 1 for filled in out)


def test_weak_candidates_never_take_away_a_mask():
    # Weak candidates may link differently from the confident detections (a weak box in a gap is
    # not the grown interpolation); whatever they do, every box of the confident-only result stays.
    rng = np.random.default_rng(3)
    for _ in range(20):
        frames = []
        for f in range(30):
            pairs = []
            for k in range(3):
                if rng.random() < 0.7:
                    x = 40 * k + f * rng.uniform(0, 2)
                    pairs.append(([x, 10, x + 20, 30], float(rng.choice([0.9, 0.08]))))
            frames.append(scored(*pairs) if pairs else scored())
        strong_only = [d[d.confidence >= 0.15] for d in frames]
        base, _ = track_and_fill(strong_only, SPEC)
        out, _ = track_and_fill(frames, SPEC, confident=0.15)
        for b, o in zip(base, out):
            for box in b.xyxy:
                assert np.any(np.all(np.isclose(o.xyxy, box), axis=1))


def test_a_persistent_track_of_weak_candidates_is_masked_a_flickering_one_is_not():
    # A small masked face scoring 0.06-0.1 in every frame never meets the threshold, yet a
    # detector that keeps finding the same thing frame after frame is seeing a face.
    spec = TrackSpec(iou_match=0.1, max_gap_frames=2, lead_frames=0, trail_frames=0, confirm_sightings=5)
    persistent = [scored(([0, 0, 10, 10], 0.07)) for _ in range(6)]
    out, _ = track_and_fill(persistent, spec, confident=0.12)
    assert all(len(filled) == 1 for filled in out)
    flicker = [scored(([0, 0, 10, 10], 0.07)) for _ in range(4)] + [det()] * 2
    out, _ = track_and_fill(flicker, spec, confident=0.12)
    assert all(len(filled) == 0 for filled in out)
    off = TrackSpec(iou_match=0.1, max_gap_frames=2, lead_frames=0, trail_frames=0, confirm_sightings=0)
    assert all(len(filled) == 0 for filled in track_and_fill(persistent, off, confident=0.12)[0])


def test_persistence_alone_does_not_mask_weak_texture_far_larger_than_the_faces_around_it():
    # Texture on a truck's front scores like a weak face in every frame; masking it for
    # persisting hid the truck for the whole clip. A small weak track still earns its mask.
    spec = TrackSpec(iou_match=0.1, max_gap_frames=2, lead_frames=0, trail_frames=0, confirm_sightings=5, confirm_max_px=64)
    truck = [scored(([100, 100, 300, 260], 0.07), ([0, 0, 30, 30], 0.9)) for _ in range(6)]
    out, _ = track_and_fill(truck, spec, confident=0.12)
    assert all(f.xyxy.tolist() == [[0, 0, 30, 30]] for f in out)
    small = [scored(([100, 100, 140, 140], 0.07), ([0, 0, 30, 30], 0.9)) for _ in range(6)]
    assert all(len(f) == 2 for f in track_and_fill(small, spec, confident=0.12)[0])
    # Filmed from up close, faces are large too: twice the confident tracks' size is allowed.
    close = [scored(([100, 100, 300, 260], 0.07), ([400, 0, 520, 120], 0.9)) for _ in range(6)]
    assert all(len(f) == 2 for f in track_and_fill(close, spec, confident=0.12)[0])
    anysize = TrackSpec(iou_match=0.1, max_gap_frames=2, lead_frames=0, trail_frames=0, confirm_sightings=5, confirm_max_px=0)
    assert all(len(f) == 2 for f in track_and_fill(truck, anysize, confident=0.12)[0])


# Fast movers (linker.FAST_REACH): a 28x22 face crossing a 1080p frame in 0.7 s moves ~80 px a frame.


def _face_at(x: float, y: float = 500.0, w: float = 28.0, h: float = 22.0) -> list[float]:
    return [x, y, x + w, y + h]


def test_a_fast_mover_seen_once_links_its_far_second_sighting_then_follows_its_velocity():
    frames = [det(_face_at(100 + 80 * i)) for i in range(5)]
    tracks = link(frames, SPEC)
    assert len(tracks) == 1 and tracks[0].frames == [0, 1, 2, 3, 4]


def test_a_fast_mover_missed_in_some_frames_is_interpolated_where_it_really_is():
    xs = [100 + 80 * i for i in range(9)]
    frames = [det(_face_at(x)) if i in (0, 1, 4, 5, 8) else det() for i, x in enumerate(xs)]
    out, n_tracks = track_and_fill(frames, SPEC)
    assert n_tracks == 1
    for i in (2, 3, 6, 7):  # where the face was and no detector frame found it
        assert _covers(out[i], _face_at(xs[i])), i


def test_a_fast_link_needs_a_box_of_the_same_size():
    # A 28 px face, then a 90 px one 240 px away: not the same object.
    frames = [det(_face_at(100)), det([340, 480, 430, 570])]
    assert len(link(frames, SPEC)) == 2


def test_a_fast_link_is_only_a_second_sighting_after_that_the_motion_must_agree():
    # A track moving right at 80 px a frame does not take a box 240 px off its predicted path.
    frames = [det(_face_at(100)), det(_face_at(180)), det(_face_at(260, y=740))]
    tracks = link(frames, SPEC)
    assert sorted(t.frames for t in tracks) == [[0, 1], [2]]


def test_a_fast_link_never_takes_a_box_the_ordinary_matching_gave_another_track():
    # A standing face next to where a fast one passes keeps its own sighting.
    still = [400, 500, 428, 522]
    frames = [det(_face_at(100), still), det(_face_at(180), still), det(_face_at(260), still)]
    tracks = link(frames, SPEC)
    by_first = {tuple(t.boxes[0].tolist()): t.frames for t in tracks}
    assert by_first[tuple(map(float, still))] == [0, 1, 2]
    assert by_first[tuple(map(float, _face_at(100)))] == [0, 1, 2]


def test_two_fast_movers_in_opposite_directions_keep_their_own_tracks():
    a = [_face_at(100 + 80 * i) for i in range(6)]
    b = [_face_at(900 - 80 * i, y=540) for i in range(6)]
    frames = [det(a[i], b[i]) for i in range(6)]
    tracks = link(frames, SPEC)
    assert len(tracks) == 2
    for t in tracks:
        xs = [float(box[0]) for box in t.boxes]
        steps = np.diff(xs)
        assert np.allclose(steps, steps[0]) and abs(steps[0]) == 80


def _covers(dets: Detections, box: list[float]) -> bool:
    x1, y1, x2, y2 = box
    return bool(
        ((dets.xyxy[:, 0] <= x1) & (dets.xyxy[:, 1] <= y1) & (dets.xyxy[:, 2] >= x2) & (dets.xyxy[:, 3] >= y2)).any()
    )


def test_a_fast_movers_lead_and_trail_follow_its_motion_up_to_max_gap_frames():
    # A 20x10 plate moving 40 px a frame, seen on frames 8, 10 and 12 only (the detector missed
    # the frames where it entered and left): its lead and trail cover its path for max_gap_frames
    # (5 here) on either side, beyond lead_frames (2) and trail_frames (3), where it really is.
    spec = TrackSpec(iou_match=0.1, max_gap_frames=5, lead_frames=2, trail_frames=3)

    def truth(f: int) -> list[float]:
        return [40.0 * f, 100.0, 40.0 * f + 20, 110.0]

    frames = [det(truth(f)) if f in (8, 10, 12) else det() for f in range(19)]
    out, _ = track_and_fill(frames, spec)
    covered = [f for f in range(19) if _covers(out[f], truth(f))]
    assert covered == list(range(3, 18))  # 8 - 5 ... 12 + 5
    assert not out[2] and not out[18]  # no further: a straight line is trusted over max_gap_frames only
    # Beyond the ordinary lead only the moved guess is added, not the held box as well.
    assert len(out[4]) == 1 and len(out[6]) == 2
    # A track that went nowhere overall (a box hopping back) is not a fast mover, whatever its last step.
    hop = [det(truth(8)), det(), det([334.0, 100, 354, 110]), det(), det(truth(8))] + [det()] * 14  # 7 px a frame, back
    out, _ = track_and_fill(hop, spec)
    assert [f for f in range(19) if len(out[f])] == list(range(0, 8))


def test_a_slow_movers_lead_and_trail_are_not_extended():
    spec = TrackSpec(iou_match=0.1, max_gap_frames=5, lead_frames=2, trail_frames=3)
    frames = [det([2.0 * f, 100, 2.0 * f + 20, 110]) if f in (8, 10) else det() for f in range(17)]
    out, _ = track_and_fill(frames, spec)
    assert [f for f in range(17) if len(out[f])] == list(range(6, 14))


def test_a_fast_mover_lost_past_max_gap_is_bridged_only_where_its_motion_puts_it():
    # A 20x10 plate moving 20 px a frame, seen on frames 0, 2 and 4, then not for 9 frames (more
    # than max_gap_frames, 5): its sighting on frame 13 lies where the motion predicts, so one
    # track bridges the gap; the same box 30 px off the line (no overlap with the prediction) does not.
    spec = TrackSpec(iou_match=0.1, max_gap_frames=5, lead_frames=2, trail_frames=3)

    def truth(f: int, dy: float = 0.0) -> list[float]:
        return [20.0 * f, 100.0 + dy, 20.0 * f + 20, 110.0 + dy]

    frames = [det(truth(f)) if f in (0, 2, 4, 13) else det() for f in range(14)]
    out, n_tracks = track_and_fill(frames, spec)
    assert n_tracks == 1
    assert all(_covers(out[f], truth(f)) for f in range(14))
    off_line = [det(truth(f)) if f in (0, 2, 4) else det(truth(f, 30.0)) if f == 13 else det() for f in range(14)]
    _, n_tracks = track_and_fill(off_line, spec)
    assert n_tracks == 2


def test_a_fast_mover_joined_across_a_long_gap_keeps_the_held_trail_and_lead_of_both_ends():
    # Joined across more than max_gap, the track would have been two without the fast-mover rule,
    # each end with its box held in place (the plate may have braked): the join must not drop them.
    spec = TrackSpec(iou_match=0.1, max_gap_frames=5, lead_frames=2, trail_frames=3)

    def truth(f: int) -> list[float]:
        return [20.0 * f, 100.0, 20.0 * f + 20, 110.0]

    frames = [det(truth(f)) if f in (0, 2, 4, 13) else det() for f in range(14)]
    out, n_tracks = track_and_fill(frames, spec)
    assert n_tracks == 1
    assert all(_covers(out[f], truth(4)) for f in (5, 6, 7))  # held where last seen
    assert all(_covers(out[f], truth(13)) for f in (11, 12))  # held where it reappeared


def test_a_fast_mover_lost_past_max_gap_never_takes_a_sighting_from_a_live_track():
    # The lost plate's predicted box lands exactly on a box that a standing object seen on frames
    # 11 and 12 (8 px beside it) also wants: the live track keeps its sighting.
    spec = TrackSpec(iou_match=0.1, max_gap_frames=5, lead_frames=2, trail_frames=3)

    def truth(f: int) -> list[float]:
        return [20.0 * f, 100.0, 20.0 * f + 20, 110.0]

    standing = [20.0 * 13 + 8, 100.0, 20.0 * 13 + 28, 110.0]
    frames = [det(truth(f)) if f in (0, 2, 4) else det(standing) if f in (11, 12) else det() for f in range(13)]
    frames.append(det(truth(13)))
    tracks = link(frames, spec)
    owner = next(t for t in tracks if 13 in t.frames)
    assert owner.frames == [11, 12, 13]


def _plate_frames(sightings: dict[int, list[list[float]]], n: int, every: int = 2) -> list[Detections | None]:
    """One class's per-frame input as the video path gives it: None where the class did not run
    (every ``every``-th frame runs), an empty Detections where it ran and found nothing."""
    return [None if f % every else det(*sightings[f]) if f in sightings else det() for f in range(n)]


def test_a_fast_mover_seen_only_every_full_plan_period_is_masked_over_its_whole_path():
    # A 20x10 plate crossing at 60 px a frame that only the full plan finds: plates run every 2nd
    # frame and the full plan every 3rd of those, so it is seen on frames 0, 6 and 12 only. Its
    # sightings are 360 px (25 of its sizes) apart: linked (as an alternative track), the frames
    # between are interpolated where it really is (held boxes alone lag up to 180 px behind it),
    # and from its third sighting on its lead and trail follow it too.
    spec = TrackSpec(iou_match=0.1, max_gap_frames=15, lead_frames=5, trail_frames=8)

    def truth(f: int) -> list[float]:
        return [60.0 * f, 100.0, 60.0 * f + 20, 110.0]

    frames = _plate_frames({f: [truth(f)] for f in (0, 6, 12)}, 31)
    out, _ = track_and_fill(frames, spec, detect_every=6)
    assert [f for f in range(31) if not _covers(out[f], truth(f))] == list(range(28, 31))  # 12 + 15 max_gap_frames
    assert [t.frames for t in link(frames, spec, detect_every=6) if t.alternative and len(t.frames) == 3] == [[0, 6, 12]]


def test_two_sparse_crossers_in_opposite_directions_are_masked_where_they_pass_each_other():
    # Two 20x10 plates in one lane closing at 60 px a frame each, seen on frames 0, 6 and 12 only:
    # by frame 6 they have passed each other, so each one's nearest second sighting is the other
    # plate's. The link not taken is kept as an alternative, so both plates stay masked between
    # their sightings, and the third sightings (on the true lines) continue the true tracks.
    spec = TrackSpec(iou_match=0.1, max_gap_frames=15, lead_frames=5, trail_frames=8)

    def a(f: int) -> list[float]:
        return [200 + 60.0 * f, 100.0, 220 + 60.0 * f, 110.0]

    def b(f: int) -> list[float]:
        return [800 - 60.0 * f, 104.0, 820 - 60.0 * f, 114.0]

    frames = _plate_frames({f: [a(f), b(f)] for f in (0, 6, 12)}, 13)
    out, _ = track_and_fill(frames, spec, detect_every=6)
    assert [f for f in range(13) if not _covers(out[f], a(f))] == []
    assert [f for f in range(13) if not _covers(out[f], b(f))] == []
    # Every sighting is packed once as a detection, whichever tracks share it.
    assert [int(np.count_nonzero(d.source == DETECTED)) for d in out[::6]] == [2, 2, 2]
    true_lines = [t.frames for t in link(frames, spec, detect_every=6) if len(t.frames) == 3]
    assert len(true_lines) == 2


# Objects cut by the frame's border (linker.EDGE_PX): the detectors clip boxes to the frame.

FRAME_W, FRAME_H = 1920, 1080
EDGES = ["left", "right", "top", "bottom"]


def _edge_crosser(edge: str, leaving: bool, speed: float = 32.0, crossing: float = 11.0 + 1 / 3, w: float = 28.0, h: float = 22.0):
    """The true box of a w x h face that enters at ``edge`` (its leading side crosses the border
    at frame ``crossing``) or leaves there (its trailing side crosses it then), at ``speed`` px a
    frame: a function of the frame number."""

    def truth(f: int) -> np.ndarray:
        d = speed * (f - crossing)  # how far past the border the crossing side is
        if edge == "left":
            x = -d if leaving else d - w
        elif edge == "right":
            x = FRAME_W - w + d if leaving else FRAME_W - d
        if edge in ("left", "right"):
            return np.array([x, 500, x + w, 500 + h])
        y = (-d if leaving else d - h) if edge == "top" else (FRAME_H - h + d if leaving else FRAME_H - d)
        return np.array([900, y, 900 + w, y + h])

    return truth


def _visible(box: np.ndarray) -> tuple[float, np.ndarray]:
    """(share of ``box`` inside the frame, its part inside the frame)."""
    inside = np.clip(box, 0, [FRAME_W, FRAME_H, FRAME_W, FRAME_H])
    return float(np.prod(np.maximum(inside[2:] - inside[:2], 0)) / np.prod(box[2:] - box[:2])), inside


def _bare_frames(truth, out: list[Detections], n: int) -> list[int]:
    """Frames where at least half of the object is inside the frame and no box (clipped to the
    frame, as masks are) covers that visible part."""
    bare = []
    for f in range(n):
        share, inside = _visible(truth(f))
        if share >= 0.5 and not _covers(out[f].with_xyxy(np.clip(out[f].xyxy, 0, [FRAME_W, FRAME_H] * 2)), inside.tolist()):
            bare.append(f)
    return bare


def _full_plan_sightings(truth, n: int, every: int = 4) -> list[Detections | None]:
    """A face only the full plan finds (every ``every``-th frame): on those frames it is found
    while at least half of it is inside the frame, as its clipped box."""
    frames = []
    for f in range(n):
        share, inside = _visible(truth(f))
        frames.append(det(inside.tolist()) if f % every == 0 and share >= 0.5 else det())
    return frames


DEFAULT_TRACK = TrackSpec(iou_match=0.1, max_gap_frames=15, lead_frames=5, trail_frames=8)


@pytest.mark.parametrize("edge", EDGES)
def test_a_crosser_entering_at_an_edge_is_masked_in_every_frame_half_of_it_is_visible(edge):
    # A 28x22 face entering at 32 px a frame, found on frames 12 (cut by the border: 16 of its 28
    # px) and 16, 20, ...: without the frame size, its first box is half its size and its motion
    # half its speed there, so the line between the first two sightings lags behind it.
    truth = _edge_crosser(edge, leaving=False)
    frames = _full_plan_sightings(truth, 30)
    out, _ = track_and_fill(frames, DEFAULT_TRACK, detect_every=4, frame_size=(FRAME_W, FRAME_H))
    assert _bare_frames(truth, out, 30) == []
    # The detections themselves are masked as found (clipped to the frame), never moved.
    assert _as_set(out[12][out[12].source == DETECTED]) == _as_set(frames[12])


@pytest.mark.parametrize("edge", EDGES)
def test_a_crosser_leaving_at_an_edge_is_masked_in_every_frame_half_of_it_is_visible(edge):
    # The same face leaving: its last sighting (frame 12) is cut by the border; its trail keeps
    # the face's whole size, moved at the speed of its uncut side.
    truth = _edge_crosser(edge, leaving=True, crossing=11.0 + 2 / 3)
    frames = _full_plan_sightings(truth, 30)
    out, _ = track_and_fill(frames, DEFAULT_TRACK, detect_every=4, frame_size=(FRAME_W, FRAME_H))
    assert _bare_frames(truth, out, 30) == []


def test_a_box_standing_at_the_border_is_left_as_it_is():
    # Never seen whole, its size beyond the border is unknown: nothing is invented.
    frames = [det([0, 500, 14, 522]) for _ in range(6)]
    tracks = link(frames, SPEC, frame_size=(FRAME_W, FRAME_H))
    assert len(tracks) == 1 and tracks[0].detected is None
    assert all(b.tolist() == [0, 500, 14, 522] for b in tracks[0].boxes)


def _as_set(dets: Detections) -> set[tuple[float, ...]]:
    return {tuple(np.round(b, 2)) for b in dets.xyxy.tolist()}


@pytest.mark.parametrize("cadence", ["every frame", "full plan only", "plates"])
def test_two_crossers_in_opposite_directions_are_both_masked_in_every_frame(cadence):
    # Issue 26's check: two 28x22 faces cross a 1080p frame in 0.8 s (80 px a frame) in one lane,
    # one from each side, entering and leaving at the edges; while they overlap only the nearer
    # one is found. Found on every frame, only on the full plan's (every 4th), or on every 2nd
    # frame (the plates' cadence, full plan every 6th). Each is masked in every frame where at
    # least half of it is visible, whoever hides it.
    step, every, found_every = {"every frame": (1, 4, 1), "full plan only": (1, 4, 4), "plates": (2, 6, 2)}[cadence]

    def a(f: int) -> np.ndarray:
        return np.array([-20 + 80.0 * f, 500, 8 + 80.0 * f, 522])

    def b(f: int) -> np.ndarray:
        return np.array([FRAME_W - 8 - 80.0 * f, 508, FRAME_W + 20 - 80.0 * f, 530])

    def hidden(f: int) -> bool:  # b behind a
        return bool(abs(a(f)[0] - b(f)[0]) < 28)

    n = 26
    frames: list[Detections | None] = []
    for f in range(n):
        if f % step:
            frames.append(None)
            continue
        boxes = [] if f % found_every else [obj(f) for obj in (a, b) if _visible(obj(f))[0] >= 0.5 and not (obj is b and hidden(f))]
        frames.append(det(*[np.clip(x, 0, [FRAME_W, FRAME_H] * 2).tolist() for x in boxes]))
    out, _ = track_and_fill(frames, DEFAULT_TRACK, detect_every=every, frame_size=(FRAME_W, FRAME_H))
    assert _bare_frames(a, out, n) == []
    assert [f for f in _bare_frames(b, out, n) if not hidden(f)] == []


def _share_covered(dets: Detections, box: list[float]) -> float:
    """The largest share of ``box`` one of ``dets`` covers (0 with none)."""
    if not len(dets):
        return 0.0
    b = np.asarray(box, np.float32)
    tl, br = np.maximum(dets.xyxy[:, :2], b[:2]), np.minimum(dets.xyxy[:, 2:], b[2:])
    return float((np.prod(np.clip(br - tl, 0, None), axis=1) / np.prod(b[2:] - b[:2])).max())


def test_a_wrong_link_at_a_tracks_start_does_not_send_its_whole_lead_the_wrong_way():
    # A 56x25 plate crossing diagonally at (-40, +67) px a frame, plates on every 2nd frame: seen on
    # frames 6, 12 and 14, and on frame 8 the track took a box 40 px to its right (a weak false
    # plate beside it; in bench/diagonal_plates.py's clip it was 80 px, which these bare boxes
    # would split into two tracks). The first two sightings' velocity, (-20, +67), drifts off the
    # plate; the velocity fitted through the first four sightings follows it.
    spec = TrackSpec(iou_match=0.1, max_gap_frames=15, lead_frames=5, trail_frames=8)

    def truth(f: int) -> list[float]:
        x, y = 1574.0 - 40.0 * (f - 6), 415.0 + 67.0 * (f - 6)
        return [x, y, x + 56, y + 25]

    off = [v + d for v, d in zip(truth(8), (40, 0, 40, 0))]
    frames = _plate_frames({6: [truth(6)], 8: [off], 12: [truth(12)], 14: [truth(14)]}, 20)
    (track,) = [t for t in link(frames, spec) if not t.alternative]
    assert track.frames == [6, 8, 12, 14]  # the false box is part of the track
    out, _ = track_and_fill(frames, spec, keep=True)  # the plates' tracking
    # Most of the plate is masked on every frame before its first sighting, up to max_gap_frames.
    assert min(_share_covered(out[f], truth(f)) for f in range(6)) >= 0.8
    # The two sightings' guesses alone (held and moved, as without ``keep``: faces) do not.
    alone, _ = track_and_fill(frames, spec)
    assert min(_share_covered(alone[f], truth(f)) for f in range(6)) < 0.5


def test_a_fitted_guess_adds_nothing_where_the_motion_is_smooth():
    # The same plate seen on every plate frame of its path: both velocities agree, one guess each.
    spec = TrackSpec(iou_match=0.1, max_gap_frames=15, lead_frames=5, trail_frames=8)

    def truth(f: int) -> list[float]:
        x, y = 1574.0 - 40.0 * (f - 6), 415.0 + 67.0 * (f - 6)
        return [x, y, x + 56, y + 25]

    frames = _plate_frames({f: [truth(f)] for f in (6, 8, 10, 12)}, 20)
    out, _ = track_and_fill(frames, spec, keep=True)
    assert [len(out[f]) for f in range(6)] == [1, 2, 2, 2, 2, 2]  # past the lead, the moved guess alone
    assert [f for f in range(6) if not _covers(out[f], truth(f))] == []
