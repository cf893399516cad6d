"""CPU and wall time per onnxruntime call at 1 and 2 intra-op threads, per model and input shape.

Loads the default profile's detectors twice (``detect.threads`` 1 and 2) and calls each session
on a random input of every shape the default's video passes use (the shapes ``bench/cpu_split.py``
lists on the 1080p clips), alternating between the two thread counts, ``--repeats`` rounds; prints
the median process CPU seconds and wall seconds per call. A second thread is worth its CPU only
where it cuts the wall time by more than it adds CPU, and only while a core is idle for it.

    .venv/bin/python bench/ort_threads.py --repeats 7
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from anonymizer.config import load_profile  # noqa: E402
from anonymizer.detect.factory import build_detectors  # noqa: E402

# (class, session attribute, input shape (N, C, H, W)) of the default's video passes on 1080p.
CALLS = [
    ("faces", "session", (1, 3, 1088, 1920)),
    ("faces", "session", (1, 3, 384, 640)),
    ("faces", "session", (1, 3, 256, 224)),
    ("plates", "session", (1, 3, 640, 640)),
    ("plates", "shaped_session", (1, 3, 384, 640)),
]


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", type=Path, default=ROOT / "profiles" / "default.yaml")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    profile = load_profile(args.profile)
    detectors = {}
    for threads in (1, 2):
        built, _, _ = build_detectors(replace(profile.detect, threads=threads))
        detectors[threads] = {name + "s": d.raw for name, d in built.items()}
    rng = np.random.default_rng(0)
    rows = []
    for name, attr, shape in CALLS:
        sessions = {t: getattr(detectors[t][name], attr) for t in (1, 2)}
        feed_name = sessions[1].get_inputs()[0].name
        dtype = np.float16 if "16" in sessions[1].get_inputs()[0].type else np.float32
        x = {feed_name: (rng.random(shape, np.float32) * (255 if name == "faces" else 1)).astype(dtype)}
        for s in sessions.values():
            s.run(None, x)  # first call: allocations, kernels chosen
        times: dict[int, list[tuple[float, float]]] = {1: [], 2: []}
        for _ in range(args.repeats):
            for t, s in sessions.items():
                c, w = cpu_s(), time.perf_counter()
                s.run(None, x)
                times[t].append((cpu_s() - c, time.perf_counter() - w))
        med = {t: (statistics.median(c for c, _ in v), statistics.median(w for _, w in v)) for t, v in times.items()}
        rows.append((name, attr, shape, med))
    print(f"profile {args.profile.name}, {args.repeats} alternating rounds, medians per call\n")
    print(
        "| model | input | 1 thread CPU ms | 1 thread wall ms | 2 threads CPU ms | 2 threads wall ms | CPU 2/1 | wall 2/1 |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, attr, shape, med in rows:
        (c1, w1), (c2, w2) = med[1], med[2]
        label = f"{name}{' (640x384 graph)' if attr == 'shaped_session' else ''}"
        print(
            f"| {label} | {shape[3]}x{shape[2]} | {c1 * 1e3:.0f} | {w1 * 1e3:.0f} | {c2 * 1e3:.0f} | {w2 * 1e3:.0f} | "
            f"{c2 / c1:.2f} | {w2 / w1:.2f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
