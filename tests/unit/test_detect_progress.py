"""Photo detection reports progress after every inference call, and a raise there aborts it.

The daemon's liveness and stop handling hang on this callback: without it a 24 MP photo ran for
minutes with no sign of life and no way to stop it (issue 16).
"""

from __future__ import annotations

import numpy as np
import pytest

from anonymizer.config import ClassSpec
from anonymizer.detect.multiscale import ClassDetector


class Counting:
    """Stands in for the ONNX model: returns no boxes, counts the calls made to it."""

    def __init__(self, *, batched: bool = False):
        self.calls = 0
        if batched:
            self.batch = self._batch

    def __call__(self, rgb, threshold):
        self.calls += 1
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)

    def _batch(self, crops, threshold):
        self.calls += 1
        return [(np.zeros((0, 4), np.float32), np.zeros(0, np.float32)) for _ in crops]


@pytest.mark.parametrize("batched", [False, True])
def test_progress_follows_every_inference_call_and_ends_at_the_total(batched):
    raw = Counting(batched=batched)
    spec = ClassSpec(scales=(1.0, 2.0), tile_size=256, tile_overlap=0.2, flip=True)
    calls = []
    ClassDetector(raw, spec, 0, batch_size=3).detect_many(
        [np.zeros((300, 400, 3), np.uint8)], progress=lambda done, total: calls.append((done, total))
    )
    assert len(calls) == raw.calls > 4  # one report per raw call, several passes
    totals = {total for _, total in calls}
    assert len(totals) == 1
    dones = [done for done, _ in calls]
    assert dones == sorted(dones) and dones[-1] == totals.pop()


def test_an_exception_raised_by_progress_stops_detection_at_once():
    raw = Counting()
    spec = ClassSpec(scales=(1.0, 2.0), tile_size=256, flip=True)

    class Stop(BaseException):
        pass

    def stop(done, total):
        raise Stop

    with pytest.raises(Stop):
        ClassDetector(raw, spec, 0).detect_many([np.zeros((300, 400, 3), np.uint8)], progress=stop)
    assert raw.calls == 1


def test_a_real_photo_job_reports_each_class_s_detection_progress(tmp_path, fast_engine):
    from pathlib import Path

    sample = Path(__file__).resolve().parents[2] / "samples" / "faces-maksssksksss110.jpg"
    reports = []
    fast_engine.process(sample, tmp_path / "out.jpg", progress=lambda *a: reports.append(a))
    assert (tmp_path / "out.jpg").is_file()
    stages = {stage for stage, _, _ in reports}
    assert stages == {f"detect {name}" for name in fast_engine.detectors}
    for stage in stages:
        done, total = [(d, t) for s, d, t in reports if s == stage][-1]
        assert done == total > 0
