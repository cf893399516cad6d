"""Throughput on 1080p clips: plain transcode vs anonymizer profiles vs deface 1.5, side by side.

Runs everything in one go, on the same machine and the same clips, and prints one markdown table
(fps, throughput against deface, time against a plain transcode, the command) with the targets of
issue 12 below it:

(a) a **panned** clip: the default profile (faces + plates) at >= 3x deface's throughput (faces only);
(b) a **fixed-camera** clip (people standing, people walking in, a parked car): default >= 5x deface;
(c) the same fixed clip with ``profiles/cctv-fast.yaml``: at most 4x the time of a plain transcode.

    .venv/bin/python bench/speed.py                                # both clips, 50 frames each
    .venv/bin/python bench/speed.py --frames 150 --fixed-frames 250
    .venv/bin/python bench/speed.py --kinds fixed --no-deface
    .venv/bin/python bench/speed.py --clip my.mp4 --kinds panned   # your own clip instead of the panned one
    .venv/bin/python bench/speed.py --repeats 3                    # each run 3 times, round-robin, fastest counts

The panned clip pans across the bundled plate photo (a car, its plate and two people) with a
crowd photo inset, 1920x1080 H.264 at 30 fps with an AAC track. The fixed clip
(anonymizer/evaluate/fixed_camera.py) looks, without moving, at the same gate photo with the same
crowd standing in it, while crops of the other bundled photos (faces and a truck) walk and drive
through, with sensor noise, slow light changes and a 2 s GOP, 30 fps, no audio. Where
``../shared/eval`` holds the sample photos' labels, the walkers are crops around single labelled
faces; without it, patches of the crowd photos on a grid at face size (same clip for a given seed
and labels either way; the first line says which).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
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

from media_factory import FACES_PHOTO, PLATE_PHOTO, SAMPLES, make_video  # noqa: E402

EVAL_DIR = Path(os.environ.get("ANONYMIZER_EVAL_DIR", ROOT.parent / "shared" / "eval"))
TRUCK_PHOTO = SAMPLES / "plate-12c6cb72-3ea3-49e7-b381-e0cdfc5e8960.jpg"
WALKER_PHOTOS = (SAMPLES / "faces-maksssksksss209.jpg", SAMPLES / "faces-maksssksksss296.jpg")
TRANSCODE = "transcode (PyAV, x264 veryfast, audio copied)"
DEFACE = "deface 1.5 defaults (faces only)"


def make_clip(path: Path, frames: int) -> Path:
    base = np.array(Image.open(PLATE_PHOTO).convert("RGB").resize((2200, 1238)))
    crowd = np.array(Image.open(FACES_PHOTO).convert("RGB").resize((560, 400)))
    base[40:440, 1600:2160] = crowd
    return make_video(path, source=base, frames=frames, size=(1920, 1080), fps=30, audio=True)


def sample_labels(photo: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """The sample's boxes and per-box face flags from ../shared/eval (samples/SOURCES.md), or None."""
    from anonymizer.detections import FACE
    from anonymizer.evaluate.labels import read_label_set

    name = photo.name.split("-", 1)[1]  # faces-maksssksksss110.jpg -> maksssksksss110.jpg
    for set_name in ("faces-masks", "plates-openalpr"):
        if not (EVAL_DIR / set_name / "labels.jsonl").is_file():
            continue
        for label in read_label_set(EVAL_DIR / set_name):
            if Path(label.image).name == name:
                return label.boxes, label.class_id == FACE
    return None


def grid_boxes(wh: tuple[int, int], size_px: int) -> np.ndarray:
    """Stand-in objects without labels: size_px squares three sizes apart, so no crop touches two."""
    w, h = wh
    xs = np.arange(size_px, w - 2 * size_px, 3 * size_px)
    ys = np.arange(size_px, h - 3 * size_px, 4 * size_px)
    return np.array([[x, y, x + size_px, y + size_px] for y in ys for x in xs], np.float32).reshape(-1, 4)


def fixed_scene(use_labels: bool):
    """(background, crossing photos, how the walkers were cut) for the fixed speed clip."""
    from anonymizer.evaluate.fixed_camera import LabelledPhoto

    none = np.zeros((0, 4), np.float32)
    background = np.array(Image.open(PLATE_PHOTO).convert("RGB"))  # 1920x1080: the parked car
    crowd = np.array(Image.open(FACES_PHOTO).convert("RGB").resize((480, 343)))
    background[40:383, 1380:1860] = crowd  # the crowd stands in the scene, as in the panned clip
    # Standing objects need no boxes here: nothing is painted out, the speed clip is not scored.
    bg = LabelledPhoto(background, none, np.zeros(0, bool), none, "gate + crowd")
    others, how = [], "walkers: patches of the sample crowds on a grid at face size (no ../shared/eval labels)"
    for photo, is_face, size in [(p, True, 40) for p in WALKER_PHOTOS] + [(TRUCK_PHOTO, False, 60)]:
        rgb = np.array(Image.open(photo).convert("RGB"))
        labels = sample_labels(photo) if use_labels else None
        if labels is not None:
            boxes, faces = labels
            how = "walkers: crops around single labelled faces and the truck's plate (labels from ../shared/eval)"
        else:
            boxes = grid_boxes((rgb.shape[1], rgb.shape[0]), size)
            faces = np.full(len(boxes), is_face)
        others.append(LabelledPhoto(rgb, boxes, faces, none, photo.name))
    return bg, others, how


def make_fixed_clip(path: Path, frames: int, *, seed: int, use_labels: bool) -> tuple[Path, str]:
    from anonymizer.evaluate import fixed_camera

    bg, others, how = fixed_scene(use_labels)
    plan = fixed_camera.plan_fixed_clip(
        bg, others, seed=seed, n_frames=frames, size_wh=(1920, 1080), fps=30, keep_prob=1.0, motion_prob=0.0
    )
    fixed_camera.synthesize_fixed(bg, others, plan, path, seed=seed)
    kinds = [c.kind for c in plan.crossings if c.keyframes[0][0] < frames]
    return path, f"{how}; {len(kinds)} crossing ({', '.join(kinds)})"


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


def timed(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run: this process's threads plus any child it waited for.

    CPU seconds hardly move with load from other processes (wall time does, a lot, on a shared
    machine), so their ratio is the steadier measure of what a run costs.
    """
    before = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    start = time.perf_counter()
    fn()
    wall = time.perf_counter() - start
    after = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    cpu = sum((a.ru_utime + a.ru_stime) - (b.ru_utime + b.ru_stime) for a, b in zip(after, before))
    return wall, cpu


def run_clip(
    clip: Path, work: Path, tag: str, profiles: list[Path], deface: str | None, repeats: int = 1
) -> tuple[dict[str, dict], int, str]:
    """Time the transcode, each profile and deface on one clip; return (results, frames, size).

    With ``repeats`` > 1 every run is timed that many times, round-robin (all runs once, then all
    again), and the fastest time counts: load from other processes only ever slows a run down, and
    round-robin lets a burst of it hit every run alike instead of deciding one ratio.
    """
    with av.open(str(clip)) as c:
        v = c.streams.video[0]
        n_frames = sum(1 for _ in c.decode(v))
        size = f"{v.width}x{v.height}"
    from anonymizer.config import load_profile
    from anonymizer.pipeline import Engine

    runs: list[tuple[str, dict, object]] = [
        (TRANSCODE, {"command": "bench/speed.py transcode(): PyAV decode, libx264 veryfast crf 20"},
         lambda: transcode(clip, work / f"{tag}-transcode.mp4")),
    ]
    for profile_path in profiles:
        engine = Engine(load_profile(profile_path))
        out = work / f"{tag}-anon-{profile_path.stem}.mp4"
        rel = os.path.relpath(profile_path, ROOT)
        runs.append((
            f"anonymizer {profile_path.stem} (faces + plates)",
            {"command": f"anonymizer process CLIP --out DIR --profile {rel}", "profile": profile_path.stem},
            lambda engine=engine, out=out: engine.process(clip, out),
        ))
    if deface:
        cmd = [deface, str(clip), "-o", str(work / f"{tag}-deface.mp4")]
        runs.append((DEFACE, {"command": "deface CLIP -o OUT"}, lambda: subprocess.run(cmd, check=True, capture_output=True)))
    times: dict[str, list[tuple[float, float]]] = {name: [] for name, _, _ in runs}
    for _ in range(max(1, repeats)):
        for name, _, fn in runs:
            times[name].append(timed(fn))
    results: dict[str, dict] = {}
    for name, info, _ in runs:
        t, cpu = min(w for w, _ in times[name]), min(c for _, c in times[name])
        results[name] = {
            **info, "seconds": t, "fps": n_frames / t, "cpu_seconds": cpu,
            "all_seconds": [round(w, 2) for w, _ in times[name]], "all_cpu_seconds": [round(c, 2) for _, c in times[name]],
        }
    print(f"{tag} clip: {size}, {n_frames} frames", file=sys.stderr, flush=True)
    return results, n_frames, size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kinds", nargs="+", choices=("panned", "fixed"), default=["panned", "fixed"])
    parser.add_argument("--clip", type=Path, help="a video to use instead of the generated panned clip")
    parser.add_argument("--frames", type=int, default=50, help="length of the generated panned clip")
    parser.add_argument("--fixed-frames", type=int, default=50, help="length of the generated fixed-camera clip")
    parser.add_argument("--seed", type=int, default=2, help="seed of the fixed-camera clip (2: a walker and a car come in)")
    parser.add_argument("--no-eval-labels", action="store_true", help="cut walkers on a grid even where ../shared/eval is present")
    parser.add_argument("--profiles", nargs="+", type=Path,
                        default=[ROOT / "profiles" / "default.yaml", ROOT / "profiles" / "cctv-fast.yaml"])
    parser.add_argument("--no-deface", action="store_true")
    parser.add_argument("--repeats", type=int, default=1, help="time every run this many times, round-robin; the fastest counts")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    # The engine runs in this process: set it up as `anonymizer process` and the daemon set up
    # theirs (anonymizer.cli.main), or the figures are of a process the product never runs.
    # Before 2026-12-07 this line was missing, and the CLI's allocator setting cost it a third
    # more CPU than the figures here showed (docs/benchmarks.md, "Page faults").
    from anonymizer.media.memory import return_large_buffers

    return_large_buffers()

    deface = None
    if not args.no_deface:
        deface = shutil.which("deface") or str(Path(sys.executable).parent / "deface")
    command = " ".join([".venv/bin/python bench/speed.py", *map(shlex.quote, sys.argv[1:] if argv is None else argv)])
    print(f"command: {command}\ncores: {len(os.sched_getaffinity(0))}")
    clips: dict[str, dict] = {}
    work = Path(tempfile.mkdtemp(prefix="anon-bench-"))
    try:
        for kind in args.kinds:
            if kind == "panned":
                clip = args.clip or make_clip(work / "panned.mp4", args.frames)
                note = str(args.clip) if args.clip else "pan over the gate photo with a crowd inset, AAC audio"
            else:
                clip, note = make_fixed_clip(work / "fixed.mp4", args.fixed_frames, seed=args.seed, use_labels=not args.no_eval_labels)
            print(f"{kind} clip: {note}")
            results, n_frames, size = run_clip(clip, work, kind, args.profiles, deface, args.repeats)
            clips[kind] = {"size": size, "frames": n_frames, "note": note, "results": results}
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print()
    print("| clip | run | frames | seconds | fps | throughput vs deface | time vs plain transcode | CPU s | CPU vs deface | CPU vs transcode | command |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for kind, clip in clips.items():
        base = clip["results"][TRANSCODE]
        deface_r = clip["results"].get(DEFACE)
        for name, r in clip["results"].items():
            vs_deface = f"{r['fps'] / deface_r['fps']:.2f}x" if deface_r else "-"
            cpu_deface = f"{deface_r['cpu_seconds'] / r['cpu_seconds']:.2f}x" if deface_r else "-"
            print(
                f"| {kind} {clip['size']} | {name} | {clip['frames']} | {r['seconds']:.1f} | {r['fps']:.2f} | "
                f"{vs_deface} | {r['seconds'] / base['seconds']:.1f}x | {r['cpu_seconds']:.1f} | {cpu_deface} | "
                f"{r['cpu_seconds'] / base['cpu_seconds']:.1f}x | `{r['command']}` |"
            )
    print("(CPU vs deface: deface's CPU seconds over the run's, i.e. how many times less compute it needs)")
    targets = []

    def ratio(kind: str, profile: str, against: str) -> float | None:
        results = clips.get(kind, {}).get("results", {})
        mine = next((r for r in results.values() if r.get("profile") == profile), None)
        other = results.get(against)
        if mine is None or other is None:
            return None
        return mine["fps"] / other["fps"] if against == DEFACE else mine["seconds"] / other["seconds"]

    def cpu_ratio(kind: str, profile: str, against: str) -> float | None:
        results = clips.get(kind, {}).get("results", {})
        mine = next((r for r in results.values() if r.get("profile") == profile), None)
        other = results.get(against)
        if mine is None or other is None:
            return None
        return other["cpu_seconds"] / mine["cpu_seconds"] if against == DEFACE else mine["cpu_seconds"] / other["cpu_seconds"]

    for label, kind, profile, against, goal, higher in [
        ("(a) panned 1080p, default vs deface, throughput", "panned", "default", DEFACE, 3.0, True),
        ("(b) fixed-camera 1080p, default vs deface, throughput", "fixed", "default", DEFACE, 5.0, True),
        ("(c) fixed-camera 1080p, cctv-fast vs plain transcode, time", "fixed", "cctv-fast", TRANSCODE, 4.0, False),
    ]:
        value = ratio(kind, profile, against)
        if value is None:
            continue
        met = value >= goal if higher else value <= goal
        cpu = cpu_ratio(kind, profile, against)
        targets.append({"target": label, "value": value, "cpu_value": cpu, "goal": goal, "met": met})
        print(f"{label}: {value:.2f}x (target {'>=' if higher else '<='} {goal:g}x) {'met' if met else 'NOT met'}; "
              f"in CPU seconds {cpu:.2f}x")
    if args.json:
        args.json.write_text(json.dumps({"command": command, "clips": clips, "targets": targets}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
