"""What gating loses in a crowd with walkers: gated detections against a whole-frame full plan.

Builds a fixed-camera clip over a crowd photo of faces-wider (one half of the fixed split, every
labelled face standing, walkers from other photos of the same half crossing), then runs the faces'
schedule frame by frame with the full plan on every frame and gating on, and compares each
frame's gated detections (what ran plus what was carried from the refresh) with one whole-frame
full-plan pass. A confident whole-frame detection that no gated one overlaps (IoU 0.3) is a
**loss**, sorted by cause: a face the refresh found whose box a change touched (``touched``), one
inside a crop that ran but scored under the threshold there (``in crop``), or neither.

    .venv/bin/python bench/gating_losses.py                      # tune half, 30 of 48 frames, 1280x720
    .venv/bin/python bench/gating_losses.py --half confirm --frames 48
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from anonymizer.config import load_profile
from anonymizer.detect import gating
from anonymizer.detect.factory import build_detectors
from anonymizer.detect.schedule import ClassSchedule
from anonymizer.detections import Detections, box_iou
from anonymizer.evaluate import fixed_camera
from anonymizer.evaluate.labels import read_label_set
from anonymizer.evaluate.videos import iter_clip

EVAL_DIR = Path(os.environ.get("ANONYMIZER_EVAL_DIR", ROOT.parent / "shared" / "eval"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--half", choices=fixed_camera.HALVES, default="tune")
    parser.add_argument("--frames", type=int, default=30, help="frames compared")
    parser.add_argument("--clip-frames", type=int, default=48, help="frames of the clip (its plan depends on it)")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--size", default="1280x720")
    args = parser.parse_args(argv)
    set_dir = EVAL_DIR / "faces-wider"
    if not (set_dir / "labels.jsonl").is_file():
        print(f"skipping: no faces-wider in {EVAL_DIR}", file=sys.stderr)
        return 0
    size = tuple(int(v) for v in args.size.lower().split("x"))
    labels = [li for li in read_label_set(set_dir) if len(li.boxes) and fixed_camera.half_of(li.image) == args.half]
    crowds = sorted((li for li in labels if len(li.boxes) >= 15), key=lambda li: li.image)
    rng = np.random.default_rng(args.seed)
    profile = load_profile(None)
    background = crowds[int(rng.integers(len(crowds)))]
    others = [labels[int(i)] for i in rng.choice(len(labels), 8, replace=False)]
    photos = [fixed_camera.photo_from_label(set_dir, li, profile.limits) for li in [background, *others]]
    seed = int(rng.integers(1 << 30))
    plan = fixed_camera.plan_fixed_clip(
        photos[0], photos[1:], seed=seed, n_frames=args.clip_frames, size_wh=size, keep_prob=1.0, motion_prob=0.0
    )
    faces = replace(profile.detect.faces, video_full_every=1)
    detectors, _, _ = build_detectors(
        replace(profile.detect, faces=faces, plates=replace(profile.detect.plates, enabled=False))
    )
    detector = detectors["face"]
    schedule = ClassSchedule(detector, gate=True, refresh_frames=profile.detect.gating_refresh_frames)
    causes = {"touched": 0, "in crop": 0, "neither": 0}
    with tempfile.TemporaryDirectory(prefix="anonymizer-gating-") as tmp:
        clip = Path(tmp) / "crowd.mp4"
        fixed_camera.synthesize_fixed(photos[0], photos[1:], plan, clip, seed=seed)
        print(f"{args.half} half, background {background.image}, {args.frames} frames at {args.size}", file=sys.stderr)
        for index, rgb in enumerate(iter_clip(clip)):
            if index >= args.frames:
                break
            blocks = gating.block_means(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
            kept_before = schedule.kept
            passes, carried, refresh = schedule.plan(index, rgb, blocks)
            found = detector.merge_passes(detector.detect_passes([rgb], video=True, plans=[passes])[0])
            if refresh:
                schedule.refreshed(found)
            gated = Detections.merge([found, carried]).xyxy
            whole = detector.merge_passes(detector.detect_passes([rgb], video=True)[0])
            for box in whole.xyxy[whole.confidence >= faces.threshold]:
                if len(gated) and box_iou(box[None], gated).max() > 0.3:
                    continue
                if len(kept_before) and box_iou(box[None], kept_before.xyxy).max() > 0.3:
                    causes["touched"] += 1
                elif any(
                    p.x0 <= box[0] * p.scale
                    and p.y0 <= box[1] * p.scale
                    and p.x1 >= box[2] * p.scale
                    and p.y1 >= box[3] * p.scale
                    for p in passes
                ):
                    causes["in crop"] += 1
                else:
                    causes["neither"] += 1
    share = schedule.stats.get("changed_px", 0) / max(1, schedule.stats.get("frame_px", 0))
    print("| confident detections lost by gating | touched | in crop | neither | changed share of gated frames |")
    print("|---|---|---|---|---|")
    print(f"| {sum(causes.values())} | {causes['touched']} | {causes['in crop']} | {causes['neither']} | {share:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
