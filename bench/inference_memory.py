"""What one CenterFace pass adds to a process's memory, with and without onnxruntime's memory pattern.

Issue 25 item 11: a long 4K clip peaks where a full face pass lands on masking and encoding. For
each setting this runs the product's CenterFace graph (``prepare_centerface``) with the product's
session options except ``enable_mem_pattern``, each in a fresh child process (freed heap pages of
an earlier run would hide a peak), and prints:

- the peak each of three passes of one input shape adds to RSS (the kernel's high-water mark,
  reset through /proc/self/clear_refs before each pass): with the pattern, passes after the first
  allocate the plan's one block;
- RSS after ``--shapes`` passes of distinct input shapes against after the first few: the pattern
  keeps a plan per shape for the session's life (gated crops take a new shape whenever what
  changed moves).

    .venv/bin/python bench/inference_memory.py                      # 1472x1920 (a 1920 px tile), 400 shapes
    .venv/bin/python bench/inference_memory.py --size 480x640 --shapes 100
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = """
import json, sys
from pathlib import Path
import numpy as np
import onnxruntime as ort
from anonymizer.detect.onnx import prepare_centerface
from anonymizer.detect.registry import builtin_weights
from anonymizer.media.memory import return_large_buffers

pattern, h, w, shapes = sys.argv[1] == "on", int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])

def kb(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))

return_large_buffers()  # as the CLI and the daemon run
ort.set_default_logger_severity(3)
options = ort.SessionOptions()
options.intra_op_num_threads = 2
options.add_session_config_entry("session.intra_op.allow_spinning", "0")
options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
options.enable_cpu_mem_arena = False
options.enable_mem_pattern = pattern
path, _ = builtin_weights("centerface")
session = ort.InferenceSession(prepare_centerface(path), sess_options=options, providers=["CPUExecutionProvider"])
blob = np.zeros((1, 3, h, w), np.float32)
peaks = []
for _ in range(3):
    base = kb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")
    session.run(None, {"input.1": blob})
    peaks.append(round((kb("VmHWM") - base) / 1024))
small = lambda i: np.zeros((1, 3, 32 * (2 + i % 20), 32 * (2 + i // 20)), np.float32)
for i in range(10):
    session.run(None, {"input.1": small(i)})
before = kb("VmRSS")
for i in range(10, 10 + shapes):
    session.run(None, {"input.1": small(i)})
print(json.dumps({"peaks_mb": peaks, "shapes_growth_mb": round((kb("VmRSS") - before) / 1024, 1)}))
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="1472x1920", help="HxW of the repeated pass (multiples of 32)")
    parser.add_argument("--shapes", type=int, default=400, help="distinct small input shapes after it")
    args = parser.parse_args(argv)
    h, w = (int(v) for v in args.size.lower().split("x"))
    print(
        f"CenterFace, input {h}x{w}, then {args.shapes} distinct shapes (64-672 x 64-{32 * (2 + (9 + args.shapes) // 20)} px)"
    )
    print("| memory pattern | peak of pass 1 / 2 / 3 | RSS growth over the distinct shapes |")
    print("|---|---|---|")
    for setting in ("on", "off"):
        done = subprocess.run(
            [sys.executable, "-c", CHILD, setting, str(h), str(w), str(args.shapes)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        out = json.loads(done.stdout.strip().splitlines()[-1])
        peaks = " / ".join(f"{p} MB" for p in out["peaks_mb"])
        print(
            f"| {setting}{' (the product: off)' if setting == 'off' else ''} | {peaks} | {out['shapes_growth_mb']} MB |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
