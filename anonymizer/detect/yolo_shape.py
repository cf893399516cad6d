"""A YOLOv8 ONNX export re-shaped to a frame-shaped input (640x384 for 16:9), by graph surgery.

A 16:9 frame letterboxed into the square 640x640 input spends 44 % of every call on grey
padding. The export bakes its input size into three places: the anchor points (an initializer
of shape 1x2xN), the strides (1xN) and the DFL Reshape shapes that hold N (8400 anchors for 640x640).
Rewritten for 80x48 + 40x24 + 20x12 cells (5040 anchors) the same weights run on a 640x384 input
(RUNTIME-NOTES.md, "platedet at 640x384"). ``YoloOnnx`` loads this copy beside the square graph
when ``detect.plates.video_shaped_input`` is on, and video passes over pictures of aspect 5:3 or
wider take it: the letterbox then scales them exactly as the square one does (docs/int8.md).
"""

from __future__ import annotations

import cv2
import numpy as np

STRIDES = (8, 16, 32)


def anchors_for(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Return (anchor points 1x2xN, strides 1xN) of a YOLOv8 head for an input of height x width."""
    points, strides = [], []
    for s in STRIDES:
        h, w = height // s, width // s
        ys, xs = np.meshgrid(np.arange(h) + 0.5, np.arange(w) + 0.5, indexing="ij")
        points.append(np.stack([xs.ravel(), ys.ravel()]))
        strides.append(np.full(h * w, s))
    return np.concatenate(points, axis=1)[None], np.concatenate(strides)[None]


def reshape_input(model, height: int, width: int):
    """Return a copy of the YOLOv8 export ``model`` that takes 1x3xheight xwidth, or None if it is not one.

    The export's anchors and strides must be exactly those of its own square input: anything
    else is a graph this surgery does not understand.
    """
    import onnx
    from onnx import numpy_helper

    if height % 32 or width % 32:
        raise ValueError(f"input sides must be multiples of 32, got {width}x{height}")
    dims = model.graph.input[0].type.tensor_type.shape.dim
    side = dims[-1].dim_value
    if not side or dims[-2].dim_value != side:
        return None
    old_points, old_strides = anchors_for(side, side)
    new_points, new_strides = anchors_for(height, width)
    n_old, n_new = old_points.shape[-1], new_points.shape[-1]
    out = onnx.ModelProto()
    out.CopyFrom(model)
    found = {"points": 0, "strides": 0}
    for init in out.graph.initializer:
        value = numpy_helper.to_array(init)
        if value.shape == (1, 2, n_old) and np.array_equal(value.astype(np.float64), old_points):
            init.CopyFrom(numpy_helper.from_array(new_points.astype(value.dtype), init.name))
            found["points"] += 1
        elif value.shape == (1, n_old) and np.array_equal(value.astype(np.float64), old_strides):
            init.CopyFrom(numpy_helper.from_array(new_strides.astype(value.dtype), init.name))
            found["strides"] += 1
    if found != {"points": 1, "strides": 1}:
        return None
    shapes = {node.input[1] for node in out.graph.node if node.op_type == "Reshape"}
    for init in out.graph.initializer:
        if init.name in shapes:
            value = numpy_helper.to_array(init)
            if n_old in value:
                init.CopyFrom(
                    numpy_helper.from_array(np.where(value == n_old, n_new, value).astype(value.dtype), init.name)
                )
    new_dims = out.graph.input[0].type.tensor_type.shape.dim
    new_dims[-2].dim_value, new_dims[-1].dim_value = height, width
    del out.graph.value_info[:]  # intermediate shapes inferred for the square input
    for output in out.graph.output:
        for dim in output.type.tensor_type.shape.dim:
            if dim.dim_value == n_old:
                dim.dim_value = n_new
    return out


def letterbox_to(rgb: np.ndarray, height: int, width: int) -> tuple[np.ndarray, float, tuple[int, int]]:
    """Resize keeping aspect into a height x width canvas of grey 114 (YOLO's convention)."""
    h, w = rgb.shape[:2]
    ratio = min(height / h, width / w)
    nw, nh = int(round(w * ratio)), int(round(h * ratio))
    canvas = np.full((height, width, 3), 114, np.uint8)
    top, left = int(round((height - nh) / 2 - 0.1)), int(round((width - nw) / 2 - 0.1))
    interpolation = cv2.INTER_AREA if ratio < 1 else cv2.INTER_LINEAR
    canvas[top : top + nh, left : left + nw] = cv2.resize(rgb, (nw, nh), interpolation=interpolation)
    return canvas, ratio, (left, top)
