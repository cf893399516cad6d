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
    .venv/bin/python bench/rss.py --durations 60 600 3600 --fps 5 1 0.5  # one rate per clip
    .venv/bin/python bench/rss.py --durations 60 --fps 4 --phases        # where the peak is
    .venv/bin/python bench/rss.py --size 1280x720 --durations 30 60 --fps 10  # cheap: N and 2N frames

``--phases`` runs the same engine call in a child of this script that labels RSS (polled every
20 ms) by phase, with the kernel's high-water mark at each phase's end: detection alone,
detection beside masking and encoding, masking alone (the last window), and the end (encoder
flush, audio remux, verification decode, SHA-256, summary). Issue 25 read a flat polled RSS at
50 % and 90 % of a run as "a peak at the end": the phases show where it is (docs/daemon.md,
"Memory").

Clips shorter than the tracker's look-ahead window (printed; 225 frames for cctv-fast) are
settled only at their end: their detection decode has finished before masking and encoding
start, so they peak lower than any longer clip, whose decoders and encoder all run at once
(issue 25: the "1 minute against 10 minutes" growth at 2 fps was that, 120 frames against a
225-frame window). Flatness is judged over the clips longer than the window. A clip just past it
runs its stages side by side for its last frames only, where a full face pass (the peak's other
part: a gating refresh comes every 50 frames) may not fall: 240 frames peaked at 1,365 MB, 300 or
more at 1,633-1,735 MB (docs/daemon.md, "Memory"); give each clip some 75 frames past the window.
``--profile bench/rss-pipeline.yaml`` measures the pipeline without the cost of inference.
``--size`` makes the same clip at another frame size (laid out in proportion): 4K runs of
``cctv-fast`` take about 1.5 s a frame on 2 busy cores, a 720p one about 0.3 s, so a retention that
grows with the frame count shows much sooner there (issue 25: 300 and 600 frames at 1280x720 peak
at 624 and 627 MB; nothing accumulates per frame).

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
from fractions import Fraction
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


def _even(v: float, step: int = 4) -> int:
    return max(step, int(round(v / step)) * step)


def make_clip(path: Path, seconds: float, fps: float, size: tuple[int, int] = SIZE) -> Path:
    """Write an H.264 clip of ``seconds`` (4K unless ``size``): a still scene and one small crowd
    moving across it, laid out in proportion to the 4K layout at any size."""
    w, h = size
    k = w / SIZE[0]
    base = np.array(Image.open(PLATE_PHOTO).convert("RGB").resize((w, h)))
    ix, iy, iw, ih = _even(2700 * k), _even(80 * k), _even(1120 * k), _even(800 * k)
    base[iy : iy + ih, ix : ix + iw] = np.array(Image.open(FACES_PHOTO).convert("RGB").resize((iw, ih)))
    sw, sh, top = _even(400 * k), _even(224 * k), _even(1400 * k)  # multiples of 4: chroma planes split evenly
    sprite = _planes(_yuv(np.array(Image.open(WALKER_PHOTO).convert("RGB").resize((sw, sh)))))
    base_yuv = _yuv(base)
    yuv = base_yuv.copy()
    dst, background = _planes(yuv), _planes(base_yuv)
    n_frames = max(1, int(round(seconds * fps)))
    last = None
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1000))
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "28"}
        stream.codec_context.gop_size = max(10, round(2 * fps))
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


PHASES = ("detect only", "detect + mask", "mask only", "end")


def _vm_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def child_phases(clip: Path, out_dir: Path, profile: str | None) -> int:
    """``--phases``' child: the engine on ``clip`` as ``anonymizer process`` runs it, with RSS
    polled every 20 ms and labelled by phase, and the kernel's high-water mark at each phase's end.

    Phases: "detect only" (until the first frame is encoded; a clip within the tracker's window
    stays here until its detection is done), "detect + mask" (detection, masking and encoding side
    by side), "mask only" (the last window after detection ended), "end" (from the encoder's flush
    on: audio remux, verification, SHA-256, the summary). Prints one JSON line.
    """
    from anonymizer.media.memory import return_large_buffers

    return_large_buffers()  # as the CLI does, before any frame is decoded
    from anonymizer import pipeline
    from anonymizer.config import BUILTIN_PROFILES_DIR, load_profile
    from anonymizer.media import video

    phase = [PHASES[0]]
    stats = {name: {"polled_peak_mb": 0, "hwm_at_end_mb": 0, "seconds": 0.0} for name in PHASES}
    started = [time.perf_counter()]
    lock = threading.Lock()

    def enter(name: str) -> None:
        with lock:
            if PHASES.index(name) <= PHASES.index(phase[0]):
                return
            now = time.perf_counter()
            stats[phase[0]]["hwm_at_end_mb"] = round(_vm_kb("VmHWM") / 1024)
            stats[phase[0]]["seconds"] = round(now - started[0], 1)
            phase[0], started[0] = name, now

    stop = threading.Event()

    def poll() -> None:
        while not stop.wait(0.02):
            rss = round(_vm_kb("VmRSS") / 1024)
            with lock:
                s = stats[phase[0]]
                s["polled_peak_mb"] = max(s["polled_peak_mb"], rss)

    # Labels only: the writer's first frame and its close mark the phases; nothing else changes.
    write, close = video.VideoWriter.write, video.VideoWriter.close

    last_stage = [""]

    def first_write(self, image, pts) -> None:
        # A clip within the tracker's window is masked only once its detection is done.
        enter("mask only" if last_stage[0] == "mask" else "detect + mask")
        write(self, image, pts)

    def flush(self) -> None:
        enter("end")
        close(self)

    video.VideoWriter.write, video.VideoWriter.close = first_write, flush

    def progress(stage: str, done: int, total: int, **_: object) -> None:
        last_stage[0] = stage
        if stage == "mask" and phase[0] == "detect + mask":
            enter("mask only")  # the engine reports "mask" once detection has finished

    engine = pipeline.Engine(load_profile(profile or BUILTIN_PROFILES_DIR / "default.yaml"))
    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    started[0] = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    result = engine.process(clip, out_dir / clip.name, progress)
    json.dumps(result.summary())
    stop.set()
    poller.join()
    stats[phase[0]]["hwm_at_end_mb"] = round(_vm_kb("VmHWM") / 1024)
    stats[phase[0]]["seconds"] = round(time.perf_counter() - started[0], 1)
    print(json.dumps({"frames": result.frames, "phases": stats}))
    return 0


def measure(clip: Path, out_dir: Path, profile: str | None, *, phases: bool = False) -> dict:
    """Run ``anonymizer process`` (with ``phases``: the same engine call, labelled by phase) on
    ``clip``; return its peak RSS, polled RSS over time and seconds."""
    cmd = [sys.executable, "-m", "anonymizer", "process", str(clip), "--out", str(out_dir), "--overwrite", "--json"]
    if profile:
        cmd += ["--profile", profile]
    if phases:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child-phases", str(clip), str(out_dir), profile or ""]
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
    # Where the peak is (issue 25 read a flat RSS at 50 % and 90 % as "a peak at the end"): the
    # highest polled RSS in the run's last tenth (the encoder's flush, verification, hashing).
    last = [rss for t, rss in samples if t >= 0.9 * seconds]
    return {
        "peak_rss_mb": round(usage.ru_maxrss / 1024),  # Linux reports KiB
        "polled_peak_mb": round(max((rss for _, rss in samples), default=0) / 1024),
        "polled_peak_last_10pct_mb": round(max(last, default=0) / 1024),
        "polled_mb_at": at,
        "seconds": round(seconds, 1),
        "job": stdout.decode(errors="replace").strip().splitlines()[-1:] or [""],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--durations", nargs="+", type=float, default=[60, 600], help="clip lengths in seconds")
    parser.add_argument(
        "--fps", nargs="+", type=float, default=[25.0],
        help="frame rate of the generated clips (lower = cheaper): one for all, or one per duration",
    )
    parser.add_argument("--profile", default=str(ROOT / "profiles" / "cctv-fast.yaml"), help="profile YAML ('' = built-in default)")
    parser.add_argument(
        "--size", default="3840x2160", help="frame size WxH of the generated clips (smaller: cheap runs to find a cause)"
    )
    parser.add_argument("--workdir", type=Path, help="keep the generated clips here and reuse them")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument(
        "--phases", action="store_true",
        help="run the engine in a child of this script that labels RSS by phase: detection alone, detection "
        "beside masking and encoding, masking alone, the end (flush, verification, hash, summary)",
    )
    parser.add_argument("--child-phases", nargs=3, metavar=("CLIP", "OUT", "PROFILE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_phases:
        clip, out, profile = args.child_phases
        return child_phases(Path(clip), Path(out), profile or None)

    work = args.workdir or Path(tempfile.mkdtemp(prefix="anon-rss-"))
    work.mkdir(parents=True, exist_ok=True)
    if len(args.fps) not in (1, len(args.durations)):
        parser.error("--fps takes one rate, or one per duration")
    rates = args.fps * len(args.durations) if len(args.fps) == 1 else args.fps
    try:
        size = tuple(int(v) for v in args.size.lower().split("x"))
        if len(size) != 2 or size[0] % 4 or size[1] % 4:
            raise ValueError
    except ValueError:
        parser.error("--size takes WxH, both multiples of 4 (e.g. 1280x720)")
    label = "4K" if size == SIZE else f"{size[0]}x{size[1]}"
    rows = []
    try:
        for seconds, fps in zip(args.durations, rates):
            name = "4k" if size == SIZE else f"{size[0]}x{size[1]}"
            clip = work / f"rss-{name}-{seconds:g}s-{fps:g}fps.mp4"
            if not clip.is_file():
                t = time.perf_counter()
                make_clip(clip, seconds, fps, size)  # type: ignore[arg-type]
                print(f"made {clip.name} ({clip.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - t:.0f} s", file=sys.stderr, flush=True)
            out_dir = work / "out"
            result = measure(clip, out_dir, args.profile or None, phases=args.phases)
            shutil.rmtree(out_dir, ignore_errors=True)
            frames = max(1, int(round(seconds * fps)))
            rows.append({"duration_s": seconds, "fps": fps, "frames": frames, **result})
            print(f"{seconds:g} s: peak {result['peak_rss_mb']} MB in {result['seconds']} s", file=sys.stderr, flush=True)
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)

    profile = Path(args.profile).stem if args.profile else "default (built-in)"
    window = tracker_window(args.profile or None)
    print(f"profile: {profile}; clips {size[0]}x{size[1]} H.264; cores: {len(os.sched_getaffinity(0))}; "
          f"tracker window {window} frames")
    print("| clip | frames | seconds | frames/s processed | peak RSS (wait4) | polled peak | polled peak, last 10 % "
          "| polled at 10 % / 50 % / 90 % of the run |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        at = " / ".join("-" if v is None else f"{v} MB" for v in r["polled_mb_at"].values())
        print(
            f"| {label} {r['duration_s']:g} s at {r['fps']:g} fps | {r['frames']} | {r['seconds']} | {r['frames'] / r['seconds']:.2f} | "
            f"{r['peak_rss_mb']} MB | {r['polled_peak_mb']} MB | {r['polled_peak_last_10pct_mb']} MB | {at} |"
        )
    phased = [r for r in rows if args.phases and r["job"][0].startswith("{")]
    if phased:
        print()
        print("| clip | " + " | ".join(PHASES) + " |  (polled peak every 20 ms; kernel high-water mark at the phase's end; seconds)")
        print("|---|" + "---|" * len(PHASES))
        for r in phased:
            ph = json.loads(r["job"][0])["phases"]
            cells = [
                f"{ph[n]['polled_peak_mb']} MB (HWM {ph[n]['hwm_at_end_mb']}; {ph[n]['seconds']} s)" if ph[n]["seconds"] else "-"
                for n in PHASES
            ]
            print(f"| {label} {r['duration_s']:g} s at {r['fps']:g} fps | " + " | ".join(cells) + " |")
    under = all(r["peak_rss_mb"] <= LIMIT_MB for r in rows)
    # Clips within one window never run their stages all at once (see the module's docstring).
    peaks = [r["peak_rss_mb"] for r in rows if r["frames"] > window] or [r["peak_rss_mb"] for r in rows]
    # "The same for both": the longest clip may not need more than 10 % (or 100 MB) over the shortest.
    flat = max(peaks) - min(peaks) <= max(100, 0.1 * min(peaks))
    print(f"peak <= {LIMIT_MB} MB: {'met' if under else 'NOT met'}; flat in duration ({min(peaks)}-{max(peaks)} MB): {'met' if flat else 'NOT met'}")
    if args.json:
        args.json.write_text(json.dumps({"profile": profile, "rows": rows, "under_limit": under, "flat": flat}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
