"""The plate model runs without its segmentation branch, and finds exactly what the full graph finds."""

from __future__ import annotations

import numpy as np
import onnx
from media_factory import PLATE_PHOTO
from PIL import Image

from anonymizer.detect import onnx as onnx_detectors
from anonymizer.detect.registry import builtin_weights


def test_box_only_graph_gives_the_full_graphs_boxes_and_scores(monkeypatch) -> None:
    path, licence = builtin_weights("platedet")
    cut = onnx_detectors.YoloOnnx(path, licence, "platedet", threads=1)
    monkeypatch.setattr(onnx_detectors, "boxes_only", lambda model, num_masks=32: None)
    full = onnx_detectors.YoloOnnx(path, licence, "platedet", threads=1)

    assert len(full.session.get_outputs()) == 2 and full.num_masks == 32
    assert len(cut.session.get_outputs()) == 1 and cut.num_masks == 0  # the mask branch is gone
    assert cut.info == full.info  # the audit still names the shipped file and its SHA-256

    rgb = np.array(Image.open(PLATE_PHOTO).convert("RGB"))
    found = 0
    for picture in (rgb, rgb[: rgb.shape[0] // 2], np.ascontiguousarray(rgb[:, ::-1])):
        boxes_full, scores_full = full(picture, 0.01)
        boxes_cut, scores_cut = cut(picture, 0.01)
        np.testing.assert_array_equal(boxes_cut, boxes_full)
        np.testing.assert_array_equal(scores_cut, scores_full)
        found += len(boxes_full)
    assert found > 0


def test_a_graph_the_cut_does_not_fit_is_left_whole() -> None:
    path, _ = builtin_weights("platedet")
    model = onnx.load(str(path))
    del model.graph.output[1]  # a plain detect export: one output
    assert onnx_detectors.boxes_only(model) is None
