"""Graphs rewritten from the shipped ones (CenterFace prepared, platedet's 640x384 copy and box-only
cut) come from the derived-graph cache once a process has made them: the same bytes, and no onnx
import, which costs about 0.6 s of every CLI run's start-up (docs/benchmarks.md, "Start-up")."""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

from anonymizer.detect import onnx as detect_onnx
from anonymizer.detect.onnx import CenterFace, YoloOnnx, prepare_centerface
from anonymizer.detect.registry import builtin_weights

ROOT = Path(__file__).resolve().parents[2]


def test_a_cached_rewrite_is_the_rewrite_and_an_altered_one_is_made_again(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("ANONYMIZER_MODEL_CACHE", str(tmp_path))
    path, licence = builtin_weights("centerface")
    built = prepare_centerface(path)
    calls = []

    def build() -> bytes:
        calls.append(1)
        return prepare_centerface(path)

    sha = hashlib.sha256(b"source").hexdigest()
    assert detect_onnx.rewritten_graph("centerface-prepared", sha, build) == built and calls == [1]
    assert detect_onnx.rewritten_graph("centerface-prepared", sha, build) == built and calls == [1]  # read back
    (copy,) = tmp_path.glob("centerface-prepared-*.onnx")
    meta = json.loads(copy.with_suffix(".json").read_text())
    assert meta == {"source_sha256": sha, "graph_sha256": hashlib.sha256(built).hexdigest()}
    copy.write_bytes(copy.read_bytes()[:-10])  # a truncated copy: built again, to the same bytes
    assert detect_onnx.rewritten_graph("centerface-prepared", sha, build) == built and calls == [1, 1]
    assert copy.read_bytes() == built
    # Another source, another rewrite version: another copy, never the old one.
    monkeypatch.setattr(detect_onnx, "REWRITE_VERSION", "test")
    detect_onnx.rewritten_graph("centerface-prepared", sha, build)
    assert calls == [1, 1, 1] and len(list(tmp_path.glob("centerface-prepared-*.onnx"))) == 2


def test_a_read_only_cache_still_gives_the_graph(tmp_path: Path, monkeypatch) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    monkeypatch.setenv("ANONYMIZER_MODEL_CACHE", str(blocked / "cache"))
    assert detect_onnx.rewritten_graph("x", "0" * 64, lambda: b"graph") == b"graph"


def test_models_load_from_a_warm_cache_without_onnx_and_name_the_same_graphs(tmp_path: Path) -> None:
    env = dict(os.environ, ANONYMIZER_MODEL_CACHE=str(tmp_path), PYTHONPATH=str(ROOT))
    script = (
        "import json, sys\n"
        "from anonymizer.detect.onnx import CenterFace, YoloOnnx\n"
        "from anonymizer.detect.registry import builtin_weights\n"
        "face = CenterFace(*builtin_weights('centerface'), threads=1)\n"
        "plate = YoloOnnx(*builtin_weights('platedet'), 'platedet', threads=1, precision='int8', shaped=True)\n"
        "full = YoloOnnx(*builtin_weights('platedet'), 'platedet', threads=1, shaped=True)\n"
        "print(json.dumps({'onnx': 'onnx' in sys.modules, 'face': face.info.as_audit(), 'plate': plate.info.as_audit(),\n"
        "                  'full': full.info.as_audit(), 'masks': full.num_masks}))\n"
    )
    runs = [json.loads(subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True).stdout) for _ in range(2)]
    assert runs[0]["onnx"] and not runs[1]["onnx"]  # the first one rewrote (and derived the int8 graph)
    assert runs[0]["face"] == runs[1]["face"] and runs[0]["plate"] == runs[1]["plate"]
    assert runs[1]["plate"]["shaped_graph_sha256"]
    # Full precision: the box-only cut, checked against the full graph once, loaded as it is after.
    assert runs[0]["full"] == runs[1]["full"] and runs[1]["masks"] == 0 and runs[1]["full"]["shaped_graph_sha256"]
    # Another cache (this process's) holds the same bytes: the copy is the rewrite, not a variant.
    assert CenterFace(*builtin_weights("centerface"), threads=1).info.as_audit() == runs[1]["face"]
    plate = YoloOnnx(*builtin_weights("platedet"), "platedet", threads=1, precision="int8", shaped=True)
    assert plate.info.as_audit() == runs[1]["plate"]


def rewrite_code_digest() -> str:
    """The code the cached rewrites' bytes depend on, and its constants."""
    from anonymizer.detect import yolo_shape

    parts = [
        inspect.getsource(f)
        for f in (
            detect_onnx.prepare_centerface_model,
            detect_onnx._prepare_centerface_bytes,
            detect_onnx.boxes_only,
            YoloOnnx._cut_to_boxes,
            YoloOnnx._shaped_graph,
            yolo_shape,
        )
    ]
    parts += [repr(detect_onnx.SHAPED_HW), repr(detect_onnx.MASK_COEFFICIENTS)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


# The rewrites' code as of REWRITE_VERSION "1". A change to it must bump REWRITE_VERSION (or a
# cache kept across an upgrade serves the old rewrite), then this pin.
REWRITE_CODE = {"1": "36b3fb1d5542c263da4b75e6f9e5b11f665aadfb1446cf0a1a818ecb0ba7b6b9"}


def test_a_change_to_the_rewrite_code_bumps_its_version() -> None:
    assert REWRITE_CODE.get(detect_onnx.REWRITE_VERSION) == rewrite_code_digest(), (
        "the graph rewrites changed: bump anonymizer.detect.onnx.REWRITE_VERSION and pin the new digest here"
    )


def test_a_copy_is_named_by_its_source_and_checked_against_it(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("ANONYMIZER_MODEL_CACHE", str(tmp_path))
    made = []

    def build() -> bytes:
        made.append(1)
        return b"graph %d" % len(made)

    assert detect_onnx.rewritten_graph("x", "a" * 64, build) == b"graph 1"
    assert detect_onnx.rewritten_graph("x", "b" * 64, build) == b"graph 2"  # another source: its own copy
    assert detect_onnx.rewritten_graph("x", "a" * 64, build) == b"graph 1" and len(made) == 2
    # A sidecar naming another source (a 16-digit name shared by chance) is not trusted.
    (meta,) = [m for m in tmp_path.glob("x-aaaa*.json")]
    meta.write_text(json.dumps(json.loads(meta.read_text()) | {"source_sha256": "a" * 63 + "f"}))
    assert detect_onnx.rewritten_graph("x", "a" * 64, build) == b"graph 3"


def test_the_box_only_cut_is_checked_again_under_another_onnxruntime(tmp_path: Path, monkeypatch) -> None:
    import onnxruntime

    monkeypatch.setenv("ANONYMIZER_MODEL_CACHE", str(tmp_path))
    path, licence = builtin_weights("platedet")
    YoloOnnx(path, licence, "platedet", threads=1)
    (first,) = tmp_path.glob("platedet-boxes-*.onnx")
    assert f"-ort{onnxruntime.__version__}" in first.name
    monkeypatch.setattr(onnxruntime, "__version__", "0.0.0-other")
    assert YoloOnnx(path, licence, "platedet", threads=1).num_masks == 0
    assert len(list(tmp_path.glob("platedet-boxes-*.onnx"))) == 2
