"""The reader's shrinks (anonymizer.stream.stages.Prescale): made ahead, used, and never a changed pixel.

``cctv-fast``'s faces run their plan at 0.67 of the frame and its plates at 0.34: on a still
camera every gated frame cuts its passes from the whole frame shrunk to those scales. The reader
makes them on its own thread; detection must see exactly what it would have made itself.
"""

from __future__ import annotations

import numpy as np
import pytest
from media_factory import decode_rgb, write_crossing_plate

import anonymizer.detect.multiscale as multiscale
import anonymizer.pipeline as pipeline
from anonymizer.config import BUILTIN_PROFILES_DIR, load_profile
from anonymizer.detect.multiscale import Pass, scaled_image
from anonymizer.pipeline import Engine
from anonymizer.stream import stages


@pytest.fixture(scope="module")
def engine() -> Engine:
    profile = load_profile(BUILTIN_PROFILES_DIR / "cctv-fast.yaml")
    assert profile.detect.faces.video_scales == (0.67,) and profile.detect.faces.every_n_frames == 2
    return Engine(profile)


def test_the_shrinks_follow_the_cadence_and_what_the_last_frame_off_the_full_plan_ran(engine):
    prescale = stages.Prescale(engine.detectors)
    rgb = np.random.default_rng(0).integers(0, 255, (1080, 1920, 3), dtype=np.uint8)
    made = prescale(0, rgb)  # frame 0: both classes' full plans (faces every 2nd frame, plates every 3rd)
    assert made is not None and sorted(made) == [0.34, 0.67]
    for scale, image in made.items():
        assert np.array_equal(image, scaled_image(rgb, scale))  # the detector's own function
    assert prescale(1, rgb) is None  # no class runs on frame 1
    assert prescale(2, rgb) is None  # faces, off the full plan, with nothing run off it yet
    prescale.ran("face", False, [Pass(0.67, 0, 0, 100, 100)])  # a still camera's gated passes
    assert sorted(prescale(2, rgb) or {}) == [0.67]
    prescale.ran("face", False, [Pass(640 / 1920, 0, 0, 640, 360)])  # a moving camera's dense pass
    assert prescale(2, rgb) is None
    prescale.ran("face", False, [Pass(0.67, 0, 0, 100, 100)])
    prescale.ran("face", False, [])  # a still camera where nothing changed: no passes, no shrinks
    assert prescale(2, rgb) is None
    assert sorted(prescale(8, rgb) or {}) == [0.67]  # faces' 4th cadence frame: the full plan again


def test_detection_sees_the_same_pixels_with_the_reader_s_shrinks(engine, tmp_path, monkeypatch):
    src = tmp_path / "plate.mp4"
    write_crossing_plate(src, 56, (78.0, 0.0), (-60, 500), frames=24)  # a still scene, one crosser
    made_by_detector: list[float] = []

    def counted(rgb, scale):
        made_by_detector.append(scale)
        return scaled_image(rgb, scale)

    monkeypatch.setattr(multiscale, "scaled_image", counted)
    outputs: dict[str, list[np.ndarray]] = {}
    counts: dict[str, int] = {}
    for name, prescale in (("reader", stages.Prescale), ("detector", lambda detectors: None)):
        made_by_detector.clear()
        monkeypatch.setattr(pipeline, "Prescale", prescale)
        engine.process(src, tmp_path / f"{name}.mp4")
        outputs[name] = decode_rgb(tmp_path / f"{name}.mp4")
        counts[name] = sum(1 for s in made_by_detector if s < 1)
    assert len(outputs["reader"]) == len(outputs["detector"]) == 24
    assert all(np.array_equal(a, b) for a, b in zip(outputs["reader"], outputs["detector"]))
    # The reader made most of them: on a still camera the faces' gated frames all run 0.67.
    assert counts["detector"] >= 12 and counts["reader"] <= counts["detector"] // 3, counts


@pytest.mark.parametrize("setting", [("threaded", False), ("batch", 8)])
def test_no_shrinks_ahead_unthreaded_or_for_a_batching_detector(engine, tmp_path, monkeypatch, setting):
    # Unthreaded, the reader runs on the detector's thread: making them ahead would gain nothing.
    # A batching (GPU) detector holds a batch of frames, which would hold their shrinks too.
    seen: list[object] = []
    original = stages.Read.__init__

    def record(self, *args, **kwargs):
        seen.append(kwargs.get("prescale"))
        original(self, *args, **kwargs)

    monkeypatch.setattr(stages.Read, "__init__", record)
    monkeypatch.setattr(engine, *setting)
    src = tmp_path / "plate.mp4"
    write_crossing_plate(src, 56, (78.0, 0.0), (-60, 500), frames=6)
    engine.process(src, tmp_path / "out.mp4")
    assert seen == [None]
