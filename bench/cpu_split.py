"""Where a video job's CPU seconds go: inside the models, and outside them stage by stage.

Runs the engine once on one of bench/speed.py's generated clips with one profile, in this
process, and prints the process CPU seconds of ``Engine.process`` split into:

- ``onnxruntime``: per graph input and shape, the calls, their wall time and the CPU of the
  calling thread inside them, plus the CPU of onnxruntime's own pool threads (created while the
  engine loads its models);
- every stage thread (``anonymizer.stream``: source = first decode's glue, RGB conversion and
  gating block means; detect minus its onnxruntime calls = pre/post-processing; track; mask;
  decode-mask), the main thread (encoding calls, the output's verification decode: split out),
  FFmpeg's decoder threads (``av:*``), the other native threads created while the job runs
  (x264's), OpenCV's pool threads and whatever is left.

Per-thread CPU comes from ``/proc/self/task`` (Linux only), sampled every 100 ms and at the end of
each Python thread, so a native thread that ends between samples loses at most that much; the
sampling thread's own CPU is left out of the process's.

    .venv/bin/python bench/cpu_split.py panned profiles/default.yaml
    .venv/bin/python bench/cpu_split.py fixed profiles/default.yaml --frames 30 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))

CLOCK = os.sysconf("SC_CLK_TCK")


def process_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def thread_cpus() -> dict[int, tuple[str, float]]:
    """{tid: (comm, CPU seconds)} of every live thread of this process."""
    out = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/comm") as f:
                comm = f.read().strip()
            with open(f"/proc/self/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        out[int(tid)] = (comm, (int(fields[11]) + int(fields[12])) / CLOCK)
    return out


class Split:
    """Samples every thread's CPU and remembers which thread was what."""

    def __init__(self) -> None:
        self.last: dict[int, tuple[str, float]] = {}
        self.python: dict[int, str] = {}  # native id -> Python thread name
        self.python_cpu: dict[int, float] = {}  # exact, at the Python thread's end
        self.phase: dict[int, str] = {}  # native id -> when it first appeared
        self.current = "before"
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.ort: dict[tuple[str, tuple[int, ...]], list[float]] = defaultdict(lambda: [0, 0.0, 0.0])
        self.verify = [0.0, 0.0]  # main-thread CPU, process CPU
        self.monitor_tid = 0

    def sample(self) -> None:
        now = thread_cpus()
        with self.lock:
            for tid, v in now.items():
                self.last[tid] = v
                self.phase.setdefault(tid, self.current)

    def start(self) -> None:
        split = self
        original = threading.Thread.run

        def run(thread: threading.Thread) -> None:
            split.python[threading.get_native_id()] = thread.name
            try:
                original(thread)
            finally:
                split.python_cpu[threading.get_native_id()] = time.thread_time()

        threading.Thread.run = run  # type: ignore[method-assign]

        def loop() -> None:
            self.monitor_tid = threading.get_native_id()
            while not self.stop.wait(0.1):
                self.sample()

        threading.Thread(target=loop, name="cpu-split-monitor", daemon=True).start()
        import onnxruntime as ort

        run_original = ort.InferenceSession.run

        def timed_run(session, outputs, feeds, *args, **kwargs):
            wall, cpu = time.perf_counter(), time.thread_time()
            try:
                return run_original(session, outputs, feeds, *args, **kwargs)
            finally:
                name, x = next(iter(feeds.items()))
                entry = split.ort[(name, tuple(x.shape))]
                entry[0] += 1
                entry[1] += time.perf_counter() - wall
                entry[2] += time.thread_time() - cpu

        ort.InferenceSession.run = timed_run  # type: ignore[method-assign]

        import anonymizer.pipeline as pipeline

        verify_original = pipeline.verify_output

        def timed_verify(*args, **kwargs):
            cpu, proc = time.thread_time(), process_cpu()
            try:
                return verify_original(*args, **kwargs)
            finally:
                self.verify[0] += time.thread_time() - cpu
                self.verify[1] += process_cpu() - proc

        pipeline.verify_output = timed_verify  # type: ignore[assignment]


def make_clip(kind: str, work: Path, frames: int) -> Path:
    import speed

    if kind == "panned":
        return speed.make_clip(work / "panned.mp4", frames)
    clip, _ = speed.make_fixed_clip(work / "fixed.mp4", frames, seed=2, use_labels=True)
    return clip


def use_ort_arena() -> None:
    """Every onnxruntime session of this process with its CPU memory arena (the engine turns it
    off to bound memory, anonymizer/detect/onnx.py): what the arena would save in kernel time."""
    import onnxruntime as ort

    original = ort.InferenceSession.__init__

    def init(session, model, sess_options=None, *args, **kwargs):
        if sess_options is not None:
            sess_options.enable_cpu_mem_arena = True
        original(session, model, sess_options, *args, **kwargs)

    ort.InferenceSession.__init__ = init  # type: ignore[method-assign]


def measure(kind: str, profile: Path, frames: int, work: Path, clip: Path | None = None) -> dict:
    import cv2
    import numpy as np

    split = Split()
    split.start()
    clip = clip or make_clip(kind, work, frames)
    # OpenCV's pool threads start with its first parallel call: start them now, so that they
    # are told apart from the encoder's threads (both unnamed native threads).
    cv2.resize(np.zeros((1080, 1920, 3), np.uint8), (960, 540))
    split.sample()
    split.current = "load"
    from anonymizer.config import load_profile
    from anonymizer.pipeline import Engine

    engine = Engine(load_profile(profile))
    split.sample()
    split.current = "job"
    base = dict(split.last)
    for entry in split.ort.values():
        entry[:] = [0, 0.0, 0.0]
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    cpu0, wall0 = process_cpu(), time.perf_counter()
    result = engine.process(clip, work / f"out-{kind}.mp4")
    cpu, wall = process_cpu() - cpu0, time.perf_counter() - wall0
    usage = resource.getrusage(resource.RUSAGE_SELF)
    split.sample()
    split.stop.set()

    def used(tid: int) -> float:
        comm, total = split.last[tid]
        if tid in split.python_cpu and split.phase.get(tid) == "job":
            total = max(total, split.python_cpu[tid])
        return total - (base[tid][1] if tid in base else 0.0)

    groups: dict[str, float] = defaultdict(float)
    for tid, (comm, _) in split.last.items():
        if tid == split.monitor_tid:
            group = "this bench's sampling thread"
            groups[group] += used(tid)
            continue
        name = split.python.get(tid)
        phase = split.phase.get(tid)
        if tid == threading.main_thread().native_id:
            group = "main (encode calls, writer)"
        elif name and name.startswith("stage-"):
            group = name
        elif comm.startswith("av:"):
            group = "FFmpeg decoder threads"
        elif name:
            group = f"other python ({name})"
        elif phase == "load":
            group = "onnxruntime pool threads"
        elif phase == "before":
            group = "OpenCV pool threads"
        else:
            group = "other native (x264)"
        groups[group] += used(tid)
    ort_caller = sum(e[2] for e in split.ort.values())
    if "stage-detect" in groups:
        groups["stage-detect"] -= ort_caller
        groups["stage-detect (outside onnxruntime)"] = groups.pop("stage-detect")
    groups["onnxruntime calls (calling thread)"] = ort_caller
    groups["main (encode calls, writer)"] -= split.verify[0]
    groups["verification decode (main thread)"] = split.verify[0]
    sampler = groups.pop("this bench's sampling thread", 0.0)
    cpu -= sampler
    accounted = sum(groups.values())
    groups["unaccounted (sampling, ended threads)"] = cpu - accounted
    ort_total = ort_caller + groups.get("onnxruntime pool threads", 0.0)
    return {
        "kind": kind,
        "profile": profile.stem,
        "frames": result.frames,
        "wall_s": wall,
        "process_cpu_s": cpu,
        "sampler_cpu_s": sampler,
        # Kernel time, mostly first touches of freshly mapped memory (minor page faults): large
        # onnxruntime tensors are mmapped and unmapped on every call without its arena.
        "kernel_cpu_s": usage.ru_stime - usage0.ru_stime,
        "minor_faults": usage.ru_minflt - usage0.ru_minflt,
        "peak_rss_mb": usage.ru_maxrss / 1024,
        "onnxruntime_cpu_s": ort_total,
        "outside_models_cpu_s": cpu - ort_total,
        "verify_process_cpu_s": split.verify[1],
        "calls": [
            {"input": k[0], "shape": list(k[1]), "n": int(v[0]), "wall_s": v[1], "caller_cpu_s": v[2]}
            for k, v in sorted(split.ort.items(), key=lambda kv: -kv[1][1])
            if v[0]
        ],
        "threads": dict(sorted(groups.items(), key=lambda kv: -kv[1])),
        "stage_seconds": {k: v for k, v in result.timings.items()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=("panned", "fixed"))
    parser.add_argument("profile", type=Path)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--json", type=Path, help="also write the split as JSON here")
    parser.add_argument("--clip", type=Path, help="this clip instead of generating the kind's (A/B runs share one)")
    parser.add_argument(
        "--ort-arena", action="store_true", help="onnxruntime's CPU memory arena on (the engine keeps it off)"
    )
    args = parser.parse_args(argv)
    from anonymizer.media.memory import return_large_buffers

    return_large_buffers()  # the engine runs in this process: set up as the CLI sets up its own
    if args.ort_arena:
        use_ort_arena()
    with tempfile.TemporaryDirectory(prefix="anon-cpu-split-") as tmp:
        r = measure(args.kind, args.profile.resolve(), args.frames, Path(tmp), args.clip)
    print(
        f"{r['kind']} clip, {r['frames']} frames, profile {r['profile']}: wall {r['wall_s']:.2f} s, "
        f"process CPU {r['process_cpu_s']:.2f} s (this bench's sampling thread, {r['sampler_cpu_s']:.2f} s, left out)"
    )
    print(
        f"inside onnxruntime {r['onnxruntime_cpu_s']:.2f} CPU s, outside the models {r['outside_models_cpu_s']:.2f} CPU s "
        f"({100 * r['outside_models_cpu_s'] / r['process_cpu_s']:.0f} %)"
    )
    print(
        f"kernel (system) CPU {r['kernel_cpu_s']:.2f} s, {r['minor_faults']} minor page faults, "
        f"peak RSS {r['peak_rss_mb']:.0f} MB"
    )
    print("\n| onnxruntime input | shape | calls | wall s | calling thread CPU s |\n|---|---|---|---|---|")
    for c in r["calls"]:
        print(
            f"| {c['input']} | {'x'.join(map(str, c['shape']))} | {c['n']} | {c['wall_s']:.2f} | {c['caller_cpu_s']:.2f} |"
        )
    print("\n| thread group | CPU s |\n|---|---|")
    for name, s in r["threads"].items():
        print(f"| {name} | {s:.2f} |")
    print(
        f"\n(verification: {r['verify_process_cpu_s']:.2f} process CPU s, all threads; stage busy seconds: "
        + ", ".join(f"{k} {v:.2f}" for k, v in r["stage_seconds"].items())
        + ")"
    )
    if args.json:
        args.json.write_text(json.dumps(r, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
