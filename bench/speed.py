"""Throughput on one 1080p clip with audio: plain transcode vs anonymizer profiles vs deface 1.5.

Runs everything in one go, on the same machine and the same clip, and prints frames per second
and the two ratios the product promises: anonymizer / deface throughput (goal >= 3x, with plates
hidden too, while deface hides faces only) and anonymizer time / plain transcode time (goal <= 2x).

    .venv/bin/python bench/speed.py                       # generated 1080p clip, 150 frames
    .venv/bin/python bench/speed.py --clip my.mp4 --profiles profiles/cctv-fast.yaml

The generated clip pans across the bundled plate photo (a car, its plate and two people) with a
crowd photo inset, 1920x1080 H.264 at 30 fps with an AAC track.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from media_factory import FACES_PHOTO, PLATE_PHOTO, make_video  # noqa: E402


def make_clip(path: Path, frames: int) -> Path:
    base = np.array(Image.open(PLATE_PHOTO).convert("RGB").resize((2200, 1238)))
    crowd = np.array(Image.open(FACES_PHOTO).convert("RGB").resize((560, 400)))
    base[40:440, 1600:2160] = crowd
    return make_video(path, source=base, frames=frames, size=(1920, 1080), fps=30, audio=True)


def transcode(src: Path, dst: Path) -> None:
    """What any re-encode costs: decode, encode x264 veryfast crf 20, audio copied."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        vin = inp.streams.video[0]
        vin.thread_type = "AUTO"
        vout = out.add_stream("libx264", rate=vin.average_rate)
        vout.width, vout.height, vout.pix_fmt = vin.width, vin.height, "yuv420p"
        vout.options = {"crf": "20", "preset": "veryfast"}
        vout.time_base = vout.codec_context.time_base = vin.time_base
        aout = {s.index: out.add_stream_from_template(s) for s in inp.streams.audio}
        for packet in inp.demux():
            if packet.stream.type == "video":
                for frame in packet.decode():
                    frame.pict_type = av.video.frame.PictureType.NONE
                    for p in vout.encode(frame):
                        out.mux(p)
            elif packet.stream.index in aout and packet.size:
                packet.stream = aout[packet.stream.index]
                out.mux(packet)
        for p in vout.encode(None):
            out.mux(p)


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clip", type=Path, help="a video to use instead of the generated 1080p clip")
    parser.add_argument("--frames", type=int, default=150, help="length of the generated clip")
    parser.add_argument("--profiles", nargs="+", type=Path,
                        default=[ROOT / "profiles" / "cctv-fast.yaml", ROOT / "profiles" / "default.yaml"])
    parser.add_argument("--no-deface", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args()

    from anonymizer.config import load_profile
    from anonymizer.pipeline import Engine

    work = Path(tempfile.mkdtemp(prefix="anon-bench-"))
    try:
        clip = args.clip or make_clip(work / "clip.mp4", args.frames)
        with av.open(str(clip)) as c:
            v = c.streams.video[0]
            n_frames = sum(1 for _ in c.decode(v))
            size = f"{v.width}x{v.height}"
        print(f"clip: {size}, {n_frames} frames, cores: {len(os.sched_getaffinity(0))}")
        results: dict[str, dict] = {}

        t = timed(lambda: transcode(clip, work / "transcode.mp4"))
        results["transcode (PyAV, x264 veryfast, audio copied)"] = {"seconds": t, "fps": n_frames / t}

        for profile_path in args.profiles:
            engine = Engine(load_profile(profile_path))
            out = work / f"anon-{profile_path.stem}.mp4"
            t = timed(lambda: engine.process(clip, out))
            results[f"anonymizer {profile_path.stem} (faces + plates)"] = {"seconds": t, "fps": n_frames / t}

        if not args.no_deface:
            deface = shutil.which("deface") or str(Path(sys.executable).parent / "deface")
            cmd = [deface, str(clip), "-o", str(work / "deface.mp4")]
            t = timed(lambda: subprocess.run(cmd, check=True, capture_output=True))
            results["deface 1.5 defaults (faces only)"] = {"seconds": t, "fps": n_frames / t}
    finally:
        shutil.rmtree(work, ignore_errors=True)

    width = max(map(len, results))
    print(f"{'run':<{width}}  {'seconds':>8}  {'fps':>7}")
    for name, r in results.items():
        print(f"{name:<{width}}  {r['seconds']:8.1f}  {r['fps']:7.2f}")
    base = results["transcode (PyAV, x264 veryfast, audio copied)"]["seconds"]
    deface_r = results.get("deface 1.5 defaults (faces only)")
    for name, r in results.items():
        if name.startswith("anonymizer"):
            line = f"{name}: {r['seconds'] / base:.2f}x transcode time (goal <= 2)"
            if deface_r:
                line += f", {r['fps'] / deface_r['fps']:.2f}x deface throughput (goal >= 3)"
            print(line)
    if args.json:
        args.json.write_text(json.dumps({"clip": size, "frames": n_frames, "results": results}, indent=2))


if __name__ == "__main__":
    main()
