"""Peak memory of ``anonymizer process`` on long 4K clips: it must stay flat in the clip's duration.

Target (issue 12): at most 2 GB peak RSS on a 4K clip of 1 minute and of 10 minutes, and the same
for both (per-frame state for a 6-hour clip must never be held at once). For each duration the
bench generates a 3840x2160 H.264 clip, runs ``python -m anonymizer process`` on it as a child
process and reports the child's peak RSS from ``os.wait4`` (the kernel's high-water mark, which
a poll can miss) beside RSS polled from /proc every 0.2 s, with the polled RSS at 10 %, 50 % and 90 %
of the run: a footprint that grows with the clip shows there long before it reaches 2 GB.

    .venv/bin/python bench/rss.py                                        # 60 s and 600 s, 25 fps, cctv-fast
    .venv/bin/python bench/rss.py --fps 5 --profile profiles/default.yaml
    .venv/bin/python bench/rss.py --durations 2 4 --fps 2                # smoke test
    .venv/bin/python bench/rss.py --workdir /tmp/rss                     # keep the clips, reuse them next time

Clips shorter than the tracker's look-ahead window (printed; 225 frames for cctv-fast) are
settled only at their end: their detection decode has finished before masking and encoding
start, so they peak lower than any longer clip, whose decoders and encoder all run at once
(issue 25: the "1 minute against 10 minutes" growth at 2 fps was that, 120 frames against a
225-frame window). Flatness is judged over the clips longer than the window.
``--profile bench/rss-pipeline.yaml`` measures the pipeline without the cost of inference.

The clip is cheap to make, so that 10 minutes of 4K can be generated on 2 cores: the gate photo
with the crowd inset (about 50 faces and a plate) stands still, and one crop of another crowd
moves back and forth across it, encoded straight from YUV with x264 ``ultrafast``. Every face is
therefore on screen for the whole clip, the case where tracks and per-frame records pile up.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import av
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from media_factory import FACES_PHOTO, PLATE_PHOTO, SAMPLES  # noqa: E402

SIZE = (3840, 2160)
LIMIT_MB = 2048
WALKER_PHOTO = SAMPLES / "faces-maksssksksss296.jpg"


def _yuv(rgb: np.ndarray) -> np.ndarray:
    """RGB (h, w, 3) -> the (h * 3 / 2, w) yuv420p array PyAV takes, via PyAV's own converter."""
    return av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24").reformat(format="yuv420p").to_ndarray()


def _planes(yuv: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Views of the Y, U and V planes of a (h * 3 / 2, w) yuv420p array (U and V: h/2 x w/2 each)."""
    h = yuv.shape[0] * 2 // 3
    q = h // 4
    return yuv[:h], yuv[h : h + q].reshape(h // 2, -1), yuv[h + q : h + 2 * q].reshape(h // 2, -1)


def make_clip(path: Path, seconds: float, fps: int) -> Path:
    """Write a 4K H.264 clip of ``seconds``: a still scene and one small crowd moving across it."""
    w, h = SIZE
    base = np.array(Image.open(PLATE_PHOTO).convert("RGB").resize((w, h)))
    base[80:880, 2700:3820] = np.array(Image.open(FACES_PHOTO).convert("RGB").resize((1120, 800)))
    sw, sh, top = 400, 224, 1400  # multiples of 4, so that the chroma planes split evenly
    sprite = _planes(_yuv(np.array(Image.open(WALKER_PHOTO).convert("RGB").resize((sw, sh)))))
    base_yuv = _yuv(base)
    yuv = base_yuv.copy()
    dst, background = _planes(yuv), _planes(base_yuv)
    n_frames = max(1, int(round(seconds * fps)))
    last = None
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "28"}
        stream.codec_context.gop_size = 2 * fps
        for i in range(n_frames):
            # Back and forth across the frame every 20 s, on even pixels so that chroma lines up.
            phase = (i / fps / 10.0) % 2
            x = int((w - sw) * (phase if phase < 1 else 2 - phase)) & ~1
            for k, (d, b, s) in enumerate(zip(dst, background, sprite)):
                f = 1 if k == 0 else 2  # chroma planes are half size
                if last is not None:  # put the background back where the crowd was
                    d[top // f : (top + sh) // f, last // f : (last + sw) // f] = b[top // f : (top + sh) // f, last // f : (last + sw) // f]
                d[top // f : (top + sh) // f, x // f : (x + sw) // f] = s[: sh // f, : sw // f]
            last = x
            frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def _tree_rss_kb(pid: int) -> int:
    """RSS of a process and its descendants in KiB (0 once it has gone)."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/status") as f:
                total += next((int(line.split()[1]) for line in f if line.startswith("VmRSS:")), 0)
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return total


def tracker_window(profile: str | None) -> int:
    """Frames the tracker holds back at most with this profile (chunk plus margin)."""
    from anonymizer.config import BUILTIN_PROFILES_DIR, load_profile
    from anonymizer.detections import CLASS_IDS
    from anonymizer.track.window import ClassTrack, window_margin

    p = load_profile(profile or BUILTIN_PROFILES_DIR / "default.yaml")
    specs = {"face": p.detect.faces, "plate": p.detect.plates}
    classes = {
        name: ClassTrack(s.every_n_frames * s.video_full_every, None, s.every_n_frames)
        for name, s in specs.items()
        if s.enabled and name in CLASS_IDS
    }
    return 5 * window_margin(p.track, classes)  # WindowTracker: chunk = 4 margins, plus one


def measure(clip: Path, out_dir: Path, profile: str | None) -> dict:
    """Run ``anonymizer process`` on ``clip``; return its peak RSS, polled RSS over time and seconds."""
    cmd = [sys.executable, "-m", "anonymizer", "process", str(clip), "--out", str(out_dir), "--overwrite", "--json"]
    if profile:
        cmd += ["--profile", profile]
    samples: list[tuple[float, int]] = []
    done = threading.Event()
    # The child's output goes to files: a pipe left unread while waiting could fill and stall it.
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=err)

        def poll() -> None:
            while not done.wait(0.2):
                rss = _tree_rss_kb(proc.pid)
                if rss:  # 0 once it has exited, before it is reaped
                    samples.append((time.perf_counter() - start, rss))

        poller = threading.Thread(target=poll, name="rss-poll", daemon=True)
        poller.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)  # this child's own high-water mark, not the max over all children
            proc.returncode = os.waitstatus_to_exitcode(status)
        finally:
            done.set()
            poller.join()
        seconds = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode != 0:
        raise SystemExit(f"anonymizer process failed ({proc.returncode}): {stderr.decode(errors='replace')[-2000:]}")
    at = {}
    for share in (0.1, 0.5, 0.9):
        kb = [rss for t, rss in samples if t >= share * seconds]
        at[f"{int(share * 100)}%"] = round(kb[0] / 1024) if kb else None
    return {
        "peak_rss_mb": round(usage.ru_maxrss / 1024),  # Linux reports KiB
        "polled_peak_mb": round(max((rss for _, rss in samples), default=0) / 1024),
        "polled_mb_at": at,
        "seconds": round(seconds, 1),
        "job": stdout.decode(errors="replace").strip().splitlines()[-1:] or [""],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--durations", nargs="+", type=float, default=[60, 600], help="clip lengths in seconds")
    parser.add_argument("--fps", type=int, default=25, help="frame rate of the generated clips (lower = cheaper)")
    parser.add_argument("--profile", default=str(ROOT / "profiles" / "cctv-fast.yaml"), help="profile YAML ('' = built-in default)")
    parser.add_argument("--workdir", type=Path, help="keep the generated clips here and reuse them")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)

    work = args.workdir or Path(tempfile.mkdtemp(prefix="anon-rss-"))
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        for seconds in args.durations:
            clip = work / f"rss-4k-{seconds:g}s-{args.fps}fps.mp4"
            if not clip.is_file():
                t = time.perf_counter()
                make_clip(clip, seconds, args.fps)
                print(f"made {clip.name} ({clip.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - t:.0f} s", file=sys.stderr, flush=True)
            out_dir = work / "out"
            result = measure(clip, out_dir, args.profile or None)
            shutil.rmtree(out_dir, ignore_errors=True)
            frames = max(1, int(round(seconds * args.fps)))
            rows.append({"duration_s": seconds, "frames": frames, **result})
            print(f"{seconds:g} s: peak {result['peak_rss_mb']} MB in {result['seconds']} s", file=sys.stderr, flush=True)
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)

    profile = Path(args.profile).stem if args.profile else "default (built-in)"
    window = tracker_window(args.profile or None)
    print(f"profile: {profile}; clips 3840x2160 H.264 at {args.fps} fps; cores: {len(os.sched_getaffinity(0))}; "
          f"tracker window {window} frames")
    print("| clip | frames | seconds | fps | peak RSS (wait4) | polled peak | polled at 10 % / 50 % / 90 % of the run |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        at = " / ".join("-" if v is None else f"{v} MB" for v in r["polled_mb_at"].values())
        print(
            f"| 4K {r['duration_s']:g} s | {r['frames']} | {r['seconds']} | {r['frames'] / r['seconds']:.2f} | "
            f"{r['peak_rss_mb']} MB | {r['polled_peak_mb']} MB | {at} |"
        )
    under = all(r["peak_rss_mb"] <= LIMIT_MB for r in rows)
    # Clips within one window never run their stages all at once (see the module's docstring).
    peaks = [r["peak_rss_mb"] for r in rows if r["frames"] > window] or [r["peak_rss_mb"] for r in rows]
    # "The same for both": the longest clip may not need more than 10 % (or 100 MB) over the shortest.
    flat = max(peaks) - min(peaks) <= max(100, 0.1 * min(peaks))
    print(f"peak <= {LIMIT_MB} MB: {'met' if under else 'NOT met'}; flat in duration ({min(peaks)}-{max(peaks)} MB): {'met' if flat else 'NOT met'}")
    if args.json:
        args.json.write_text(json.dumps({"profile": profile, "fps": args.fps, "rows": rows, "under_limit": under, "flat": flat}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
