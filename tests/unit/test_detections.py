import numpy as np
import pytest

from anonymizer.detections import FACE, PLATE, Detections, box_iou, nms, paired_iou


def test_detections_reject_mismatched_shapes_naming_the_field():
    with pytest.raises(ValueError, match="confidence must have shape"):
        Detections(np.zeros((2, 4)), np.zeros(3), np.zeros(2))


def test_empty_detections_have_consistent_shapes():
    d = Detections.empty()
    assert len(d) == 0 and d.xyxy.shape == (0, 4) and d.tracker_id.shape == (0,)


def test_merge_and_boolean_indexing_keep_arrays_parallel():
    a = Detections([[0, 0, 10, 10]], [0.9], [FACE])
    b = Detections([[5, 5, 20, 20], [1, 1, 2, 2]], [0.5, 0.2], [PLATE, FACE])
    m = Detections.merge([a, Detections.empty(), b])
    assert len(m) == 3
    faces = m[m.class_id == FACE]
    assert faces.confidence.tolist() == pytest.approx([0.9, 0.2])
    assert (faces.tracker_id == -1).all()


def test_box_iou_matches_hand_computed_values():
    iou = box_iou(np.array([[0, 0, 10, 10]]), np.array([[5, 0, 15, 10], [20, 20, 30, 30]]))
    assert iou[0, 0] == pytest.approx(50 / 150)
    assert iou[0, 1] == 0


def test_nms_keeps_best_of_overlapping_and_all_disjoint_boxes():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [50, 50, 60, 60]], np.float32)
    keep = nms(boxes, np.array([0.5, 0.9, 0.3]), 0.5)
    assert sorted(keep.tolist()) == [1, 2]


def test_paired_iou_is_the_diagonal_of_the_iou_matrix():
    rng = np.random.default_rng(0)
    a = np.concatenate([xy := rng.uniform(0, 50, (20, 2)), xy + rng.uniform(1, 30, (20, 2))], axis=1)
    b = np.concatenate([xy := rng.uniform(0, 50, (20, 2)), xy + rng.uniform(1, 30, (20, 2))], axis=1)
    assert np.allclose(paired_iou(a, b), np.diag(box_iou(a, b)))
    assert paired_iou([[0, 0, 10, 10]], [[5, 0, 15, 10]])[0] == pytest.approx(1 / 3)
