"""int8 against full precision, object by object, on one half of every labelled set (photos).

Runs the photo pipeline (``anonymizer evaluate``'s calls and scoring) twice per image, once with
``detect.<class>.precision: full`` and once with ``int8``, everything else as in the profile, and
counts the labelled objects each hides, and those full precision hides and int8 does not ("lost").
For every object full precision hides it also compares the best score of a detection on it
(IoU >= 0.3), int8 over full: the lowest ratio on the tune half is what an int8 threshold must
allow for (``--plate-threshold``: the full threshold times that ratio), confirmed on the other half.
A threshold given here moves the class's ``track_threshold`` and its cascade ``cue_threshold`` by
the same factor (threshold / the profile's), so ``--full-plate-threshold 0.05`` runs plates as
they were at full precision (cue 0.02). An object's best score is read from the detections the
run keeps, so a score below the run's threshold reads as 0: measure ratios with a low int8
threshold (docs/int8.md ran faces at 0.02). The JSON lines carry every [full, int8, size] triple.
The rule for making int8 a default (docs/int8.md): lost = 0 on both halves of every set. Each set
runs its own class only (faces on faces-*, plates on plates-*): the other class's precision
cannot change whether these objects are hidden. Times are side by side, same image, same process.

    .venv/bin/python bench/int8_recall.py --half tune
    .venv/bin/python bench/int8_recall.py --half confirm --sets plates-openalpr --limit 40
    .venv/bin/python bench/int8_recall.py --half tune --face-threshold 0.1   # a threshold for int8 only
    .venv/bin/python bench/int8_recall.py --half tune --sets faces-wider --every 2   # every 2nd image
    .venv/bin/python bench/int8_recall.py --half confirm --full-plate-threshold 0.05  # full as it was
    .venv/bin/python bench/int8_recall.py --half tune --sets faces-wider faces-masks --detail \
        --face-threshold 0.10                       # int8 on the photos' enlarged passes only
    .venv/bin/python bench/int8_recall.py --half tune --sets faces-masks --face-threshold 0.08 \
        --face-recipe int8-qdq-pct9999-r3-eq                              # a CenterFace recipe variant

The halves are ../shared/eval's fixed split (its README): confirm when the first hex digit of
sha1(image path) is 8-f. Evaluation data is read in place, never copied.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from anonymizer.config import Profile, load_profile  # noqa: E402
from anonymizer.evaluate.labels import read_label_set  # noqa: E402
from anonymizer.evaluate.runner import engine_anonymizer, load_rgb, score_image  # noqa: E402

DEFAULT_EVAL_DIR = Path(os.environ.get("ANONYMIZER_EVAL_DIR", ROOT.parent / "shared" / "eval"))
SETS = ("faces-wider", "faces-masks", "plates-openalpr", "plates-uc3m-lowres")


def half(rel_path: str) -> str:
    """The eval README's fixed split."""
    return "confirm" if hashlib.sha1(rel_path.encode()).hexdigest()[0] in "89abcdef" else "tune"


def variant(
    profile: Profile, only: str, precision: str, threshold: float | None, keep_cue: bool = False, detail: bool = False
) -> Profile:
    """``profile`` with only class ``only`` ('face'/'plate') enabled, at ``precision``; ``detail``:
    ``precision`` (and ``threshold``) for the passes that enlarge the picture only, the others full."""
    detect = profile.detect
    spec = detect.faces if only == "face" else detect.plates
    if detail:
        changes = {"precision": "full", "detail_precision": precision, "detail_threshold": threshold}
        spec = replace(spec, **changes)
        faces = replace(spec if only == "face" else detect.faces, enabled=only == "face")
        plates = replace(spec if only == "plate" else detect.plates, enabled=only == "plate")
        return replace(profile, detect=replace(detect, faces=faces, plates=plates))
    # Every pass at ``precision``: the detail passes too, whatever the profile says of them.
    changes: dict = {"precision": precision, "detail_precision": None, "video_detail_precision": None}
    if threshold is not None:
        # Every score cut-off below the threshold moves with it: int8 scores run lower by the same
        # factor on the weak candidates that the hysteresis (video) and the cascade's cues (photos)
        # keep, as the plates' cue did (0.02 -> 0.015 with 0.05 -> 0.038).
        factor = threshold / spec.threshold
        changes["threshold"] = threshold
        if spec.track_threshold is not None:
            changes["track_threshold"] = round(min(spec.track_threshold * factor, threshold), 4)
        if not keep_cue:  # --keep-cue: the cascade's cue stays the profile's (docs/int8.md, 2026-12-07)
            changes["cascade"] = replace(spec.cascade, cue_threshold=round(spec.cascade.cue_threshold * factor, 4))
    spec = replace(spec, **changes)
    faces = replace(spec if only == "face" else detect.faces, enabled=only == "face")
    plates = replace(spec if only == "plate" else detect.plates, enabled=only == "plate")
    return replace(profile, detect=replace(detect, faces=faces, plates=plates))


def best_score(box: tuple[float, float, float, float], dets) -> float:
    """The highest score of a detection overlapping ``box`` at IoU >= 0.3 (0 when none does)."""
    if not len(dets):
        return 0.0
    b = np.asarray(box, np.float32)
    xyxy = dets.xyxy
    iw = np.clip(np.minimum(xyxy[:, 2], b[2]) - np.maximum(xyxy[:, 0], b[0]), 0, None)
    ih = np.clip(np.minimum(xyxy[:, 3], b[3]) - np.maximum(xyxy[:, 1], b[1]), 0, None)
    inter = iw * ih
    union = (xyxy[:, 2] - xyxy[:, 0]) * (xyxy[:, 3] - xyxy[:, 1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    iou = inter / np.maximum(union, 1e-9)
    return float(dets.confidence[iou >= 0.3].max(initial=0.0))


def run_set(set_dir: Path, which: str, engines: dict, limits, limit: int | None, every: int = 1) -> dict:
    labels = [li for li in read_label_set(set_dir) if which == "both" or half(li.image) == which]
    labels = labels[::every]  # every n-th image of the half, so a short run still spans the whole set
    labels = labels[:limit] if limit else labels
    out = {
        "set": set_dir.name,
        "half": which,
        "images": len(labels),
        "labelled": 0,
        "lost": [],
        "gained": 0,
        "ratios": [],
        "pairs": [],  # [full's best score, int8's] of every object full precision hides
    }
    hidden = {k: 0 for k in engines}
    seconds = {k: 0.0 for k in engines}
    changed = {k: 0 for k in engines}  # collateral: unlabelled pixels the masks changed
    judged = {k: 0 for k in engines}
    for done, label in enumerate(labels):
        if done and done % 10 == 0:
            print(f"{set_dir.name}: {done}/{len(labels)} images", file=sys.stderr, flush=True)
        rgb = load_rgb(set_dir / label.image, label, limits)
        outcome = {}
        for name, anonymize in engines.items():
            start = time.perf_counter()
            masked, dets = anonymize(rgb)
            seconds[name] += time.perf_counter() - start
            boxes, image = score_image(label, rgb, masked, dets, 0.0)
            changed[name] += image.collateral_changed
            judged[name] += image.collateral_total
            outcome[name] = [(b, best_score(b.box, dets)) for b in boxes]
            hidden[name] += sum(b.hidden for b in boxes)
        out["labelled"] += len(outcome["full"])
        for (f, f_score), (q, q_score) in zip(outcome["full"], outcome["int8"], strict=True):
            if f.hidden and not q.hidden:
                out["lost"].append({"image": label.image, "size_px": round(f.size_px, 1), "scores": [f_score, q_score]})
            out["gained"] += q.hidden and not f.hidden
            if f.hidden:
                out["pairs"].append([round(f_score, 4), round(q_score, 4), round(f.size_px, 1)])
            if f.hidden and f_score > 0:  # how far int8 scores fall below full on what full hides
                out["ratios"].append(q_score / f_score)
    out["hidden"] = hidden
    out["seconds"] = {k: round(v, 2) for k, v in seconds.items()}
    out["collateral"] = {k: round(changed[k] / max(1, judged[k]), 4) for k in engines}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--eval-dir", type=Path, default=DEFAULT_EVAL_DIR)
    parser.add_argument("--sets", nargs="+", default=list(SETS))
    parser.add_argument("--half", choices=("tune", "confirm", "both"), required=True)
    parser.add_argument("--profile", default=None, help="profile YAML (default: the built-in default)")
    parser.add_argument("--limit", type=int, default=None, help="first N images of the half, per set")
    parser.add_argument("--every", type=int, default=1, help="every N-th image of the half (before --limit)")
    parser.add_argument("--face-threshold", type=float, default=None, help="int8 faces: this threshold instead")
    parser.add_argument("--plate-threshold", type=float, default=None, help="int8 plates: this threshold instead")
    parser.add_argument("--full-face-threshold", type=float, default=None, help="full-precision faces: this threshold")
    parser.add_argument(
        "--full-plate-threshold",
        type=float,
        default=None,
        help="full-precision plates: this threshold (0.05 before int8)",
    )
    parser.add_argument(
        "--detail", action="store_true", help="int8 on the passes that enlarge the picture only (detail_precision)"
    )
    parser.add_argument("--keep-cue", action="store_true", help="int8: leave the cascade's cue_threshold as is")
    parser.add_argument(
        "--face-recipe",
        default=None,
        help="int8 CenterFace by this recipe of anonymizer.detect.int8.VARIANTS (default: its adopted one)",
    )
    parser.add_argument("--json", type=Path, default=None, help="append one JSON line per set here")
    args = parser.parse_args(argv)
    from anonymizer.detect import int8
    from anonymizer.pipeline import Engine

    if args.face_recipe:  # this process only: the cache is keyed by the recipe's name
        int8.MODEL_RECIPES["centerface"] = int8.VARIANTS[args.face_recipe]

    profile = load_profile(args.profile)
    print(
        "| set | half | images | labelled | hidden full | hidden int8 | lost by int8 | gained | "
        "lowest int8/full score | collateral full / int8 | s full | s int8 |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name in args.sets:
        set_dir = args.eval_dir / name
        if not (set_dir / "labels.jsonl").is_file():
            print(f"{set_dir}: not found, skipped", file=sys.stderr)
            continue
        only = "face" if name.startswith("face") else "plate"
        threshold = args.face_threshold if only == "face" else args.plate_threshold
        full_threshold = args.full_face_threshold if only == "face" else args.full_plate_threshold
        engines = {
            "full": engine_anonymizer(Engine(variant(profile, only, "full", full_threshold))),
            "int8": engine_anonymizer(Engine(variant(profile, only, "int8", threshold, args.keep_cue, args.detail))),
        }
        r = run_set(set_dir, args.half, engines, profile.limits, args.limit, args.every)
        h, s = r["hidden"], r["seconds"]
        print(
            f"| {name} | {r['half']} | {r['images']} | {r['labelled']} | {h['full']} | {h['int8']} | "
            f"{len(r['lost'])} | {r['gained']} | {min(r['ratios'], default=float('nan')):.2f} | "
            f"{r['collateral']['full']:.4f} / {r['collateral']['int8']:.4f} | {s['full']} | {s['int8']} |",
            flush=True,
        )
        if args.json:
            with args.json.open("a") as fh:
                extra = {
                    "threshold": threshold,
                    "every": args.every,
                    "limit": args.limit,
                    "face_recipe": args.face_recipe,
                    "keep_cue": args.keep_cue,
                    "detail": args.detail,
                }
                fh.write(json.dumps(r | extra) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
