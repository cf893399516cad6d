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


def engines(only: str | None) -> tuple[Engine, Engine]:
    """(full plan, cascade) engines on the CPU for the default profile, one class if ``only``."""
    base = Profile()
    detect = replace(base.detect, device="cpu")
    if only == "plate":
        detect = replace(detect, faces=replace(detect.faces, enabled=False))
    cascaded = replace(
        detect,
        faces=replace(detect.faces, cascade=replace(detect.faces.cascade, enabled=True)),
        plates=replace(detect.plates, cascade=replace(detect.plates.cascade, enabled=True)),
    )
    return Engine(replace(base, detect=detect)), Engine(replace(base, detect=cascaded))


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
