"""The plates' text cue (anonymizer.detect.text): map to boxes, the plate-shape rule, and the merge
that only ever adds candidates to the plate model's detections; its profile keys."""

from __future__ import annotations

import numpy as np
import pytest

from anonymizer.config import Profile, profile_from_dict
from anonymizer.detect.text import (
    PlateShape,
    add_text_candidates,
    boxes_from_map,
    input_size,
    plate_shaped,
    text_candidates,
)
from anonymizer.detections import PLATE, Detections
from anonymizer.errors import ConfigError

SHAPE = PlateShape(min_score=0.6, min_aspect=1.5, max_aspect=6.0, min_height_px=6, max_height_frac=0.1, grow=0.25)


def test_a_text_line_on_the_map_becomes_one_box_grown_by_the_unclip_distance() -> None:
    prob = np.zeros((64, 128), np.float32)
    prob[20:30, 30:70] = 0.9  # a 40x10 core of a text line
    prob[50:52, 100:102] = 0.2  # below the binarisation threshold: nothing
    xyxy, scores = boxes_from_map(prob)
    assert len(xyxy) == 1
    # The 2x2 dilation adds a pixel; DB's unclip grows each side by area * 1.6 / perimeter.
    w, h = 41, 11
    grow = w * h * 1.6 / (2 * (w + h))
    np.testing.assert_allclose(xyxy[0], [30 - grow, 20 - grow, 30 + w + grow, 20 + h + grow], atol=1e-4)
    assert 0.75 < scores[0] <= 0.9  # the mean probability over the (dilated) region


def test_the_input_is_a_multiple_of_32_with_the_longer_side_as_asked() -> None:
    assert input_size(720, 1280, 960) == (544, 960)
    assert input_size(320, 240, 960) == (960, 704)  # small photos are enlarged: small plates get pixels
    assert input_size(10, 1000, 640) == (32, 640)


@pytest.mark.parametrize(
    ("box", "score", "kept"),
    [
        ([100, 100, 160, 130], 0.9, True),  # 2:1, a US plate's characters
        ([100, 100, 190, 120], 0.9, True),  # 4.5:1, an EU plate's
        ([100, 100, 160, 130], 0.5, False),  # too faint
        ([100, 100, 130, 130], 0.9, False),  # square: a logo, a single sign character
        ([100, 100, 400, 130], 0.9, False),  # 10:1: a line of a sign
        ([100, 100, 110, 104], 0.9, False),  # 4 px tall: no readable characters
        ([100, 100, 400, 250], 0.9, False),  # 150 px tall in a 1000 px photo: a shop sign
    ],
)
def test_only_plate_shaped_regions_are_kept(box, score, kept) -> None:
    keep = plate_shaped(np.array([box], np.float32), np.array([score], np.float32), (1000, 1000), SHAPE)
    assert bool(keep[0]) is kept


def test_a_candidate_grows_from_the_characters_to_the_plate_and_stays_in_the_photo() -> None:
    cands = text_candidates(np.array([[2, 100, 62, 130]], np.float32), np.array([0.9], np.float32), (1000, 1000), SHAPE)
    assert cands.class_id.tolist() == [PLATE]
    np.testing.assert_allclose(cands.xyxy[0], [0, 92.5, 69.5, 137.5])


def test_a_text_candidate_never_removes_or_changes_a_plate_detection() -> None:
    plates = Detections(
        np.array([[100, 100, 200, 150], [500, 500, 560, 530]], np.float32),
        np.array([0.06, 0.3], np.float32),
        np.full(2, PLATE, np.int32),
    )
    cands = Detections(
        np.array(
            [
                [110, 110, 190, 140],  # inside the first (weak) plate box, scoring far higher: redundant
                [490, 495, 600, 540],  # larger than the second, overlapping it: kept beside it
                [800, 800, 860, 830],  # text no plate box covers: a new candidate
            ],
            np.float32,
        ),
        np.array([0.95, 0.9, 0.8], np.float32),
        np.full(3, PLATE, np.int32),
    )
    merged = add_text_candidates(plates, cands)
    # Every plate detection is there, unchanged, in order, whatever the candidates score.
    np.testing.assert_array_equal(merged.xyxy[:2], plates.xyxy)
    np.testing.assert_array_equal(merged.confidence[:2], plates.confidence)
    assert merged.xyxy[2:].tolist() == cands.xyxy[1:].tolist()
    # No plate detection at all: every candidate is added; no candidate: the detections as they were.
    assert len(add_text_candidates(Detections.empty(), cands)) == 3
    assert add_text_candidates(plates, Detections.empty()) is plates


def test_plate_text_is_on_by_default_and_its_keys_are_validated() -> None:
    default = Profile().detect.plate_text
    assert default.enabled
    off = profile_from_dict({"detect": {"plate_text": {"enabled": False}}})
    assert not off.detect.plate_text.enabled
    assert off.sha256 != Profile().sha256
    with pytest.raises(ConfigError) as err:
        profile_from_dict({"detect": {"plate_text": {"min_aspect": 8, "max_aspect": 2, "side": 100, "colour": 1}}})
    message = str(err.value)
    assert "detect.plate_text.min_aspect': 8 is above the maximum 3" in message
    assert "detect.plate_text.max_aspect': 2 is below the minimum 3" in message
    assert "detect.plate_text.side" in message
    assert "detect.plate_text.colour': unknown key" in message
