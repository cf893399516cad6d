from anonymizer.config import ClassSpec
from anonymizer.detect.multiscale import plan_passes, tile_starts


def test_tiles_cover_the_whole_side_with_overlap():
    starts = tile_starts(1920, 640, 0.2)
    assert starts[0] == 0 and starts[-1] + 640 == 1920
    assert all(b - a <= 640 * 0.8 + 1 for a, b in zip(starts, starts[1:]))
    assert tile_starts(500, 640, 0.2) == [0]


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
