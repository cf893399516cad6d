"""Video frames of 16:9 go through platedet re-shaped to 640x384 and get the square graph's plate.

Tolerance: on the shipped 1920x1080 plate photo (and the same frame at 1280x720), the best box of
the 640x384 path lies within 5 % of the plate's width of the 640x640 path's, with a score within
0.05, at full precision and int8 (measured: within 1.2 px and 0.011; docs/int8.md).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from media_factory import FACES_PHOTO, PLATE_PHOTO
from onnx import TensorProto, helper, numpy_helper
from PIL import Image
from structlog.testing import capture_logs

from anonymizer.config import PLATE_DEFAULTS, ClassSpec
from anonymizer.detect import int8
from anonymizer.detect.multiscale import ClassDetector, Pass
from anonymizer.detect.onnx import YoloOnnx
from anonymizer.detect.registry import builtin_weights
from anonymizer.detect.yolo_shape import anchors_for
from anonymizer.detections import PLATE


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    """One int8 platedet build for this module (about 10 s on 2 busy cores)."""
    folder = tmp_path_factory.mktemp("int8-cache")
    source, _ = builtin_weights("platedet")
    int8.derived_graph("platedet", source, cache=folder)
    return folder


def _frames() -> list[np.ndarray]:
    rgb = np.array(Image.open(PLATE_PHOTO).convert("RGB"))
    assert rgb.shape[:2] == (1080, 1920)
    return [rgb, cv2.resize(rgb, (1280, 720), interpolation=cv2.INTER_AREA)]


def _best(found: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, float]:
    boxes, scores = found
    assert len(boxes), "no plate found"
    i = int(np.argmax(scores))
    return boxes[i], float(scores[i])


@pytest.mark.parametrize("precision", ["full", "int8"])
def test_the_640x384_path_masks_the_square_paths_plate(precision: str, cache: Path, monkeypatch) -> None:
    monkeypatch.setenv("ANONYMIZER_MODEL_CACHE", str(cache))
    path, licence = builtin_weights("platedet")
    model = YoloOnnx(path, licence, "platedet", threads=1, precision=precision, shaped=True)
    assert model.frame_shaped and model.shaped_session is not None
    assert model.shaped_session.get_inputs()[0].shape[2:] == [384, 640]
    for rgb in _frames():
        assert model._input(rgb, True)[0] is model.shaped_session  # a 16:9 frame takes the 640x384 graph
        box_square, score_square = _best(model(rgb, 0.1))
        box_shaped, score_shaped = _best(model(rgb, 0.1, shaped=True))
        width = float(box_square[2] - box_square[0])
        assert score_square > 0.5 and abs(score_shaped - score_square) < 0.05
        assert np.abs(box_shaped - box_square).max() < 0.05 * width


def test_photos_and_narrow_pictures_keep_the_square_input_and_the_audit_names_both_graphs(
    cache: Path, monkeypatch
) -> None:
    monkeypatch.setenv("ANONYMIZER_MODEL_CACHE", str(cache))
    path, licence = builtin_weights("platedet")
    model = YoloOnnx(path, licence, "platedet", threads=1, precision="int8", shaped=True)
    again = YoloOnnx(path, licence, "platedet", threads=1, precision="int8", shaped=True)
    plain = YoloOnnx(path, licence, "platedet", threads=1, precision="int8")
    audit = model.info.as_audit()
    assert audit["shaped_graph_sha256"] == again.info.shaped_graph_sha256  # the same bytes on every build
    assert audit["graph_sha256"] == plain.info.graph_sha256 and "shaped_graph_sha256" not in plain.info.as_audit()
    assert not plain.frame_shaped

    rgb = np.array(Image.open(FACES_PHOTO).convert("RGB"))  # 4:3-ish: narrower than 5:3
    assert rgb.shape[1] * 3 < rgb.shape[0] * 5
    assert model._input(rgb, True)[0] is model.session
    assert model._input(_frames()[0], False)[0] is model.session  # a photo's pass: not asked to

    # Through the plan: video passes over a wide frame use the shaped graph, photo passes do not.
    spec = ClassSpec(**PLATE_DEFAULTS)
    detector = ClassDetector(model, spec, PLATE)
    calls: list[bool] = []
    original = model.shaped_session.run

    def counting(*args, **kwargs):
        calls.append(True)
        return original(*args, **kwargs)

    monkeypatch.setattr(model.shaped_session, "run", counting, raising=False)
    frame = _frames()[1]
    whole = [Pass(1.0, 0, 0, frame.shape[1], frame.shape[0])]
    detector.detect_passes([frame], plans=[whole])
    assert calls == []
    video = detector.detect_passes([frame], video=True, plans=[whole])
    assert calls == [True] and len(video[0][0][2])


def _tiny_export(path: Path, *, with_head: bool) -> Path:
    """Write a small 640x640 box-only ONNX graph (one plate box at anchor 0, score 0.9) to ``path``.

    ``with_head``: its xy rows come from a YOLOv8 head's anchors times strides, which the rewrite
    re-shapes; the rest of the graph still holds 8400 anchors, so onnxruntime refuses the
    re-shaped copy. Without: no anchors at all, which the rewrite itself refuses.
    """
    tail = np.zeros((1, 3, 8400), np.float32)
    tail[0, :, 0] = [100, 50, 0.9]  # w, h, score of anchor 0
    inits = [numpy_helper.from_array(tail, "tail"), numpy_helper.from_array(np.zeros(1, np.float32), "zero")]
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["mean"], axes=[1, 2, 3], keepdims=0),
        helper.make_node("Mul", ["mean", "zero"], ["nought"]),
        helper.make_node("Add", ["tail", "nought"], ["wh_score"]),
    ]
    xy = np.zeros((1, 2, 8400), np.float32)
    xy[0, :, 0] = [320, 320]  # the box's centre at anchor 0
    if with_head:
        points, strides = anchors_for(640, 640)
        inits += [
            numpy_helper.from_array(points.astype(np.float32), "anchors"),
            numpy_helper.from_array(strides.astype(np.float32), "strides"),
            numpy_helper.from_array((xy - points * strides).astype(np.float32), "offsets"),
        ]
        nodes.append(helper.make_node("Mul", ["anchors", "strides"], ["centres"]))
        nodes.append(helper.make_node("Add", ["centres", "offsets"], ["xy"]))
    else:
        inits.append(numpy_helper.from_array(xy, "xy"))
    nodes.append(helper.make_node("Concat", ["xy", "wh_score"], ["boxes"], axis=1))
    graph = helper.make_graph(
        nodes,
        "operator-plates",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 640, 640])],
        [helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, 5, 8400])],
        inits,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return path


@pytest.mark.parametrize(
    ("with_head", "reason"),
    [(False, "anchors and strides are not a YOLOv8 head"), (True, "cannot load ONNX model")],
    ids=["the-rewrite-refuses", "onnxruntime-refuses"],
)
def test_a_graph_that_cannot_be_re_shaped_falls_back_to_the_square_one_with_one_warning(
    tmp_path: Path, with_head: bool, reason: str
) -> None:
    path = _tiny_export(tmp_path / "Anna-plates.onnx", with_head=with_head)
    with capture_logs() as logs:
        model = YoloOnnx(path, "operator", "platedet", threads=1, shaped=True)
    (event,) = logs
    assert (event["event"], event["log_level"], event["model"]) == (
        "model.shaped_graph_unavailable",
        "warning",
        "platedet",
    )
    assert reason in event["reason"] and "Anna" not in str(event) and str(tmp_path) not in str(event)
    # Nothing runs the shaped graph and the audit does not claim one.
    assert not model.frame_shaped and model.shaped_session is None
    assert "shaped_graph_sha256" not in model.info.as_audit() and model.info.shaped_graph_sha256 is None
    # A video pass over a 16:9 frame takes the square graph and finds its plate.
    frame = np.zeros((720, 1280, 3), np.uint8)
    assert model._input(frame, True)[0] is model.session
    detector = ClassDetector(model, ClassSpec(**PLATE_DEFAULTS), PLATE)
    found = detector.detect_passes([frame], video=True, plans=[[Pass(1.0, 0, 0, 1280, 720)]])
    ((_scale, _mirrored, boxes, scores),) = found[0]
    # Centre (320, 320), 100x50 in the 640 px letterbox of a 1280x720 frame (ratio 0.5, 140 px band).
    np.testing.assert_allclose(boxes, [[540, 310, 740, 410]], atol=0.5)
    np.testing.assert_allclose(scores, [0.9], atol=1e-6)


def test_the_shipped_graph_is_re_shaped_without_a_warning() -> None:
    path, licence = builtin_weights("platedet")
    with capture_logs() as logs:
        model = YoloOnnx(path, licence, "platedet", threads=1, shaped=True)
    assert model.frame_shaped and model.info.shaped_graph_sha256 and logs == []
