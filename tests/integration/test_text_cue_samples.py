"""The plates' text cue with the real PP-OCRv4 detector on the shipped demo photo, whose plate
(OSG 719) the plate model never finds: the text detector marks it, and the default hides it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from anonymizer.config import Profile
from anonymizer.detect.factory import build_text_cue, plate_shape
from anonymizer.detect.text import text_candidates
from anonymizer.detections import PLATE, box_iou
from anonymizer.evaluate.metrics import box_hidden
from anonymizer.media.image import read_photo
from anonymizer.pipeline import Engine

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
DEMO = SAMPLES / "plate-12c6cb72-3ea3-49e7-b381-e0cdfc5e8960.jpg"
DEMO_PLATE = np.array([911, 136, 973, 167], np.float32)  # its public label (samples/SOURCES.md)

pytestmark = pytest.mark.skipif(not DEMO.is_file(), reason="the demo photo is missing from samples/")


def plates_only(profile: Profile) -> Profile:
    detect = replace(profile.detect, device="cpu", faces=replace(profile.detect.faces, enabled=False))
    return replace(profile, detect=detect)


def covered(box: np.ndarray, label: np.ndarray) -> float:
    """The share of ``label``'s area inside ``box``."""
    w = max(0.0, min(box[2], label[2]) - max(box[0], label[0]))
    h = max(0.0, min(box[3], label[3]) - max(box[1], label[1]))
    return w * h / float((label[2] - label[0]) * (label[3] - label[1]))


@pytest.fixture(scope="module")
def demo_rgb() -> np.ndarray:
    return read_photo(DEMO, Profile().limits).rgb


def test_the_text_detector_marks_the_demo_plate_as_a_plate_shaped_region(demo_rgb) -> None:
    text = build_text_cue(Profile().detect)
    assert text is not None
    assert text.info.id == "pp-ocrv4-det" and len(text.info.sha256) == 64 and "Apache-2.0" in text.info.license
    spec = Profile().detect.plate_text
    xyxy, scores = text(demo_rgb, spec.side)
    assert xyxy.dtype == np.float32 and xyxy.shape[1] == 4 and len(xyxy) == len(scores)
    assert np.all(xyxy[:, 2] > xyxy[:, 0]) and np.all(xyxy[:, 3] > xyxy[:, 1])
    cands = text_candidates(xyxy, scores, demo_rgb.shape[:2], plate_shape(spec))
    # The characters of OSG 719 (about 917,144-969,158) are one region; grown, it covers the plate.
    assert max(covered(c, DEMO_PLATE) for c in cands.xyxy) >= 0.95
    assert box_iou(cands.xyxy, DEMO_PLATE[None]).max() >= 0.3
    # Other text of the scene is found too, but not every region is plate-shaped.
    assert len(cands) < len(xyxy)


def test_the_default_hides_the_demo_plate_and_names_the_text_model(demo_rgb) -> None:
    engine = Engine(plates_only(Profile()))
    assert "pp-ocrv4-det" in [m["id"] for m in engine.models]  # in every photo's audit record
    assert "pp-ocrv4-det" in [m["id"] for m in engine._result("image").models]
    assert "pp-ocrv4-det" not in [m["id"] for m in engine._result("video").models]  # photos only
    raw = engine.detect_image(demo_rgb)
    wh = (demo_rgb.shape[1], demo_rgb.shape[0])
    masked = engine.masker.apply(demo_rgb.copy(), engine.regions(raw, wh))
    assert box_hidden(demo_rgb, masked, DEMO_PLATE, ellipse=False).hidden
    # The plate model's own boxes (every row that is not a text candidate) leave it readable:
    # the text cue is what hides it.
    spec = engine.profile.detect.plate_text
    cands = text_candidates(*engine.text_cue(demo_rgb, spec.side), demo_rgb.shape[:2], plate_shape(spec))
    from_text = np.array([any(np.array_equal(b, c) for c in cands.xyxy) for b in raw.xyxy], bool)
    assert from_text.any() and np.all(raw.class_id == PLATE)
    plate_model_only = engine.masker.apply(demo_rgb.copy(), engine.regions(raw[~from_text], wh))
    assert not box_hidden(demo_rgb, plate_model_only, DEMO_PLATE, ellipse=False).hidden


def test_without_the_text_cue_no_text_model_is_loaded_or_named() -> None:
    off = plates_only(Profile())
    off = replace(off, detect=replace(off.detect, plate_text=replace(off.detect.plate_text, enabled=False)))
    assert build_text_cue(off.detect) is None
    no_plates = replace(off.detect, plates=replace(off.detect.plates, enabled=False), faces=Profile().detect.faces)
    assert build_text_cue(replace(no_plates, plate_text=Profile().detect.plate_text)) is None
