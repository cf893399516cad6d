"""Per-frame provenance and the manual-mask geometry, frame by frame (no models, no media)."""

from __future__ import annotations

import numpy as np

from anonymizer.config import MaskSpec
from anonymizer.detections import DETECTED, FACE, PLATE, PREDICTED, Detections
from anonymizer.mask.regions import paint_shapes
from anonymizer.review.sidecar import parse_sidecar_text
from anonymizer.stream.timeline import Timeline


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
                            [5, 1, "predicted"]]
    assert rows["face excluded"] == [[7, 1, "excluded"]] and "plate excluded" not in rows
    assert rows["plate"] == [[6, 1, "detected"]]
    assert rows["manual"] == [[2, 2, "manual"]]
    why = {f["frame"]: f["why"] for f in t.leak_frames()}
    assert "face: track guesses only" in why[0] and "plate: weak detections only" in why[6]
    assert "face: detection excluded" in why[7]
    assert "face track starts or ends" in why[5] or "face track starts or ends" in why[6]


def test_a_face_masked_on_every_frame_stays_detected_beside_an_excluded_one_in_the_report():
    """Issue 25: a driver detected and masked on every frame, beside a poster's face excluded on
    every frame, had his whole row painted "excluded" in the QA timeline."""
    from anonymizer.review.report import timeline_svg

    t = Timeline({"face": 0.5, "plate": 0.5}, max_gap_frames=5)
    driver = (10, 10, 20, 20, FACE, 1, DETECTED, 0.9)
    poster = (60, 10, 80, 30, FACE, 2, DETECTED, 0.9)
    for i in range(12):
        t.record(i, dets(driver), dets(poster))
    t.finish(12)
    rows = t.as_dict()["rows"]
    assert rows["face"] == [[0, 12, "detected"]]
    assert rows["face excluded"] == [[0, 12, "excluded"]]
    svg = timeline_svg(t.as_dict(), [])
    face_row = svg.split(">face<", 1)[1].split(">face excluded<", 1)[0]
    assert 'class="run detected"' in face_row and 'class="run excluded"' not in face_row


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


def test_guesses_are_classified_as_frames_arrive_and_nothing_piles_up_over_a_long_clip():
    """The same kinds as judging every guess against every sighting at the end, with bounded state."""
    from anonymizer.stream.timeline import INTERPOLATED_BIT, PREDICTED_BIT

    gap = 4
    rng = np.random.default_rng(3)
    n_frames, tracks = 3000, 6
    t = Timeline({"face": 0.5}, max_gap_frames=gap)
    sightings: dict[int, list[int]] = {k: [] for k in range(tracks)}
    guesses: list[tuple[int, int]] = []
    most_pending = 0
    for i in range(n_frames):
        rows = []
        for k in range(tracks):
            r = rng.random()
            if r < 0.3:
                rows.append((10, 10, 20, 20, FACE, k, DETECTED, 0.9))
                sightings[k].append(i)
            elif r < 0.5:
                rows.append((10, 10, 20, 20, FACE, k, PREDICTED, 0.9))
                guesses.append((i, k))
        t.record(i, dets(*rows), Detections.empty())
        most_pending = max(most_pending, sum(len(v) for v in t._pending.values()))
    t.finish(n_frames)

    expected = np.zeros(n_frames, np.uint8)
    for i, k in guesses:  # the whole-clip rule: a sighting within the gap before and after
        seen = np.array(sightings[k])
        before = np.any((seen < i) & (seen >= i - gap - 1))
        after = np.any((seen > i) & (seen <= i + gap + 1))
        expected[i] |= INTERPOLATED_BIT if before and after else PREDICTED_BIT
    got = np.frombuffer(bytes(t.bits[FACE]), np.uint8) & (INTERPOLATED_BIT | PREDICTED_BIT)
    assert np.array_equal(got, expected)
    assert most_pending <= tracks * 3 * (gap + 2)  # a few gaps' worth per track, not the clip's
