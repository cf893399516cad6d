"""The photo cascade on the shipped sample photos, with the real models: every labelled object the
full plan hides, the cascade hides too, with fewer inference calls."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from anonymizer.config import Profile
from anonymizer.evaluate.metrics import box_hidden
from anonymizer.media.image import read_photo
from anonymizer.pipeline import Engine

SAMPLES = Path(__file__).resolve().parents[2] / "samples"

# Public labels of the sample photos (samples/SOURCES.md), as in tests/integration/test_evaluate.py.
CROWD = (
    "faces-maksssksksss209.jpg",
    [[37, 50, 63, 78], [63, 79, 88, 101], [64, 112, 91, 141], [88, 44, 112, 72], [120, 99, 150, 133],
     [161, 102, 197, 143], [206, 51, 228, 79], [227, 124, 260, 157], [236, 91, 262, 119],
     [338, 116, 370, 155], [374, 63, 396, 88], [267, 22, 289, 44], [344, 35, 361, 52], [183, 49, 205, 69]],
)
CAR = ("plate-316b64c0-55bf-4079-a1c0-d93f461a576f.jpg", [[80, 811, 259, 900]])
# The other shipped photos: with CROWD and CAR, the 77 labelled objects of samples/ (26 + 14 + 35
# faces, 2 plates; their labels in ../shared/eval/faces-masks and plates-openalpr).
CROWD_110 = (
    "faces-maksssksksss110.jpg",
    [[6, 111, 43, 148], [22, 20, 49, 46], [48, 12, 70, 37], [113, 1, 136, 24], [78, 17, 106, 46], [97, 66, 115, 86],
     [70, 111, 104, 145], [42, 157, 85, 186], [59, 205, 111, 264], [116, 155, 172, 198], [112, 85, 149, 118],
     [124, 27, 153, 47], [163, 29, 189, 53], [186, 18, 215, 44], [178, 77, 214, 111], [216, 57, 241, 84],
     [237, 15, 268, 46], [281, 19, 308, 40], [286, 60, 311, 84], [253, 94, 293, 135], [236, 161, 273, 195],
     [282, 194, 322, 232], [314, 115, 350, 152], [335, 27, 359, 52], [381, 14, 400, 34], [356, 72, 385, 98]],
)
CROWD_296 = (
    "faces-maksssksksss296.jpg",
    [[42, 88, 68, 112], [46, 59, 69, 78], [77, 56, 97, 72], [101, 69, 120, 87], [114, 51, 132, 70], [84, 34, 105, 56],
     [42, 125, 62, 158], [63, 138, 93, 171], [91, 162, 121, 197], [129, 176, 168, 218], [136, 102, 162, 131],
     [136, 69, 161, 89], [140, 33, 155, 48], [177, 32, 194, 54], [172, 46, 184, 65], [196, 33, 213, 52],
     [221, 22, 237, 40], [236, 35, 261, 60], [175, 90, 197, 114], [170, 130, 196, 153], [213, 101, 238, 130],
     [185, 169, 202, 193], [165, 172, 182, 207], [229, 186, 265, 223], [244, 113, 272, 141], [271, 161, 292, 195],
     [262, 82, 282, 103], [292, 107, 315, 132], [262, 18, 282, 38], [263, 48, 279, 62], [282, 26, 300, 43],
     [321, 18, 335, 36], [296, 49, 314, 67], [322, 106, 350, 124], [341, 154, 373, 182]],
)
DEMO = ("plate-12c6cb72-3ea3-49e7-b381-e0cdfc5e8960.jpg", [[911, 136, 973, 167]])


def engines(only: str | None) -> tuple[Engine, Engine]:
    """(full plan, cascade) engines on the CPU for the default profile, one class if ``only``."""
    base = Profile()
    detect = replace(base.detect, device="cpu")
    if only == "plate":
        detect = replace(detect, faces=replace(detect.faces, enabled=False))

    def cascade(enabled: bool):
        # Set both ways: the default profile has the cascade on, so "full" must turn it off.
        return replace(
            detect,
            faces=replace(detect.faces, cascade=replace(detect.faces.cascade, enabled=enabled)),
            plates=replace(detect.plates, cascade=replace(detect.plates.cascade, enabled=enabled)),
        )

    return Engine(replace(base, detect=cascade(False))), Engine(replace(base, detect=cascade(True)))


class PixelCount:
    """Wraps a real raw detector and adds up the pixels it is fed (the cost of a pass or a crop)."""

    def __init__(self, raw) -> None:
        self.raw, self.pixels = raw, 0
        self.fixed_input = getattr(raw, "fixed_input", None)
        self.info = raw.info

    def __call__(self, rgb, threshold):
        self.pixels += rgb.shape[0] * rgb.shape[1]
        return self.raw(rgb, threshold)


@pytest.mark.parametrize(
    ("sample", "only"),
    # The car photo's full plan is 29 plate-model calls (1920x1080 at 0.5x-3x): a slow test.
    [(CROWD, None), pytest.param(CAR, "plate", marks=pytest.mark.slow)],
    ids=["crowd", "car"],
)
def test_the_cascade_hides_every_labelled_object_the_full_plan_hides(sample, only):
    name, boxes = sample
    rgb = read_photo(SAMPLES / name, Profile().limits).rgb
    full, cascaded = engines(only)
    for engine in (full, cascaded):
        for detector in engine.detectors.values():
            detector.raw = PixelCount(detector.raw)
    full_out, _ = full.anonymize_image(rgb)
    cascade_out, _ = cascaded.anonymize_image(rgb)
    ellipse = name.startswith("faces")
    hidden_full = [box_hidden(rgb, full_out, np.asarray(b, np.float32), ellipse=ellipse).hidden for b in boxes]
    hidden_cascade = [box_hidden(rgb, cascade_out, np.asarray(b, np.float32), ellipse=ellipse).hidden for b in boxes]
    assert sum(hidden_full) >= len(boxes) - 1  # the full plan's own recall on these photos
    assert all(c for f, c in zip(hidden_full, hidden_cascade) if f), (hidden_full, hidden_cascade)
    # ... never feeding the models more pixels than the full plan (a crowd is cued nearly everywhere;
    # the car photo's 3x plate tiles without a cue are skipped).
    for cls, detector in cascaded.detectors.items():
        assert detector.raw.pixels <= full.detectors[cls].raw.pixels, cls
    if only == "plate":
        assert cascaded.detectors["plate"].raw.pixels < full.detectors["plate"].raw.pixels


@pytest.mark.parametrize(
    "sample",
    # The demo plate (OSG 719, hidden by the text cue) is tests/integration/test_text_cue_samples.py's;
    # the car photo's plate passes take minutes: the whole set of 77 runs with -m slow.
    [CROWD, CROWD_110, CROWD_296, pytest.param(DEMO, marks=pytest.mark.slow), pytest.param(CAR, marks=pytest.mark.slow)],
    ids=["crowd-209", "crowd-110", "crowd-296", "demo-plate", "car"],
)
def test_the_default_hides_every_labelled_object_of_the_sample_photos(sample):
    name, boxes = sample
    rgb = read_photo(SAMPLES / name, Profile().limits).rgb
    base = Profile()
    engine = Engine(replace(base, detect=replace(base.detect, device="cpu")))
    out, _ = engine.anonymize_image(rgb)
    ellipse = name.startswith("faces")
    missed = [b for b in boxes if not box_hidden(rgb, out, np.asarray(b, np.float32), ellipse=ellipse).hidden]
    assert missed == []
