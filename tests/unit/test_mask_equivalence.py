"""The masker's fast paths give the very pixels of the plain per-region, per-plane masking.

Masking was made cheaper (docs/benchmarks.md, "CPU outside the models"): ellipses drawn once per
size, both chroma planes blurred and enlarged as one two-channel image, the boxes computed on arrays. None of
that may change a masked pixel: these tests compare the masker with the plain implementation it
replaced, written out here, on crowds of overlapping, nested, repeated and edge-cut regions.
"""

import cv2
import numpy as np
import pytest

from anonymizer.config import MaskSpec
from anonymizer.detections import FACE, PLATE, Detections
from anonymizer.mask import maskers
from anonymizer.mask.maskers import Masker


def drawn_ellipse(h: int, w: int) -> np.ndarray:
    mask = np.zeros((h, w), np.uint8)
    cv2.ellipse(mask, (w // 2, h // 2), (max(1, w // 2), max(1, h // 2)), 0, 0, 360, 255, -1)
    return mask.astype(bool)


def plain_mask(masker: Masker, roi: np.ndarray, fill: object, ellipse: bool) -> None:
    if masker.spec.method == "fill":
        masked = np.empty_like(roi)
        masked[:] = fill
    elif masker.spec.method == "pixelate":
        masked = maskers._pixelated(roi, masker.cells)
    else:
        masked = maskers._blurred(roi, masker.cells)
    if ellipse:
        inside = drawn_ellipse(roi.shape[0], roi.shape[1])
        roi[inside] = masked[inside]
    else:
        roi[:] = masked


def region_pixels(box, width: int, height: int, half: bool) -> np.ndarray:
    """The frame's pixels (or the chroma planes', ``half``) that masking ``box`` writes."""
    x1, y1, x2, y2, ellipse = box
    if half:
        x1, y1, x2, y2, width, height = x1 // 2, y1 // 2, -(-x2 // 2), -(-y2 // 2), width // 2, height // 2
    pixels = np.zeros((height, width), bool)
    pixels[y1:y2, x1:x2] = drawn_ellipse(y2 - y1, x2 - x1) if ellipse else True
    return pixels


def covers(outer, inner, width: int, height: int) -> bool:
    """Whether every pixel ``inner`` masks, in every plane, is one ``outer`` masks."""
    if not (outer[0] <= inner[0] and outer[1] <= inner[1] and outer[2] >= inner[2] and outer[3] >= inner[3]):
        return False  # (only to keep the test quick: a pixel of inner's box lies outside outer's)
    return all(
        not np.any(region_pixels(inner, width, height, half) & ~region_pixels(outer, width, height, half))
        for half in (False, True)
    )


def plain_boxes(masker: Masker, regions: Detections, width: int, height: int):
    order = np.argsort(-regions.area) if len(regions) else []
    done = []
    for i in order:
        x1, y1, x2, y2 = regions.xyxy[i]
        x1, y1 = max(0, int(np.floor(x1))), max(0, int(np.floor(y1)))
        x2, y2 = min(width, int(np.ceil(x2))), min(height, int(np.ceil(y2)))
        at_edge = x1 <= 0 or y1 <= 0 or x2 >= width or y2 >= height
        box = (x1, y1, x2, y2, bool(masker.spec.shape == "ellipse" and regions.class_id[i] == FACE and not at_edge))
        if x2 - x1 >= 1 and y2 - y1 >= 1 and box not in done:
            # A region an earlier (larger) one masks wholly is left out: its own blur would only
            # blur that blur again.
            covered = any(covers(other, box, width, height) for other in done)
            done.append(box)
            if not covered:
                yield box


def plain_yuv420(masker: Masker, yuv: np.ndarray, regions: Detections) -> np.ndarray:
    height, width = yuv.shape[0] * 2 // 3, yuv.shape[1]
    luma = yuv[:height]
    u = yuv[height : height + height // 4].reshape(height // 2, width // 2)
    v = yuv[height + height // 4 :].reshape(height // 2, width // 2)
    fy, fu, fv = masker.yuv_fill
    for x1, y1, x2, y2, ellipse in plain_boxes(masker, regions, width, height):
        plain_mask(masker, luma[y1:y2, x1:x2], fy, ellipse)
        cx1, cy1, cx2, cy2 = x1 // 2, y1 // 2, -(-x2 // 2), -(-y2 // 2)
        plain_mask(masker, u[cy1:cy2, cx1:cx2], fu, ellipse)
        plain_mask(masker, v[cy1:cy2, cx1:cx2], fv, ellipse)
    return yuv


def plain_rgb(masker: Masker, image: np.ndarray, regions: Detections) -> np.ndarray:
    for x1, y1, x2, y2, ellipse in plain_boxes(masker, regions, image.shape[1], image.shape[0]):
        plain_mask(masker, image[y1:y2, x1:x2], masker.spec.color, ellipse)
    return image


def crowd(seed: int, width: int, height: int, n: int = 300) -> Detections:
    """Regions as a crowd gives them: every size from 1 px to half the frame, nested, repeated
    (the same box to the pixel, as the tracker's guesses give it), cut by the edges, faces and
    plates, fractional coordinates."""
    rng = np.random.default_rng(seed)
    size = np.exp(rng.uniform(0, np.log(min(width, height) / 2), (n, 2)))
    x1 = rng.uniform(-20, width, n)
    y1 = rng.uniform(-20, height, n)
    xyxy = np.stack([x1, y1, x1 + size[:, 0], y1 + size[:, 1]], 1).astype(np.float32)
    xyxy[n // 2 : n // 2 + 20] = xyxy[:20] + rng.uniform(-0.3, 0.3, (20, 4)).astype(np.float32)  # near repeats
    xyxy = np.clip(xyxy, 0, [width, height, width, height]).astype(np.float32)
    classes = np.where(rng.random(n) < 0.8, FACE, PLATE)
    return Detections(xyxy, rng.random(n).astype(np.float32), classes)


@pytest.mark.parametrize(("h", "w"), [(1, 1), (1, 7), (2, 3), (5, 5), (17, 9), (40, 31), (64, 64), (121, 300)])
def test_the_cached_ellipse_is_the_drawn_one_and_read_only(h, w):
    cached = maskers._ellipse_mask(h, w)
    assert cached.dtype == bool and np.array_equal(cached, drawn_ellipse(h, w))
    assert maskers._ellipse_mask(h, w) is cached  # drawn once
    with pytest.raises(ValueError):
        cached[0, 0] = not cached[0, 0]


@pytest.mark.parametrize("method", ["blur", "pixelate", "fill"])
@pytest.mark.parametrize("shape", ["ellipse", "box"])
@pytest.mark.parametrize("seed", [0, 1])
def test_yuv420_masking_equals_the_plain_per_plane_masking(method, shape, seed):
    h, w = 360, 640
    yuv = np.random.default_rng(seed + 10).integers(0, 256, (h * 3 // 2, w), dtype=np.uint8)
    masker = Masker(MaskSpec(method=method, shape=shape, strength=1.0 + 0.5 * seed))
    regions = crowd(seed, w, h)
    expected = plain_yuv420(masker, yuv.copy(), regions)
    assert np.array_equal(masker.apply_yuv420(yuv.copy(), regions), expected)
    assert not np.array_equal(expected, yuv)


@pytest.mark.parametrize("method", ["blur", "pixelate", "fill"])
def test_rgb_masking_equals_the_plain_per_region_masking(method):
    h, w = 240, 320
    rgb = np.random.default_rng(3).integers(0, 256, (h, w, 3), dtype=np.uint8)
    masker = Masker(MaskSpec(method=method, shape="ellipse"))
    regions = crowd(3, w, h, n=120)
    assert np.array_equal(masker.apply(rgb.copy(), regions), plain_rgb(masker, rgb.copy(), regions))


@pytest.mark.parametrize("method", ["blur", "pixelate"])
def test_two_chroma_planes_masked_together_give_each_plane_s_own_pixels(method):
    # _masked_pair shrinks each plane by itself, then blurs and enlarges both as one two-channel
    # image, which OpenCV does channel by channel. Whole-number shrink factors take OpenCV's fast
    # INTER_AREA path, where two channels would round differently from one: both kinds of size.
    rng = np.random.default_rng(5)
    fn = maskers._blurred if method == "blur" else maskers._pixelated
    sizes = [(1, 1), (1, 5), (2, 2), (3, 9), (7, 4), (12, 12), (33, 20), (90, 61)]
    sizes += [(int(a) * f, int(b) * g) for a, b in rng.integers(1, 12, (40, 2)) for f, g in ((4, 4), (8, 4), (4, 8))]
    for h, w in sizes:
        u, v = rng.integers(0, 256, (2, h, w), dtype=np.uint8)
        for cells in (6.0, 3.0, 1.0):
            both = maskers._masked_pair(u, v, cells, pixelate=method == "pixelate")
            assert both.shape == (h, w, 2)
            assert np.array_equal(both[:, :, 0], fn(u, cells)) and np.array_equal(both[:, :, 1], fn(v, cells))


def test_no_regions_and_regions_outside_the_frame_change_nothing():
    yuv = np.random.default_rng(4).integers(0, 256, (240, 160), dtype=np.uint8)
    masker = Masker(MaskSpec())
    assert np.array_equal(masker.apply_yuv420(yuv.copy(), Detections.empty()), yuv)
    off = Detections(
        np.array([[160, 0, 170, 10], [5, 5, 5.0, 9]], np.float32), np.ones(2, np.float32), np.zeros(2, np.int32)
    )
    assert np.array_equal(masker.apply_yuv420(yuv.copy(), off), yuv)
