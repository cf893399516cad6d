"""Graph rewrites that let one inference call take several images (the batched GPU path).

Ultralytics exports bake batch size 1 into the target shapes of their Reshape nodes
(``[1, 32, -1]``, ``[1, 65, -1]``, ``[1, 4, 16, 8400]`` in platedet's head) and into the declared
shapes of the graph's input and outputs. ``dynamic_batch`` rewrites the leading 1 of each such
Reshape to 0 (ONNX: "copy this dimension from the input"), which is the batch wherever the data
reaching the Reshape still has the batch in front. Whether that holds is not assumed: the caller
checks that a batch gives each image's batch-1 output (``check_batched``) before using the graph.
"""

from __future__ import annotations

import numpy as np

BATCH_DIM = "batch"


class GraphRewriteError(ValueError):
    """A graph this rewrite does not fit (the caller keeps batch-1 calls)."""


def _constant_values(graph) -> dict[str, object]:
    """Name -> the TensorProto holding it, for initializers and Constant nodes."""
    found: dict[str, object] = {init.name: init for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    found[node.output[0]] = attr.t
    return found


def _set_leading_dim(value_info, name: str) -> None:
    dims = value_info.type.tensor_type.shape.dim
    if len(dims):
        dims[0].Clear()
        dims[0].dim_param = name


def _drop_unused_initializers(graph) -> None:
    """Remove the shape constants the rewrite replaced (onnxruntime warns about each)."""
    used = {name for node in graph.node for name in node.input} | {out.name for out in graph.output}
    kept = [init for init in graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)


def dynamic_batch(model):
    """Given an ONNX model whose Reshape shapes fix batch size 1, return a copy with a dynamic batch.

    Raise GraphRewriteError when a Reshape's target shape is computed at run time (a graph this
    rewrite cannot reason about) or the model has no input.
    """
    import onnx
    from onnx import numpy_helper

    rewritten = onnx.ModelProto()
    rewritten.CopyFrom(model)
    graph = rewritten.graph
    if not graph.input:
        raise GraphRewriteError("model has no input")
    constants = _constant_values(graph)
    for node in graph.node:
        if node.op_type != "Reshape":
            continue
        if any(a.name == "allowzero" and a.i for a in node.attribute):
            raise GraphRewriteError(f"Reshape {node.name!r} sets allowzero: 0 would not copy the batch")
        tensor = constants.get(node.input[1])
        if tensor is None:
            raise GraphRewriteError(f"Reshape {node.name!r} has a computed shape")
        shape = numpy_helper.to_array(tensor).astype(np.int64)
        if shape.ndim != 1 or len(shape) == 0 or shape[0] != 1:
            continue
        shape = shape.copy()
        shape[0] = 0
        # A new initializer per node: the old constant may feed other nodes that need its 1.
        name = f"{node.input[1]}__batch{len(graph.initializer)}"
        graph.initializer.append(numpy_helper.from_array(shape, name))
        node.input[1] = name
    _drop_unused_initializers(graph)
    initializers = {init.name for init in graph.initializer}
    for value in list(graph.input) + list(graph.output):
        if value.name not in initializers:
            _set_leading_dim(value, BATCH_DIM)
    # Intermediate shapes recorded by the exporter would still say 1: shape inference redoes them.
    del graph.value_info[:]
    return rewritten


def check_batched(run_one, run_many, images: np.ndarray, *, rtol: float) -> float:
    """Return the largest difference between a batched call and batch-1 calls on ``images``,
    relative to the value's magnitude (at least 1: a score near 0 is compared absolutely).

    ``run_one(x)`` and ``run_many(x)`` take an (n, C, H, W) array and return the first output.
    A batch may pick other convolution kernels than one image does, so fp16 outputs can differ in
    their last bit (platedet: 4 of 126000 values, by one ulp, 2**-10 relative). Raise
    GraphRewriteError when the difference exceeds ``rtol``.
    """
    batched = np.asarray(run_many(images), np.float32)
    single = np.concatenate([np.asarray(run_one(images[i : i + 1]), np.float32) for i in range(len(images))])
    if batched.shape != single.shape:
        raise GraphRewriteError(f"batched output has shape {batched.shape}, batch-1 calls {single.shape}")
    scale = np.maximum(1.0, np.abs(single))
    worst = float(np.max(np.abs(batched - single) / scale)) if batched.size else 0.0
    if worst > rtol:
        raise GraphRewriteError(f"batched output differs from batch-1 calls by {worst:g} (tolerance {rtol:g})")
    return worst
