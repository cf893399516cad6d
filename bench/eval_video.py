"""Leaked object-frames per 1,000 on synthetic clips made from the labelled photos.

For each set, a few photos (picked with a fixed seed) become clips: a camera pans and zooms over
the photo, with sensor noise, motion-blur bursts and a short dropout burst; every frame's true
boxes follow from the camera path. Each clip goes through the real video job
(``Engine.process``) and every labelled object not hidden in a frame is a leaked object-frame
(see anonymizer/evaluate/videos.py). Target for the default profile: <= 1 per 1,000. Collateral is
the share of pixels outside every true box that the masks changed, against the clip re-encoded
without masks.

    .venv/bin/python bench/eval_video.py                                  # default profile
    .venv/bin/python bench/eval_video.py --profile bench/profiles/x.yaml --clips-per-set 1 --frames 24
    .venv/bin/python bench/eval_video.py --json /tmp/video.json           # all leaks, frame by frame
    .venv/bin/python bench/eval_video.py --seed 11                        # other photos, other camera paths
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from anonymizer.config import load_profile
from anonymizer.detections import FACE
from anonymizer.evaluate import videos
from anonymizer.evaluate.labels import read_label_set
from anonymizer.evaluate.runner import load_rgb

DEFAULT_EVAL_DIR = Path(os.environ.get("ANONYMIZER_EVAL_DIR", ROOT.parent / "shared" / "eval"))
SETS = ("faces-wider", "faces-masks", "plates-openalpr", "plates-uc3m-lowres")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--eval-dir", type=Path, default=DEFAULT_EVAL_DIR)
    parser.add_argument("--sets", nargs="+", default=list(SETS))
    parser.add_argument("--profile", default=None, help="profile YAML (default: profiles/default.yaml)")
    parser.add_argument("--clips-per-set", type=int, default=12)
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--size", default="640x360", help="clip size WxH")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path, default=None, help="write every clip's summary and leaks here")
    args = parser.parse_args(argv)
    size = tuple(int(v) for v in args.size.lower().split("x"))

    from anonymizer.pipeline import Engine

    profile = load_profile(args.profile)
    engine = Engine(profile)
    results: list[videos.ClipResult] = []
    with tempfile.TemporaryDirectory(prefix="anonymizer-eval-video-") as tmp:
        for set_name in args.sets:
            set_dir = args.eval_dir / set_name
            if not (set_dir / "labels.jsonl").is_file():
                print(f"skipping {set_name}: not in {args.eval_dir}", file=sys.stderr)
                continue
            labels = [li for li in read_label_set(set_dir) if len(li.boxes)]
            # Each set draws from its own stream, so --sets picks the same clips in any combination.
            rng = np.random.default_rng([args.seed, zlib.crc32(set_name.encode())])
            for k, index in enumerate(rng.choice(len(labels), size=min(args.clips_per_set, len(labels)), replace=False)):
                label = labels[int(index)]
                rgb = load_rgb(set_dir / label.image, label, profile.limits)
                seed = int(rng.integers(1 << 30))
                plan = videos.plan_clip((rgb.shape[1], rgb.shape[0]), label.boxes, seed=seed, n_frames=args.frames, size_wh=size)
                name = f"{set_name}-{k}"
                t = time.perf_counter()
                result = videos.evaluate_clip(
                    engine, name, rgb, label.boxes, plan, Path(tmp), seed=seed, is_face=label.class_id == FACE
                )
                results.append(result)
                print(
                    f"  {name} ({label.image}): {result.object_frames} object-frames, {len(result.leaked)} leaked, "
                    f"{result.seconds / result.frames:.2f} s/frame ({time.perf_counter() - t:.0f} s total)",
                    file=sys.stderr,
                    flush=True,
                )
    print("| profile | set | clips | object-frames | leaked | missed | partly masked | leaked per 1,000 | collateral |")
    print("|---|---|---|---|---|---|---|---|---|")
    for set_name in [*args.sets, None]:
        rows = [r for r in results if set_name is None or r.name.rsplit("-", 1)[0] == set_name]
        if not rows:
            continue
        leaks = [leak for r in rows for leak in r.leaked]
        missed = sum(1 for leak in leaks if leak["changed"] < 0.05)
        per_k = videos.leaks_per_thousand(rows)
        spill = videos.collateral(rows)
        print(
            f"| {profile.name} | {set_name or '**all**'} | {len(rows)} | {sum(r.object_frames for r in rows)} | {len(leaks)} | "
            f"{missed} | {len(leaks) - missed} | {'-' if per_k is None else f'{per_k:.2f}'} | {'-' if spill is None else f'{spill:.4f}'} |"
        )
    per_k = videos.leaks_per_thousand(results)
    if args.json:
        summary = {"profile": profile.name, "leaked_per_1000": per_k, "collateral": videos.collateral(results)}
        args.json.write_text(json.dumps({**summary, "clips": [r.summary() for r in results]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
