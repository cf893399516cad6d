import itertools
from dataclasses import replace

import numpy as np
import pytest

from anonymizer.config import ClassSpec
from anonymizer.detect.multiscale import plan_passes, tile_spans, tile_starts


def test_tiles_cover_the_whole_side_with_overlap():
    starts = tile_starts(1920, 640, 0.2)
    assert starts[0] == 0 and starts[-1] + 640 == 1920
    assert all(b - a <= 640 * 0.8 + 1 for a, b in zip(starts, starts[1:]))
    assert tile_starts(500, 640, 0.2) == [0]


@pytest.mark.parametrize("length", [2049, 2100, 2304, 3072, 3500, 4096, 5000, 6750, 9000])
@pytest.mark.parametrize("overlap", [0.0, 0.2, 0.5])
def test_fitted_tiles_cover_the_side_overlap_as_the_fixed_ones_guarantee_and_are_never_larger(length, overlap):
    fixed = tile_spans(length, 2048, overlap)
    fitted = tile_spans(length, 2048, overlap, fit=True)
    assert fixed == [(s, s + 2048) for s in tile_starts(length, 2048, overlap)]  # off: exactly as before
    assert len(fitted) == len(fixed) and fitted[0][0] == 0 and fitted[-1][1] == length
    sides = {b - a for a, b in fitted}
    assert len(sides) == 1 and sides.pop() <= 2048
    for (_, end), (start, _) in itertools.pairwise(fitted):
        assert end - start >= overlap * 2048  # every neighbour shares what a fixed tile guarantees
    if (
        length in (2100, 2304, 3072) and overlap <= 0.2
    ):  # a side a little longer than one tile: the fixed tiles share most of it
        assert sum(b - a for a, b in fitted) <= 0.9 * sum(b - a for a, b in fixed)


def test_only_a_model_that_sees_any_size_gets_fitted_tiles():
    spec = ClassSpec(scales=(3.0,), tile_size=2048, tile_fit=True)
    fitted = plan_passes(768, 1024, spec)  # 3072 x 2304 at 3x
    fixed = plan_passes(768, 1024, ClassSpec(scales=(3.0,), tile_size=2048, tile_fit=False))
    area = lambda passes: sum((x1 - x0) * (y1 - y0) for _, x0, y0, x1, y1 in passes)  # noqa: E731
    assert len(fitted) == len(fixed) == 4 and area(fitted) < 0.6 * area(fixed)
    covered = np.zeros((2304, 3072), bool)
    for _, x0, y0, x1, y1 in fitted:
        covered[y0:y1, x0:x1] = True
    assert covered.all()
    # A letterboxing model (platedet) sees each tile at its input size: the tile's size is its zoom.
    assert plan_passes(768, 1024, spec, fixed_input=640) == plan_passes(
        768, 1024, ClassSpec(scales=(3.0,), tile_size=2048, tile_fit=False), fixed_input=640
    )


def test_each_scale_is_tiled_in_scaled_pixels():
    spec = ClassSpec(scales=(1.0, 2.0), tile_size=1280, tile_overlap=0.2)
    passes = plan_passes(720, 1280, spec)
    assert [p for p in passes if p[0] == 1.0] == [(1.0, 0, 0, 1280, 720)]
    doubled = [p for p in passes if p[0] == 2.0]
    assert len(doubled) > 1 and max(p[3] for p in doubled) == 2560 and max(p[4] for p in doubled) == 1440


def test_video_frames_use_video_scales():
    spec = ClassSpec(scales=(1.0, 2.0), video_scales=(1.0,), tile_size=4096)
    assert [p[0] for p in plan_passes(720, 1280, spec, video=True)] == [1.0]
    assert [p[0] for p in plan_passes(720, 1280, spec)] == [1.0, 2.0]


def test_fixed_input_models_skip_scales_that_show_them_the_same_picture():
    # A 320 px photo letterboxed to 640 looks the same at scale 1 and 2: one pass is enough.
    spec = ClassSpec(scales=(1.0, 2.0), tile_size=1280)
    assert [p[0] for p in plan_passes(240, 320, spec, fixed_input=640)] == [1.0]
    # ... but a dynamic-input model (CenterFace) really sees twice the pixels at scale 2.
    assert [p[0] for p in plan_passes(240, 320, spec)] == [1.0, 2.0]
    # ... and a large image tiled at scale 2 is a different picture.
    assert {p[0] for p in plan_passes(1080, 1920, spec, fixed_input=640)} == {1.0, 2.0}


def test_video_asks_the_model_for_weak_candidates_photos_do_not():
    import numpy as np

    from anonymizer.detect.multiscale import ClassDetector

    class Recording:
        """Stands in for the ONNX model: returns no boxes, remembers the thresholds it was asked for."""

        def __init__(self):
            self.thresholds = []

        def __call__(self, rgb, threshold):
            self.thresholds.append(threshold)
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)

    raw = Recording()
    detector = ClassDetector(raw, ClassSpec(threshold=0.12, track_threshold=0.05, scales=(1.0,), flip=False), 0)
    image = np.zeros((64, 64, 3), np.uint8)
    detector.detect_many([image])
    detector.detect_many([image], video=True)
    assert raw.thresholds == [0.12, 0.05]
    raw.thresholds.clear()
    ClassDetector(raw, ClassSpec(threshold=0.12, track_threshold=None, scales=(1.0,), flip=False), 0).detect_many(
        [image], video=True
    )
    assert raw.thresholds == [0.12]


def test_a_scale_below_one_zooms_out_on_a_canvas_for_fixed_input_models():
    import numpy as np

    from anonymizer.detect.multiscale import ClassDetector

    spec = ClassSpec(scales=(0.5, 1.0), tile_size=1280, flip=False)
    # A letterboxing model would enlarge a half-size image right back; padded, it is a new view.
    assert [p[0] for p in plan_passes(360, 640, spec, fixed_input=640)] == [0.5, 1.0]

    class Letterboxing:
        """Stands in for the plate model: sees its input, reports one box at the input's top-left quarter."""

        fixed_input = 640

        def __init__(self):
            self.shapes = []

        def __call__(self, rgb, threshold):
            self.shapes.append(rgb.shape)
            h, w = rgb.shape[:2]
            return np.array([[0, 0, w / 4, h / 4]], np.float32), np.array([0.9], np.float32)

    raw = Letterboxing()
    image = np.full((360, 640, 3), 200, np.uint8)
    dets = ClassDetector(raw, spec, 1).detect_many([image])[0]
    assert raw.shapes == [(360, 640, 3), (360, 640, 3)]  # the zoomed-out pass is padded to full size
    # its box (160 x 90 on the canvas) maps back through the 0.5 scale: 320 x 180 in the image
    assert any(np.allclose(b, [0, 0, 320, 180]) for b in dets.xyxy)


def test_mirrored_passes_follow_flip_on_photos_and_video_flip_on_video():
    from anonymizer.detect.multiscale import ClassDetector

    def mirrored(spec: ClassSpec, video: bool) -> list[bool]:
        return [p.flipped for p in ClassDetector(lambda rgb, t: None, spec, 0).plan(720, 1280, video=video)]

    default = ClassSpec()  # faces: flip for photos, no mirror in video
    assert mirrored(default, video=False) == [False, True] * (len(mirrored(default, video=False)) // 2)
    assert True not in mirrored(default, video=True)
    both = ClassSpec(video_flip=True)
    assert mirrored(both, video=True).count(True) == mirrored(both, video=True).count(False) > 0
    assert True not in mirrored(ClassSpec(flip=False), video=False)


def test_the_passes_that_enlarge_a_photo_run_the_detail_detector_at_its_threshold():
    from anonymizer.detect.multiscale import ClassDetector

    class Recording:
        """Stands in for one graph: remembers each call's picture width and threshold."""

        def __init__(self):
            self.calls = []

        def __call__(self, rgb, threshold):
            self.calls.append((rgb.shape[1], threshold))
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)

    spec = ClassSpec(
        threshold=0.12, track_threshold=0.05, scales=(0.5, 1.0, 2.0, 3.0), flip=False, tile_size=4096, detail_precision="int8"
    )
    image = np.zeros((100, 200, 3), np.uint8)
    full, cheap = Recording(), Recording()
    ClassDetector(full, spec, 0, detail_raw=cheap).detect_many([image])
    assert full.calls == [(100, 0.12), (200, 0.12)] and cheap.calls == [(400, 0.12), (600, 0.12)]

    # Its own threshold; every cut-off of those passes moves by the same factor (0.06 / 0.12):
    # video's weak floor, an explicit floor (a bench's, the cascade's cue).
    own = replace(spec, detail_threshold=0.06)
    full, cheap = Recording(), Recording()
    detector = ClassDetector(full, own, 0, detail_raw=cheap)
    detector.detect_many([image])
    assert [t for _, t in full.calls] == [0.12, 0.12] and [t for _, t in cheap.calls] == [0.06, 0.06]
    full.calls.clear(), cheap.calls.clear()
    detector.detect_passes([image], threshold=0.02)
    assert {t for _, t in full.calls} == {0.02} and [t for _, t in cheap.calls] == [pytest.approx(0.01)] * 2

    # Their scores come back on the base graph's scale: 0.07 at a 0.06 cut is a 0.14 at 0.12.
    class Scoring(Recording):
        def __call__(self, rgb, threshold):
            super().__call__(rgb, threshold)
            scale = rgb.shape[1] / 200
            return np.array([[10, 10, 30, 30]], np.float32) * scale, np.array([0.07], np.float32)

    passes = ClassDetector(Recording(), own, 0, detail_raw=Scoring()).detect_passes([image])[0]
    assert [(scale, float(conf[0])) for scale, _, _, conf in passes if len(conf)] == [
        (2.0, pytest.approx(0.14)),
        (3.0, pytest.approx(0.14)),
    ]
    # Without a second detector the threshold is the class's, whatever detail_threshold says.
    full = Recording()
    ClassDetector(full, own, 0).detect_many([image])
    assert len(full.calls) == 4 and {t for _, t in full.calls} == {0.12}


def test_in_video_the_passes_that_look_closer_than_the_dense_pass_run_the_detail_detector():
    from anonymizer.detect.multiscale import ClassDetector, Pass
    from anonymizer.detect.schedule import dense_pass

    def runs(spec: ClassSpec, p: Pass, height: int, width: int, fixed_input=None) -> bool:
        raw = type("Raw", (), {"fixed_input": fixed_input})()
        return ClassDetector(raw, spec, 0, detail_raw=object()).looks_closer(p, height, width, video=True)

    faces = ClassSpec(video_detail_precision="int8")
    dense = dense_pass(1080, 1920, faces, None)
    assert dense.scale < 1 and not runs(faces, dense, 1080, 1920)  # the base view keeps precision
    assert runs(faces, Pass(1.0, 0, 0, 1920, 1080), 1080, 1920)  # the full plan at full resolution
    assert runs(faces, Pass(1.0, 600, 200, 900, 500), 1080, 1920)  # a changed area
    assert runs(faces, Pass(2.0, 1200, 400, 1800, 1000), 1080, 1920)  # the closer look
    # A frame the dense pass sees as it is: nothing looks closer than it.
    assert not runs(faces, Pass(1.0, 0, 0, 640, 360), 360, 640)
    # Photo settings do not reach video, nor video's photos; without either, nothing changes.
    assert not runs(ClassSpec(detail_precision="int8"), Pass(1.0, 0, 0, 1920, 1080), 1080, 1920)
    photo = ClassDetector(object(), faces, 0, detail_raw=object())
    assert not photo.looks_closer(Pass(2.0, 0, 0, 100, 100), 1080, 1920, video=False)
    assert not runs(ClassSpec(precision="int8", video_detail_precision="int8"), Pass(1.0, 0, 0, 1920, 1080), 1080, 1920)
    # A fixed-input model letterboxes a whole frame as its dense pass does: base; its tiles look closer.
    plates = ClassSpec(precision="int8", video_detail_precision="full", tile_size=1280)
    whole = dense_pass(1080, 1920, plates, 640)
    assert not runs(plates, whole, 1080, 1920, 640) and not runs(plates, Pass(0.5, 0, 0, 960, 540), 1080, 1920, 640)
    assert runs(plates, Pass(1.0, 0, 0, 1280, 1080), 1080, 1920, 640)
