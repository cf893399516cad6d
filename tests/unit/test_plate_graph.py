"""The plate model runs without its segmentation branch, and finds exactly what the full graph finds;
its batch-1 Reshapes rewritten, a batch gives each picture what it gets alone."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from media_factory import FACES_PHOTO, PLATE_PHOTO
from PIL import Image

from anonymizer.detect import graphs
from anonymizer.detect import onnx as onnx_detectors
from anonymizer.detect.registry import builtin_weights


def test_box_only_graph_gives_the_full_graphs_boxes_and_scores(monkeypatch, tmp_path) -> None:
    path, licence = builtin_weights("platedet")
    cut = onnx_detectors.YoloOnnx(path, licence, "platedet", threads=1)
    # A cache of its own: the shared one holds the checked cut, which would be loaded as it is.
    monkeypatch.setenv("ANONYMIZER_MODEL_CACHE", str(tmp_path))
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


def _session(model):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def test_the_batched_plate_graph_gives_each_picture_its_batch_1_output() -> None:
    path, _ = builtin_weights("platedet")
    single = onnx_detectors.boxes_only(onnx.load(str(path)))
    batched = graphs.dynamic_batch(single)
    onnx.checker.check_model(batched)
    assert batched.graph.input[0].type.tensor_type.shape.dim[0].dim_param == graphs.BATCH_DIM
    constants = {init.name: onnx.numpy_helper.to_array(init) for init in batched.graph.initializer}
    shapes = [constants[n.input[1]].tolist() for n in batched.graph.node if n.op_type == "Reshape"]
    # The box head's [1, 65, -1] x3 and the DFL's [1, 4, 16, 8400] and [1, 4, 8400] (the mask
    # coefficients' [1, 32, -1] went with the mask branch): the batch is copied from the input.
    assert sorted(shapes) == [[0, 4, 16, 8400], [0, 4, 8400], [0, 65, -1], [0, 65, -1], [0, 65, -1]]

    rgb = np.array(Image.open(PLATE_PHOTO).convert("RGB"))
    pictures = [onnx_detectors.letterbox(p, 640)[0] for p in (rgb, rgb[: rgb.shape[0] // 2], rgb[:, ::-1])]
    x = (np.stack(pictures).transpose(0, 3, 1, 2).astype(np.float32) / 255.0).astype(np.float16)
    one, many = _session(single), _session(batched)
    # The rewritten graph itself is unchanged at batch 1, bit for bit.
    np.testing.assert_array_equal(many.run(None, {"images": x[:1]})[0], one.run(None, {"images": x[:1]})[0])
    # A batch of 3: fp16 kernels chosen for a batch may move a box coordinate by one ulp (2**-10
    # relative; measured: 4 of 126000 values); the scores stay bit for bit.
    worst = graphs.check_batched(
        lambda b: one.run(None, {"images": b})[0], lambda b: many.run(None, {"images": b})[0], x, rtol=2.0**-10
    )
    assert worst <= 2.0**-10
    scores_many = many.run(None, {"images": x})[0][:, 4]
    scores_one = np.concatenate([one.run(None, {"images": x[i : i + 1]})[0][:, 4] for i in range(3)])
    np.testing.assert_array_equal(scores_many, scores_one)
    assert (scores_one.max(axis=1) > 0.5).sum() == 2  # the plate is in the whole and the mirrored picture


def test_centerface_takes_a_batch_as_shipped_once_prepared() -> None:
    path, _ = builtin_weights("centerface")
    model = onnx.load_from_string(onnx_detectors.prepare_centerface(path))
    assert not [n for n in model.graph.node if n.op_type == "Reshape"]  # nothing bakes the batch
    session = _session(model)
    rgb = np.array(Image.open(FACES_PHOTO).convert("RGB"))[:256, :384]
    x = np.stack([rgb, rgb[:, ::-1], rgb[::-1]]).transpose(0, 3, 1, 2).astype(np.float32)
    worst = graphs.check_batched(
        lambda b: session.run(None, {"input.1": b})[0], lambda b: session.run(None, {"input.1": b})[0], x, rtol=1e-5
    )
    assert worst <= 1e-5


def test_a_reshape_of_a_computed_shape_is_refused() -> None:
    path, _ = builtin_weights("platedet")
    model = onnx.load(str(path))
    reshape = next(n for n in model.graph.node if n.op_type == "Reshape")
    model.graph.node.append(onnx.helper.make_node("Shape", [reshape.input[0]], ["computed_shape"]))
    reshape.input[1] = "computed_shape"
    with pytest.raises(graphs.GraphRewriteError, match="computed shape"):
        graphs.dynamic_batch(model)
