"""platedet re-shaped to a 640x384 input finds what the square graph finds on a 16:9 photo."""

from __future__ import annotations

import numpy as np
import onnx
from media_factory import SAMPLES
from PIL import Image

from anonymizer.detect.onnx import _session, boxes_only, letterbox
from anonymizer.detect.registry import builtin_weights
from anonymizer.detect.yolo_shape import anchors_for, letterbox_to, reshape_input

WIDE_PLATE = SAMPLES / "plate-316b64c0-55bf-4079-a1c0-d93f461a576f.jpg"  # 1920x1080, one plate


def _best(session, canvas: np.ndarray, ratio: float, pad: tuple[int, int]) -> tuple[np.ndarray, float]:
    blob = (canvas.transpose(2, 0, 1)[None] / 255.0).astype(np.float16)
    pred = session.run(None, {"images": blob})[0][0].T.astype(np.float32)
    i = int(pred[:, 4].argmax())
    xywh = pred[i, :4]
    box = np.concatenate([xywh[:2] - xywh[2:] / 2, xywh[:2] + xywh[2:] / 2])
    return (box - [pad[0], pad[1], pad[0], pad[1]]) / ratio, float(pred[i, 4])


def test_the_frame_shaped_graph_finds_the_square_graphs_plate() -> None:
    path, _ = builtin_weights("platedet")
    square = boxes_only(onnx.load(str(path)))
    wide = reshape_input(square, 384, 640)
    assert wide is not None
    assert square.graph.input[0].type.tensor_type.shape.dim[2].dim_value == 640  # the source is untouched
    s_square = _session(square.SerializeToString(), 1, ["CPUExecutionProvider"])
    s_wide = _session(wide.SerializeToString(), 1, ["CPUExecutionProvider"])
    assert s_wide.get_outputs()[0].shape == [1, 5, 5040]  # 80x48 + 40x24 + 20x12 anchors

    rgb = np.array(Image.open(WIDE_PLATE).convert("RGB"))
    box_square, score_square = _best(s_square, *letterbox(rgb, 640))
    box_wide, score_wide = _best(s_wide, *letterbox_to(rgb, 384, 640))
    assert score_square > 0.5 and abs(score_wide - score_square) < 0.05
    assert np.abs(box_wide - box_square).max() < 0.05 * (box_square[2] - box_square[0])


def test_anchors_match_the_exports_own_and_other_graphs_are_left_alone() -> None:
    points, strides = anchors_for(640, 640)
    assert points.shape == (1, 2, 8400) and strides.shape == (1, 8400)
    assert points[0, :, 0].tolist() == [0.5, 0.5] and points[0, :, 80].tolist() == [0.5, 1.5]
    path, _ = builtin_weights("centerface")
    assert reshape_input(onnx.load(str(path)), 384, 640) is None  # not a YOLOv8 head
