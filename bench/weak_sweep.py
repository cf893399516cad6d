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

    .venv-test/bin/python bench/weak_sweep.py /tmp/weak/crossers-tune.pkl /tmp/weak/fixed-tune.pkl
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("records", nargs="+", type=Path)
    parser.add_argument(
        "--still", nargs="+", default=["0:0.8", "12:0.8", "24:0.8", "24:0.9", "24:0.6", "36:0.8", "48:0.9"]
    )
    parser.add_argument("--fast", nargs="+", type=int, default=[0, 3, 4, 5])
    parser.add_argument("--profile", default=None)
    args = parser.parse_args(argv)
    profile = load_profile(args.profile)
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
