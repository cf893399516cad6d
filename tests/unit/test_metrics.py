"""Metric code of `anonymizer evaluate`, on hand-made images and boxes."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from anonymizer.evaluate import metrics as module


def textured_image(height: int = 120, width: int = 160, seed: int = 0) -> np.ndarray:
    """Return an RGB image full of fine detail (random blocks of 2 px), like a face at close range."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(height // 2, width // 2, 3), dtype=np.uint8)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_NEAREST)


BOX = np.array([40.0, 30.0, 100.0, 90.0], np.float32)


def blur_region(image: np.ndarray, x1: int, y1: int, x2: int, y2: int, kernel: int = 31) -> np.ndarray:
    out = image.copy()
    out[y1:y2, x1:x2] = cv2.blur(image[y1:y2, x1:x2], (kernel, kernel))
    return out


def test_unchanged_box_retains_all_detail_and_is_not_hidden():
    image = textured_image()
    result = module.box_hidden(image, image.copy(), BOX)
    assert result.retained == pytest.approx(1.0)
    assert result.changed == 0.0
    assert not result.hidden


def test_perfectly_filled_box_counts_as_hidden():
    image = textured_image()
    out = image.copy()
    out[30:90, 40:100] = 0
    result = module.box_hidden(image, out, BOX)
    assert result.retained == pytest.approx(0.0, abs=1e-6)
    assert result.hidden


def test_strongly_blurred_box_counts_as_hidden():
    image = textured_image()
    result = module.box_hidden(image, blur_region(image, 40, 30, 100, 90), BOX)
    assert result.retained < 0.05
    assert result.hidden


def test_pixelated_box_counts_as_hidden():
    image = textured_image()
    out = image.copy()
    crop = image[30:90, 40:100]
    out[30:90, 40:100] = cv2.resize(cv2.resize(crop, (6, 6), interpolation=cv2.INTER_AREA), (60, 60), interpolation=cv2.INTER_NEAREST)
    assert module.box_hidden(image, out, BOX).hidden


@pytest.mark.parametrize("half", ["left", "top"])
def test_half_masked_box_does_not_count_as_hidden(half):
    image = textured_image()
    if half == "left":
        out = blur_region(image, 40, 30, 70, 90)
    else:
        out = blur_region(image, 40, 30, 100, 60)
    result = module.box_hidden(image, out, BOX)
    assert 0.3 < result.retained < 0.7
    assert not result.hidden


def test_mild_blur_that_leaves_the_face_recognisable_does_not_count_as_hidden():
    image = cv2.resize(textured_image(30, 40, seed=3), (160, 120), interpolation=cv2.INTER_CUBIC)
    out = image.copy()
    out[30:90, 40:100] = cv2.GaussianBlur(image[30:90, 40:100], (0, 0), 1.0)
    assert not module.box_hidden(image, out, BOX).hidden


def test_flat_box_is_hidden_only_when_its_pixels_changed():
    image = np.full((50, 50, 3), 128, np.uint8)
    box = np.array([10, 10, 30, 30], np.float32)
    assert not module.box_hidden(image, image.copy(), box).hidden
    out = image.copy()
    out[10:30, 10:30] = 0
    assert module.box_hidden(image, out, box).hidden


def test_box_outside_the_image_is_not_hidden():
    image = textured_image()
    assert not module.box_hidden(image, image, np.array([500, 500, 600, 600], np.float32)).hidden


def test_matching_counts_true_and_false_positives_at_iou_one_half():
    gt = np.array([[0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10]], np.float32)
    det = np.array(
        [
            [0, 0, 10, 10],  # exact: match
            [21, 0, 31, 10],  # IoU 0.82: match
            [45, 0, 55, 10],  # IoU 0.33: miss and false positive
            [80, 80, 90, 90],  # nothing there: false positive
        ],
        np.float32,
    )
    match = module.match_boxes(gt, det, np.array([0.9, 0.8, 0.7, 0.6]))
    assert match.gt_matched.tolist() == [True, True, False]
    assert match.det_matched.tolist() == [True, True, False, False]
    assert match.false_positives == 2


def test_a_labelled_box_is_matched_by_only_one_detection():
    gt = np.array([[0, 0, 10, 10]], np.float32)
    det = np.array([[0, 0, 10, 10], [0, 0, 10, 9]], np.float32)
    match = module.match_boxes(gt, det, np.array([0.5, 0.9]))
    # The more confident detection claims the box; the duplicate is a false positive.
    assert match.det_matched.tolist() == [False, True]
    assert match.false_positives == 1


def test_detection_on_an_ignore_box_is_neither_counted_nor_penalised():
    gt = np.array([[0, 0, 10, 10]], np.float32)
    ignore = np.array([[100, 100, 104, 106]], np.float32)
    det = np.array([[0, 0, 10, 10], [100, 100, 105, 106], [200, 200, 210, 210]], np.float32)
    match = module.match_boxes(gt, det, None, ignore)
    assert match.det_neutral.tolist() == [False, True, False]
    assert match.false_positives == 1
    # Without the ignore box the same detection is a false positive.
    assert module.match_boxes(gt, det).false_positives == 2


def test_ignore_box_does_not_change_recall():
    gt = np.array([[0, 0, 10, 10], [50, 50, 60, 60]], np.float32)
    det = np.array([[0, 0, 10, 10]], np.float32)
    ignore = np.array([[50, 50, 60, 60]], np.float32)
    assert module.match_boxes(gt, det, None, ignore).gt_matched.tolist() == [True, False]


def test_possibly_unlabelled_lists_only_confident_detections_touching_no_known_box():
    known = np.array([[0, 0, 100, 100], [300, 300, 320, 320]], np.float32)  # a large label, an ignore box
    det = np.array(
        [
            [500, 500, 530, 530],  # confident, far from everything: a face the labels left out
            [600, 600, 630, 630],  # as far, but weak
            [5, 5, 95, 95],  # on the labelled face
            [30, 30, 50, 50],  # a part of the labelled face (IoU 0.04, but all of it inside)
            [301, 301, 321, 321],  # on the ignore box
            [90, 40, 130, 80],  # a neighbour: a quarter of it inside the label
        ],
        np.float32,
    )
    conf = np.array([0.9, 0.3, 0.9, 0.9, 0.9, 0.9], np.float32)
    assert module.possibly_unlabelled(det, conf, known).tolist() == [True, False, False, False, False, False]
    # With nothing labelled, every confident detection is a candidate; exactly at the score it counts.
    conf[1] = module.UNLABELLED_SCORE
    assert module.possibly_unlabelled(det, conf, np.zeros((0, 4))).tolist() == [True] * 6
    assert module.possibly_unlabelled(np.zeros((0, 4)), np.zeros(0), known).tolist() == []


def test_matching_with_no_detections_or_no_labels_works():
    gt = np.array([[0, 0, 10, 10]], np.float32)
    assert module.match_boxes(gt, np.zeros((0, 4))).gt_matched.tolist() == [False]
    match = module.match_boxes(np.zeros((0, 4)), gt)
    assert match.false_positives == 1


def test_size_is_the_geometric_mean_side_and_buckets_have_closed_lower_edges():
    boxes = np.array([[0, 0, 10, 20], [0, 0, 16, 16], [0, 0, 31, 31], [0, 0, 64, 64], [0, 0, 400, 100]], np.float32)
    sizes = module.box_size_px(boxes)
    assert sizes[0] == pytest.approx(np.sqrt(200))
    assert [module.SIZE_BUCKETS[i] for i in module.size_bucket(sizes)] == ["<16", "16-32", "16-32", "64-128", ">=128"]


def test_collateral_counts_changes_outside_the_dilated_labelled_boxes_only():
    image = textured_image(100, 100)
    out = image.copy()
    out[40:60, 40:60] = 0  # the labelled object: not collateral
    out[36:40, 40:60] = 0  # the margin, inside the dilation of a quarter: not collateral
    out[0:10, 0:10] = 0  # a false mask elsewhere: collateral
    changed, total = module.collateral_counts(image, out, np.array([[40, 40, 60, 60]], np.float32))
    assert total == 100 * 100 - 30 * 30
    assert changed == pytest.approx(100, abs=5)


def test_collateral_is_zero_for_an_untouched_image():
    image = textured_image()
    changed, total = module.collateral_counts(image, image.copy(), np.zeros((0, 4), np.float32))
    assert (changed, total) == (0, image.shape[0] * image.shape[1])
