"""The tracker only adds: every raw detection survives; gaps, leads and trails are filled."""

import numpy as np

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
    assert len(middle) == 1 and middle.source[0] == PREDICTED
    cx = (middle.xyxy[0, 0] + middle.xyxy[0, 2]) / 2
    assert abs(cx - 15) < 1.0  # half way between the two sightings
    # the predicted box is grown, never shrunk, around the interpolated one
    assert middle.xyxy[0, 2] - middle.xyxy[0, 0] >= 10


def test_mask_starts_before_first_and_ends_after_last_detection():
    frames = [det()] * 4 + [det([10, 10, 30, 30])] + [det()] * 6
    out, _ = track_and_fill(frames, SPEC)
    covered = [i for i, d in enumerate(out) if len(d)]
    assert covered == [2, 3, 4, 5, 6, 7]


def test_trail_extrapolates_motion():
    frames = [det([0, 0, 10, 10]), det([10, 0, 20, 10]), det()]
    out, _ = track_and_fill(frames, SPEC)
    predicted = out[2][out[2].source == PREDICTED]
    assert predicted.xyxy[0, 0] > 15  # kept moving right


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
