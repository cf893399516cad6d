"""Per-call time of the plate model on a 16:9 frame: square 640x640 letterbox vs the 640x384 graph.

Interleaved calls on the shipped 1920x1080 plate photo (the dense pass of a 1080p frame), at full
precision (the shipped fp16 graph, boxes only) and int8, the median of ``--repeats`` rounds; both
graphs run in the same process on the same threads, so only the ratios travel between machines.

    .venv/bin/python bench/plate_calls.py --repeats 15 --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from media_factory import PLATE_PHOTO  # noqa: E402

from anonymizer.detect.onnx import YoloOnnx  # noqa: E402
from anonymizer.detect.registry import builtin_weights  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    rgb = np.array(Image.open(PLATE_PHOTO).convert("RGB"))
    path, licence = builtin_weights("platedet")
    models = {
        p: YoloOnnx(path, licence, "platedet", threads=args.threads, precision=p, shaped=True) for p in ("full", "int8")
    }
    runs = {(p, s): [] for p in models for s in (False, True)}
    for p, s in runs:  # warm-up
        models[p](rgb, 0.05, shaped=s)
    for _ in range(args.repeats):
        for (p, s), times in runs.items():
            t = time.perf_counter()
            models[p](rgb, 0.05, shaped=s)
            times.append(time.perf_counter() - t)
    base = statistics.median(runs[("full", False)])
    print(
        f"| precision | input | median ms per call ({rgb.shape[1]}x{rgb.shape[0]} frame, {args.threads} threads) | vs full 640x640 |"
    )
    print("|---|---|---|---|")
    for (p, s), times in runs.items():
        med = statistics.median(times)
        print(f"| {p} | {'640x384' if s else '640x640'} | {1000 * med:.1f} | {med / base:.2f} |")
    for p in models:
        square, shaped = statistics.median(runs[(p, False)]), statistics.median(runs[(p, True)])
        print(f"{p}: 640x384 takes {shaped / square:.2f}x the time of 640x640")
    return 0


if __name__ == "__main__":
    sys.exit(main())
