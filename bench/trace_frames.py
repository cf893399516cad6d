"""What Python holds while a video job runs, at two points of it: does anything pile up per frame?

Issue 25 item 11. Runs the engine on a clip (``bench/rss.py`` makes one: ``--workdir`` keeps it)
with tracemalloc on, takes a snapshot when the ``--at`` frames have been written (pick both in
the stretch where detection, masking and encoding run side by side: past the tracker's window and
before detection ends) and prints traced memory and RSS at each, then the allocation sites that
grew most between the first and the last. Python objects and numpy arrays only: FFmpeg, x264 and
onnxruntime allocate outside tracemalloc's view (``bench/rss.py`` and ``bench/inference_memory.py``
measure those). Slow: tracemalloc costs several times the job's own time.

    .venv/bin/python bench/rss.py --size 640x360 --durations 60 --fps 10 --workdir /tmp/rss
    .venv/bin/python bench/trace_frames.py /tmp/rss/rss-640x360-60s-10fps.mp4 --at 100 300
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _rss_mb() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) // 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("clip", type=Path)
    parser.add_argument("--profile", default=str(ROOT / "profiles" / "cctv-fast.yaml"))
    parser.add_argument("--at", nargs="+", type=int, default=[100, 300], help="frames written at each snapshot")
    parser.add_argument("--top", type=int, default=8, help="allocation sites to show")
    args = parser.parse_args(argv)

    from anonymizer.media.memory import return_large_buffers

    return_large_buffers()  # as the CLI does
    from anonymizer import pipeline
    from anonymizer.config import load_profile
    from anonymizer.media import video

    snapshots: dict[int, tracemalloc.Snapshot] = {}
    written = [0]
    write = video.VideoWriter.write

    def counted(self, image, pts) -> None:
        write(self, image, pts)
        written[0] += 1
        if written[0] in args.at:
            gc.collect()
            traced = tracemalloc.get_traced_memory()[0]
            print(f"{written[0]} frames written: traced {traced / 1e6:.1f} MB, RSS {_rss_mb()} MB", flush=True)
            snapshots[written[0]] = tracemalloc.take_snapshot()

    video.VideoWriter.write = counted
    engine = pipeline.Engine(load_profile(args.profile))
    tracemalloc.start(8)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        result = engine.process(args.clip, Path(out) / args.clip.name)
    tracemalloc.stop()
    print(f"{result.frames} frames in {time.perf_counter() - started:.0f} s")
    if len(snapshots) < 2:
        print("fewer than two snapshots: --at beyond the clip's frames")
        return 1
    first, last = min(snapshots), max(snapshots)
    grown = [d for d in snapshots[last].compare_to(snapshots[first], "traceback") if d.size_diff > 0]
    grown.sort(key=lambda d: d.size_diff, reverse=True)
    print(f"allocation sites that grew from {first} to {last} frames written (largest first):")
    for d in grown[: args.top]:
        print(f"  +{d.size_diff / 1e3:.1f} kB in {d.count_diff:+d} blocks at {d.traceback.format()[-2].strip()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
