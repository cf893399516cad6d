"""Per-frame provenance and the manual-mask geometry, frame by frame (no models, no media)."""

from __future__ import annotations

import numpy as np

from anonymizer.config import MaskSpec
from anonymizer.detections import DETECTED, FACE, PLATE, PREDICTED, Detections
from anonymizer.mask.regions import paint_shapes
from anonymizer.review.sidecar import parse_sidecar_text
from anonymizer.review.timeline import Timeline


def dets(*rows: tuple) -> Detections:
    """rows: (x1, y1, x2, y2, class, track id, source, confidence)."""
    if not rows:
        return Detections.empty()
    a = np.array(rows, np.float32)
    return Detections(a[:, :4], a[:, 7], a[:, 4].astype(int), a[:, 5].astype(int), a[:, 6].astype(int))


def test_timeline_tells_interpolation_between_sightings_from_lead_and_trail_guesses():
    t = Timeline({"face": 0.5, "plate": 0.5}, max_gap_frames=5)
    seen = (10, 10, 20, 20, FACE, 7, DETECTED, 0.9)
    guess = (10, 10, 20, 20, FACE, 7, PREDICTED, 0.9)
    weak = (50, 50, 60, 60, PLATE, 3, DETECTED, 0.1)
    frames = [[guess], [seen], [guess], [guess], [seen], [guess], [weak], []]
    for i, rows in enumerate(frames):
        t.record(i, dets(*rows), dets(seen) if i == 7 else Detections.empty())
        t.record_manual(i, 1 if i in (2, 3) else 0)
    t.finish(len(frames))
    rows = t.as_dict()["rows"]
    assert rows["face"] == [[0, 1, "predicted"], [1, 1, "detected"], [2, 2, "interpolated"], [4, 1, "detected"],
                            [5, 1, "predicted"], [7, 1, "excluded"]]
    assert rows["plate"] == [[6, 1, "detected"]]
    assert rows["manual"] == [[2, 2, "manual"]]
    why = {f["frame"]: f["why"] for f in t.leak_frames()}
    assert "face: track guesses only" in why[0] and "plate: weak detections only" in why[6]
    assert "face: detection excluded" in why[7]
    assert "face track starts or ends" in why[5] or "face track starts or ends" in why[6]


def test_an_exclusion_takes_only_boxes_wholly_inside_on_its_frames_and_classes():
    masks = parse_sidecar_text("exclusions:\n  - box: [0, 0, 100, 100]\n    classes: [face]\n    end_frame: 5\n")
    d = dets(
        (10, 10, 50, 50, FACE, 1, DETECTED, 0.9),  # inside
        (90, 10, 130, 50, FACE, 2, DETECTED, 0.9),  # crosses the right edge
        (0, 0, 100, 100, FACE, 3, PREDICTED, 0.9),  # exactly the box: inside
        (10, 10, 50, 50, PLATE, 4, DETECTED, 0.9),  # inside, but not a listed class
    )
    kept, excluded = masks.exclude(d, 5, None)
    assert excluded.tolist() == [True, False, True, False] and kept.tracker_id.tolist() == [2, 4]
    assert not masks.exclude(d, 6, None)[1].any()  # past its last frame


def test_a_polygon_is_painted_inside_only_and_a_box_to_its_edges():
    image = np.full((40, 40, 3), 200, np.uint8)
    masks = parse_sidecar_text(
        "regions:\n  - polygon: [[0, 0], [30, 0], [0, 30]]\n  - box: [31, 31, 38, 38]\n    method: fill\n"
    )
    paint_shapes(image, masks.shapes_at(0, None), MaskSpec(color=(0, 0, 0)))
    assert (image[2, 2] == 0).all() and (image[25, 25] == 200).all()  # inside / outside the triangle
    assert (image[31:38, 31:38] == 0).all() and (image[30, 30] == 200).all() and (image[38, 38] == 200).all()
