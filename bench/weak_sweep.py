"""Replay the tracker on recorded clips with other weak-track rules: a quick proxy for tuning.

``bench/eval_weak.py --record FILE`` keeps every clip's tracker input (what the detectors found,
per class and frame) and truth. This replays the pipeline's tracker (``WindowTracker`` with the
profile's classes, as ``Engine`` builds them) with the rules off and with each variant, pads the
boxes as the engine does (``Engine.regions``), and counts per variant:

* object-frames newly covered (at least ``COVER`` of the true box inside one padded region, which
  the tracker without the rules did not give), and those it no longer covers (must be 0);
* the pixels of new regions outside every true box (grown as the bench grows them), per frame, a
  proxy of the collateral the rules add (the bench's own collateral counts changed pixels).

The bench (``eval_weak.py``) decides; this only narrows the variants worth a bench run.
``--tracks`` lists instead, per clip, each weak track the profile's still rule confirms (size,
median score, sightings on a true object: a sighting's centre inside a true box), and counts the
chains the fast rule would confirm at ``--chain`` sightings (alternatives and tracks proper).

    .venv-test/bin/python bench/weak_sweep.py /tmp/weak/crossers-tune.pkl /tmp/weak/fixed-tune.pkl
    .venv-test/bin/python bench/weak_sweep.py --tracks /tmp/weak/crossers-tune.pkl
"""

from __future__ import annotations

import argparse
import pickle
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from anonymizer.config import TrackSpec, load_profile
from anonymizer.detections import CLASS_IDS, FACE, PLATE, Detections
from anonymizer.pipeline import Engine
from anonymizer.track.linker import _confirmed, _fast, link
from anonymizer.track.window import ClassTrack, WindowTracker

COVER = 0.9


def regions(
    engine: Engine, spec: TrackSpec, found: dict[int, dict[str, Any]], size_wh: tuple[int, int]
) -> list[Detections]:
    profile = engine.profile
    specs = {FACE: profile.detect.faces, PLATE: profile.detect.plates}
    names = sorted({name for per in found.values() for name in per})
    classes = {}
    for name in names:
        s = specs[CLASS_IDS[name]]
        confident = s.threshold if s.track_threshold is not None else None
        classes[name] = ClassTrack(s.every_n_frames * s.video_full_every, confident, s.every_n_frames)
    tracker = WindowTracker(spec, classes, frame_size=size_wh)
    out: list[Detections] = []
    for index in sorted(found):
        per = {name: found[index].get(name) for name in names}
        for settled in tracker.push(per):
            out.append(engine.regions(Detections.merge(list(settled.values())), size_wh, video=True))
    for settled in tracker.finish():
        out.append(engine.regions(Detections.merge(list(settled.values())), size_wh, video=True))
    return out


def covered(box: np.ndarray, regs: Detections) -> bool:
    if not len(regs):
        return False
    r = regs.xyxy
    x1, y1 = np.maximum(r[:, 0], box[0]), np.maximum(r[:, 1], box[1])
    x2, y2 = np.minimum(r[:, 2], box[2]), np.minimum(r[:, 3], box[3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    return bool((inter / max(1.0, float((box[2] - box[0]) * (box[3] - box[1]))) >= COVER).any())


def area_outside(regs: Detections, truth_boxes: np.ndarray, size_wh: tuple[int, int]) -> int:
    """Pixels of the regions' union outside every true box, on a 1/4 scale raster."""
    w, h = size_wh
    grid = np.zeros((h // 4 + 1, w // 4 + 1), bool)
    for b in regs.xyxy:
        x1, y1, x2, y2 = (np.clip(b, 0, [w, h, w, h]) / 4).astype(int)
        grid[y1 : y2 + 1, x1 : x2 + 1] = True
    for b in truth_boxes:
        x1, y1, x2, y2 = (np.clip(b, 0, [w, h, w, h]) / 4).astype(int)
        grid[y1 : y2 + 1, x1 : x2 + 1] = False
    return int(grid.sum()) * 16


def on_truth(track: Any, truths: list[Any]) -> int:
    """Sightings of ``track`` whose centre lies inside a true box of their frame."""
    hits = 0
    for f, b in zip(track.frames, track.boxes):
        cx, cy = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
        t = truths[f].boxes
        hits += bool(len(t) and ((t[:, 0] <= cx) & (cx <= t[:, 2]) & (t[:, 1] <= cy) & (cy <= t[:, 3])).any())
    return hits


def list_tracks(clips: list[dict[str, Any]], profile: Any, chain: int) -> None:
    spec = profile.track
    counts = {"alternatives": [0, 0], "tracks proper": [0, 0]}
    for c in clips:
        found = c["found"][""]
        for name, cs in (("face", profile.detect.faces), ("plate", profile.detect.plates)):
            per = [found[i].get(name) for i in sorted(found)]
            if all(d is None for d in per):
                continue
            ran = np.concatenate([[0], np.cumsum([d is not None for d in per])])
            every = cs.every_n_frames * cs.video_full_every
            for t in link(per, spec, every, tuple(c["size_wh"])):
                if max(t.scores) >= cs.threshold:
                    continue
                if _fast(t, chain):
                    kind = counts["alternatives" if t.alternative else "tracks proper"]
                    kind[0] += 1
                    kind[1] += on_truth(t, c["truths"]) > 0
                still = replace(spec, confirm_fast_sightings=0)
                old = _confirmed(t, cs.threshold, spec.confirm_sightings, spec.confirm_max_px)
                if not old and _confirmed(t, cs.threshold, spec.confirm_sightings, spec.confirm_max_px, still, ran):
                    side = float(np.median(np.max(np.stack(t.boxes)[:, 2:] - np.stack(t.boxes)[:, :2], axis=1)))
                    print(
                        f"{c['name']} {name}: still rule confirms {len(t.frames)} sightings, frames "
                        f"{t.frames[0]}-{t.frames[-1]}, {side:.0f} px, median score {float(np.median(t.scores)):.3f}, "
                        f"{on_truth(t, c['truths'])} on a true object"
                    )
    for kind, (n, hit) in counts.items():
        print(f"fast rule at {chain} sightings: {n} {kind}, {hit} of them on a true object")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("records", nargs="+", type=Path)
    parser.add_argument(
        "--still", nargs="+", default=["0:0.8", "12:0.8", "24:0.8", "24:0.9", "24:0.6", "36:0.8", "48:0.9"]
    )
    parser.add_argument("--fast", nargs="+", type=int, default=[0, 3, 4, 5])
    parser.add_argument("--profile", default=None)
    parser.add_argument("--tracks", action="store_true", help="list what the rules confirm instead")
    parser.add_argument("--chain", type=int, default=3, help="--tracks: the fast rule's sightings")
    args = parser.parse_args(argv)
    profile = load_profile(args.profile)
    if args.tracks:
        list_tracks([c for path in args.records for c in pickle.load(path.open("rb"))], profile, args.chain)
        return 0
    engine = Engine(profile)
    off = replace(profile.track, confirm_still_sightings=0, confirm_fast_sightings=0)
    variants = [(s, f) for s in args.still for f in args.fast]
    print(
        "| records | still (sightings:share) | fast | object-frames newly covered (faces / plates) | no longer covered | new region px outside the truth, per frame |"
    )
    print("|---|---|---|---|---|---|")
    clips = [c for path in args.records for c in pickle.load(path.open("rb"))]
    base = []
    for c in clips:
        base.append(regions(engine, off, c["found"][""], tuple(c["size_wh"])))
    for still, fast in variants:
        need, share = still.split(":")
        spec = replace(
            profile.track,
            confirm_still_sightings=int(need),
            confirm_still_share=float(share),
            confirm_fast_sightings=fast,
        )
        gained = {True: 0, False: 0}
        lost, extra, frames = 0, 0, 0
        for c, b in zip(clips, base):
            size = tuple(c["size_wh"])
            regs = regions(engine, spec, c["found"][""], size)
            for f, truth in enumerate(c["truths"]):
                frames += 1
                for box, oid in zip(truth.boxes, truth.object_ids):
                    before, now = covered(box, b[f]), covered(box, regs[f])
                    if now and not before:
                        gained[bool(c["is_face"][int(oid)])] += 1
                    lost += before and not now
                extra += area_outside(regs[f], truth.boxes, size) - area_outside(b[f], truth.boxes, size)
        print(
            f"| {' '.join(p.stem for p in args.records)} | {still} | {fast} | {gained[True]} / {gained[False]} | {lost} | "
            f"{extra / max(1, frames):.0f} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
