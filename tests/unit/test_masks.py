import numpy as np
import pytest

from anonymizer.config import ClassSpec, DetectSpec, MaskSpec
from anonymizer.detections import FACE, PLATE, Detections
from anonymizer.mask.maskers import Masker
from anonymizer.mask.regions import pad_and_clip


def textured(h=200, w=200, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def high_freq_energy(img):
    g = img.astype(np.float32).mean(axis=2)
    return float(np.abs(np.diff(g, axis=0)).mean() + np.abs(np.diff(g, axis=1)).mean())


@pytest.mark.parametrize("method", ["blur", "fill"])
@pytest.mark.parametrize("size", [16, 64, 180])
def test_blur_and_fill_destroy_detail_at_every_size(method, size):
    img = textured()
    region = Detections([[10, 10, 10 + size, 10 + size]], [1], [PLATE])
    out = Masker(MaskSpec(method=method, shape="box")).apply(img.copy(), region)
    before = high_freq_energy(img[10 : 10 + size, 10 : 10 + size])
    after = high_freq_energy(out[10 : 10 + size, 10 : 10 + size])
    # fine detail gone (a noise texture keeps under 15% of its gradient energy)
    assert after < 0.15 * before


@pytest.mark.parametrize("size", [8, 12])
def test_blur_on_a_tiny_region_keeps_no_pixel_scale_detail(size):
    # A 5 px tall plate padded to ~12 px: eight 1.5 px cells would keep its character strokes
    # (the video evaluation leaked such plates), so cells never shrink below MIN_CELL_PX.
    img = textured()
    region = Detections([[10, 10, 10 + size, 10 + size]], [1], [PLATE])
    out = Masker(MaskSpec(method="blur", shape="box")).apply(img.copy(), region)
    before = high_freq_energy(img[10 : 10 + size, 10 : 10 + size])
    after = high_freq_energy(out[10 : 10 + size, 10 : 10 + size])
    assert after < 0.05 * before


@pytest.mark.parametrize("size", [16, 64, 180])
def test_pixelate_leaves_only_a_few_cells_at_every_size(size):
    img = textured()
    region = Detections([[10, 10, 10 + size, 10 + size]], [1], [PLATE])
    out = Masker(MaskSpec(method="pixelate", shape="box")).apply(img.copy(), region)
    roi = out[10 : 10 + size, 10 : 10 + size].reshape(-1, 3)
    cells = len(np.unique(roi, axis=0))
    assert cells <= 9 * 9  # at most ~8 cells across, however large the object
    assert cells <= max(1, (size // 4 + 1) ** 2)  # and cells of at least 4 px on tiny objects


def test_pixels_outside_regions_are_untouched():
    img = textured()
    out = Masker(MaskSpec()).apply(img.copy(), Detections([[50, 50, 100, 100]], [1], [FACE]))
    outside = np.ones(img.shape[:2], bool)
    outside[50:100, 50:100] = False
    assert np.array_equal(out[outside], img[outside])


def test_ellipse_face_mask_covers_the_whole_detected_box_after_padding():
    img = textured(300, 300)
    box = Detections([[100, 100, 160, 180]], [1], [FACE])
    specs = {FACE: ClassSpec(margin=0.0, margin_px=0, min_margin_px=0)}  # even with no margin asked for
    regions = pad_and_clip(box, specs, (300, 300), ellipse=True)
    out = Masker(MaskSpec(method="fill", shape="ellipse", color=(0, 0, 0))).apply(img.copy(), regions)
    assert (out[100:180, 100:160] == 0).all()


def test_plates_are_masked_as_boxes_even_with_ellipse_shape():
    img = textured()
    out = Masker(MaskSpec(method="fill", shape="ellipse")).apply(img.copy(), Detections([[20, 20, 120, 50]], [1], [PLATE]))
    assert (out[20:50, 20:120] == 0).all()


def test_padding_grows_boxes_by_margin_and_clips_to_frame():
    specs = {FACE: ClassSpec(margin=0.5, margin_px=0, min_margin_px=0), PLATE: ClassSpec(margin=0.0, margin_px=0, min_margin_px=3)}
    dets = Detections([[0, 0, 20, 20], [50, 50, 70, 60]], [1, 1], [FACE, PLATE])
    out = pad_and_clip(dets, specs, (100, 100))
    assert out.xyxy[0].tolist() == [0, 0, 30, 30]
    assert out.xyxy[1].tolist() == [47, 47, 73, 63]


def test_margin_px_is_added_to_the_fraction_so_small_boxes_get_relatively_more():
    # A detector's box is a few pixels off whatever the object's size: a 10 px face must get those
    # pixels, a 100 px face must not be padded by a fraction sized for the 10 px one.
    specs = {PLATE: ClassSpec(margin=0.1, margin_px=4, min_margin_px=0)}
    dets = Detections([[100, 100, 110, 110], [300, 300, 400, 400]], [1, 1], [PLATE, PLATE])
    out = pad_and_clip(dets, specs, (1000, 1000))
    assert np.allclose(out.xyxy[0], [95, 95, 115, 115])  # 0.1 * 10 + 4 per side
    assert np.allclose(out.xyxy[1], [286, 286, 414, 414])  # 0.1 * 100 + 4 per side
    # min_margin_px stays a floor under the sum
    specs = {PLATE: ClassSpec(margin=0.1, margin_px=1, min_margin_px=6)}
    assert np.allclose(pad_and_clip(dets, specs, (1000, 1000)).xyxy[0], [94, 94, 116, 116])


def test_ellipse_floor_still_applies_when_the_fraction_is_small():
    # margin 0.1 + 2 px on an 80 px face is below the 0.21 an ellipse needs to cover the box corners
    specs = {FACE: ClassSpec(margin=0.1, margin_px=2, min_margin_px=0)}
    dets = Detections([[100, 100, 180, 180]], [1], [FACE])
    out = pad_and_clip(dets, specs, (1000, 1000), ellipse=True)
    assert np.allclose(out.xyxy[0], [100 - 16.8, 100 - 16.8, 180 + 16.8, 180 + 16.8], atol=0.01)


@pytest.mark.parametrize("method", ["blur", "pixelate", "fill"])
def test_yuv420_masking_destroys_luma_and_chroma_detail_only_inside(method):
    h, w = 120, 160
    yuv = np.random.default_rng(1).integers(0, 256, (h * 3 // 2, w), dtype=np.uint8)
    out = Masker(MaskSpec(method=method, shape="box")).apply_yuv420(yuv.copy(), Detections([[40, 20, 104, 84]], [1], [FACE]))
    luma_in, luma_out = yuv[:h].astype(float), out[:h].astype(float)
    before = np.abs(np.diff(luma_in[20:84, 40:104], axis=1)).mean()
    after = np.abs(np.diff(luma_out[20:84, 40:104], axis=1)).mean()
    assert after < 0.3 * before
    u_in = yuv[h : h + h // 4].reshape(h // 2, w // 2)
    u_out = out[h : h + h // 4].reshape(h // 2, w // 2)
    assert not np.array_equal(u_in[10:42, 20:52], u_out[10:42, 20:52])
    outside = np.ones((h, w), bool)
    outside[20:84, 40:104] = False
    assert np.array_equal(luma_in[outside], luma_out[outside])
    assert np.array_equal(u_in[:10], u_out[:10]) and np.array_equal(u_in[:, 52:], u_out[:, 52:])


def test_video_frames_take_the_video_margin():
    box = Detections(np.array([[40, 40, 60, 60]], np.float32), np.ones(1, np.float32), np.zeros(1, np.int32))
    specs = {0: ClassSpec(margin=0.3, video_margin=0.5, margin_px=0, min_margin_px=0)}
    photo = pad_and_clip(box, specs, (200, 200))
    video = pad_and_clip(box, specs, (200, 200), video=True)
    assert np.allclose(photo.xyxy[0], [34, 34, 66, 66])
    assert np.allclose(video.xyxy[0], [30, 30, 70, 70])
    specs = {0: ClassSpec(margin=0.3, video_margin=None, margin_px=0, min_margin_px=0)}
    assert np.allclose(pad_and_clip(box, specs, (200, 200), video=True).xyxy[0], [34, 34, 66, 66])
    # a profile that widens margin beyond the video default keeps its wider mask in video too
    specs = {0: ClassSpec(margin=0.6, video_margin=0.4, margin_px=0, min_margin_px=0)}
    assert np.allclose(pad_and_clip(box, specs, (200, 200), video=True).xyxy[0], [28, 28, 72, 72])


@pytest.mark.parametrize(("cls", "earlier"), [(FACE, 0.3), (PLATE, 0.25)])
def test_default_padding_contains_the_earlier_default_at_every_size(cls, earlier):
    # Large masked faces leaked when the fraction was cut to pay for the added pixels: the
    # default's masks must contain the earlier default's, max(fraction * size, 4 px).
    spec = DetectSpec().faces if cls == FACE else DetectSpec().plates
    sizes = np.arange(2, 400, 3, dtype=np.float32)
    dets = Detections(np.stack([np.full_like(sizes, 500), np.full_like(sizes, 500), 500 + sizes, 500 + sizes], 1), np.ones(len(sizes)), np.full(len(sizes), cls))
    out = pad_and_clip(dets, {cls: spec}, (2000, 2000))
    pad = 500 - out.xyxy[:, 0]
    assert np.all(pad >= np.maximum(sizes * earlier, 4) - 1e-3)
    assert np.all(pad[sizes < 10] > 4)  # and small objects get more than the earlier floor


def test_identical_regions_are_masked_once():
    # The tracker often predicts the same pixels twice; masking them once is the same mask, faster.
    img = textured()
    once = Masker(MaskSpec()).apply(img.copy(), Detections([[20, 20, 80, 90]], [1], [FACE]))
    twice = Masker(MaskSpec()).apply(img.copy(), Detections([[20, 20, 80, 90], [20.2, 20.1, 79.9, 89.6]], [1, 0.5], [FACE, FACE]))
    assert np.array_equal(once, twice)


def test_a_face_cut_by_the_frame_edge_is_masked_whole_up_to_the_edge():
    # The padded region of a face cut by the top edge is clipped there; an ellipse inscribed in the
    # clipped part would taper to a point at the edge, where the cut face's widest part is.
    img = textured(200, 200)
    specs = {FACE: ClassSpec(margin=0.3, margin_px=4, min_margin_px=4)}
    cut = Detections([[60, 0, 140, 50]], [1], [FACE])
    regions = pad_and_clip(cut, specs, (200, 200), ellipse=True)
    out = Masker(MaskSpec(method="fill", shape="ellipse", color=(0, 0, 0))).apply(img.copy(), regions)
    x1, y1, x2, y2 = (int(v) for v in regions.xyxy[0])
    assert y1 == 0 and (out[0:y2, x1:x2] == 0).all()  # every pixel up to the edge, corners included
    # Away from the edges the ellipse stays an ellipse: its corners keep their pixels.
    inside = Detections([[60, 80, 140, 130]], [1], [FACE])
    regions = pad_and_clip(inside, specs, (200, 200), ellipse=True)
    out = Masker(MaskSpec(method="fill", shape="ellipse", color=(0, 0, 0))).apply(img.copy(), regions)
    x1, y1 = (int(v) for v in regions.xyxy[0][:2])
    assert (out[y1, x1] == img[y1, x1]).all()


def test_a_region_another_one_masks_wholly_is_left_out_and_one_it_does_not_is_masked():
    img = textured(240, 240, seed=4)
    masker = Masker(MaskSpec(method="blur", shape="ellipse"))
    big = [20, 20, 220, 220]
    alone = masker.apply(img.copy(), Detections([big], [1], [FACE]))
    # Inside the large face's ellipse: masking it too would only blur that blur again.
    inner = [100, 100, 140, 140]
    both = masker.apply(img.copy(), Detections([big, inner], [1, 1], [FACE, FACE]))
    assert np.array_equal(both, alone)
    # Inside its box but reaching past its ellipse, in the corner the ellipse leaves out: masked.
    corner = [22, 22, 60, 60]
    both = masker.apply(img.copy(), Detections([big, corner], [1, 1], [FACE, FACE]))
    assert not np.array_equal(both, alone)
    assert high_freq_energy(both[32:40, 32:40]) < 0.15 * high_freq_energy(img[32:40, 32:40])  # outside the large ellipse
    # A plate box covers its whole box: a face anywhere inside is left out.
    plate = masker.apply(img.copy(), Detections([[20, 20, 220, 120]], [1], [PLATE]))
    with_face = masker.apply(img.copy(), Detections([[20, 20, 220, 120], [22, 22, 60, 60]], [1, 1], [PLATE, FACE]))
    assert np.array_equal(with_face, plate)


def test_past_the_nesting_check_s_cap_every_region_is_masked(monkeypatch):
    from anonymizer.mask import maskers

    rows = np.array([[0, 0, 100, 100, 0], [10, 10, 20, 20, 1], [30, 30, 40, 40, 0]], np.int64)
    assert maskers._uncovered(rows).tolist() == [True, False, False]  # inside the box mask
    monkeypatch.setattr(maskers, "MAX_NESTING_CHECK", 2)
    assert maskers._uncovered(rows).tolist() == [True, True, True]  # masked twice: always safe
