"""Why the default leaks an object-frame that the reference hides, on fixed-camera crossers clips.

Rebuilds exactly the clips of ``bench/eval_video.py --kind crossers`` (same seed, half, sets and
clip numbers; only the clips named with ``--only`` are synthesized and run), runs the default and
the reference (every pass on every frame, no gating) on each, records what each job's tracker got
and gave (``bench/partial_masks.Recorder``) and pickles it with the clip's truth (``--record``).
``--explain`` then sorts every object-frame the default leaks and the reference hides into:

* **a, not found**: no default detection of the object within ``--reach`` frames (the schedule or
  the gate never looked at it with a pass that sees it);
* **b, not held**: the default found it within reach, yet no mask touched it on the leaked frame
  (a gap, a switch, a fast mover the links did not follow);
* **c, partly masked**: a mask touched it (>= 5 % of its pixels) but left it recognisable;
* **d, hidden by the reference by chance**: no mask of a track that detected this object covers
  it in the reference (``OWN_COVER``); other objects' masks do.

and prints, per leak, the default's and the reference's detections and masks on that frame.
Bench output only: product logs never carry coordinates.

    .venv-test/bin/python bench/crosser_causes.py --half tune --only faces-wider:1,2 faces-masks:2 \\
        plates-openalpr:2 --record /tmp/causes.pkl
    .venv-test/bin/python bench/crosser_causes.py --explain /tmp/causes.pkl
"""

from __future__ import annotations

import argparse
import os
import pickle
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from anonymizer.detections import DETECTED, FACE, Detections
from anonymizer.evaluate import fixed_camera, videos
from anonymizer.evaluate.labels import read_label_set

# The reference hides an object "by itself" when a mask of a track that detected this very object
# (a detection centred inside its true box within 20 frames) covers at least OWN_COVER of it;
# otherwise other objects' masks (a false plate on a chest, a fast track's widened guess, an
# unconfirmed weak track's guess) hid it by chance.
OWN_COVER = 0.9
DEFAULT_EVAL_DIR = Path(os.environ.get("ANONYMIZER_EVAL_DIR", ROOT.parent / "shared" / "eval"))


def record(args: argparse.Namespace) -> None:
    from anonymizer.config import load_profile
    from anonymizer.pipeline import Engine
    from bench.eval_video import busy
    from bench.partial_masks import Recorder

    recorder = Recorder()
    recorder.install()
    profile = load_profile(args.profile)
    engines = {"": Engine(profile), "reference": Engine(videos.reference_profile(profile))}
    wanted: dict[str, set[int]] = {}
    for item in args.only:
        set_name, _, ks = item.partition(":")
        wanted[set_name] = {int(k) for k in ks.split(",")}
    size_wh = tuple(int(v) for v in args.crosser_size.lower().split("x"))
    out: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="anonymizer-causes-") as tmp:
        for set_name, ks in wanted.items():
            set_dir = args.eval_dir / set_name
            labels = [li for li in read_label_set(set_dir) if len(li.boxes)]
            labels = [li for li in labels if fixed_camera.half_of(li.image) == args.half]
            # The same stream as bench/eval_video.py's still_camera_clips("crossers", ...).
            rng = np.random.default_rng([args.seed, zlib.crc32(set_name.encode()), zlib.crc32(b"crossers")])
            n_photos = min(len(labels), 1 + args.crossing_photos)
            for k in range(max(ks) + 1):
                picked = [labels[int(i)] for i in rng.choice(len(labels), size=n_photos, replace=False)]
                seed = int(rng.integers(1 << 30))
                if k not in ks:
                    continue
                photos = [fixed_camera.photo_from_label(set_dir, label, profile.limits) for label in picked]
                plan = fixed_camera.plan_fixed_clip(
                    photos[0],
                    photos[1:],
                    seed=seed,
                    n_frames=args.crosser_frames,
                    size_wh=size_wh,
                    motion_prob=0.0,
                    keep_prob=float(busy(set_name, k)),
                    crossers=True,
                )
                name = f"{set_name}-crossers-{k}"
                src = Path(tmp) / f"{name}.mp4"
                t = time.perf_counter()
                clip = fixed_camera.synthesize_fixed(photos[0], photos[1:], plan, src, seed=seed)
                entry: dict[str, Any] = {
                    "clip": name,
                    "truths": clip.truths,
                    "is_face": clip.is_face,
                    "roles": clip.roles,
                    "size_wh": size_wh,
                }
                for tag, engine in engines.items():
                    result = videos.anonymize_and_score(
                        engine, name, src, clip.truths, Path(tmp), is_face=clip.is_face, tag=tag
                    )
                    entry[tag or "default"] = {"leaks": result.leaked, "record": recorder.jobs[-1]}
                print(
                    f"{name} ({picked[0].image}): default {len(entry['default']['leaks'])} leaked, reference {len(entry['reference']['leaks'])} "
                    f"({time.perf_counter() - t:.0f} s)",
                    file=sys.stderr,
                    flush=True,
                )
                out.append(entry)
                args.record.write_bytes(pickle.dumps(out))


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of one box ``a`` with each of ``b`` (n, 4)."""
    if not len(b):
        return np.zeros(0)
    x1, y1 = np.maximum(a[0], b[:, 0]), np.maximum(a[1], b[:, 1])
    x2, y2 = np.minimum(a[2], b[:, 2]), np.minimum(a[3], b[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = lambda r: (r[..., 2] - r[..., 0]) * (r[..., 3] - r[..., 1])  # noqa: E731
    return inter / np.maximum(1e-6, area(a) + area(b) - inter)


def _cover(box: np.ndarray, regions: np.ndarray) -> np.ndarray:
    """Share of ``box``'s area inside each region (n,)."""
    if not len(regions):
        return np.zeros(0)
    x1, y1 = np.maximum(box[0], regions[:, 0]), np.maximum(box[1], regions[:, 1])
    x2, y2 = np.minimum(box[2], regions[:, 2]), np.minimum(box[3], regions[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    return inter / max(1.0, float((box[2] - box[0]) * (box[3] - box[1])))


def _match(dets: Detections | None, box: np.ndarray) -> tuple[int, float, float] | None:
    """The raw detection that is this object (IoU >= 0.2, or its centre inside the true box):
    (index, score, IoU), the best-scoring one; None if none."""
    if dets is None or not len(dets):
        return None
    iou = _iou(box, dets.xyxy)
    c = (dets.xyxy[:, :2] + dets.xyxy[:, 2:]) / 2
    inside = (c[:, 0] >= box[0]) & (c[:, 0] <= box[2]) & (c[:, 1] >= box[1]) & (c[:, 1] <= box[3])
    ok = np.nonzero((iou >= 0.2) | inside)[0]
    if not len(ok):
        return None
    i = int(ok[np.argmax(dets.confidence[ok])])
    return i, float(dets.confidence[i]), float(iou[i])


def _track_motion(rec: Any, track_id: int, frame: int) -> str:
    from bench.partial_masks import _track_motion as motion

    return motion(rec, track_id, frame)


def _own_track(rec: Any, track_id: int, boxes: dict[int, np.ndarray], frame: int, reach: int = 20) -> bool:
    """Whether a track's detected sightings within ``reach`` frames include this object (a
    detection centred inside its true box there): its own track, however wide its moved guess."""
    for g in range(frame - reach, frame + reach + 1):
        regions, box = rec.regions.get(g), boxes.get(g)
        if regions is None or box is None or not len(regions):
            continue
        sel = (regions.tracker_id == track_id) & (regions.source == DETECTED)
        for r in regions.xyxy[sel]:
            cx, cy = (r[0] + r[2]) / 2, (r[1] + r[3]) / 2
            if box[0] <= cx <= box[2] and box[1] <= cy <= box[3]:
                return True
    return False


def own_cover(rec: Any, boxes: dict[int, np.ndarray], frame: int) -> float:
    """The largest share of an object's true box on ``frame`` that one mask of its own track covers
    (``_own_track``); ``boxes`` is the object's true box by frame."""
    regions, box = rec.regions.get(frame), boxes.get(frame)
    if regions is None or box is None or not len(regions):
        return 0.0
    cov = _cover(box, regions.xyxy)
    own = [float(cov[i]) for i in np.nonzero(cov > 0)[0] if _own_track(rec, int(regions.tracker_id[i]), boxes, frame)]
    return max(own, default=0.0)


def hidden_by_own_masks(rec: Any, truths: list[Any], keys: set[tuple[int, int]]) -> set[tuple[int, int]]:
    """Of the (frame, object) ``keys``, those that a mask of the object's own track covers by at
    least ``OWN_COVER`` in the job ``rec``: hidden by following that object, not by chance under the
    masks of others (``bench/eval_video.py --compare``'s own-masks criterion)."""
    wanted = {oid for _, oid in keys}
    where: dict[int, dict[int, np.ndarray]] = {}
    for f, t in enumerate(truths):
        for box, oid in zip(t.boxes, t.object_ids):
            if int(oid) in wanted:
                where.setdefault(int(oid), {})[f] = np.asarray(box, np.float32)
    return {(f, oid) for f, oid in keys if own_cover(rec, where.get(oid, {}), f) >= OWN_COVER}


def _fmt(box: Any) -> str:
    return "(" + ",".join(f"{float(v):.0f}" for v in box) + ")"


def sightings(rec: Any, cls: str, boxes: dict[int, np.ndarray]) -> dict[int, str]:
    """Per frame of the object's life: 'F' found by a pass (score), '.' run but not found, ' ' not run."""
    out = {}
    for f, box in boxes.items():
        dets = rec.found.get(f, {}).get(cls)
        if dets is None:
            out[f] = " "
        else:
            m = _match(dets, box)
            out[f] = "." if m is None else "F"
    return out


def explain(path: Path, reach: int) -> None:
    entries = pickle.loads(path.read_bytes())
    rows: list[dict[str, Any]] = []
    for e in entries:
        truths = e["truths"]
        where: dict[int, dict[int, np.ndarray]] = {}
        keyed: dict[tuple[int, int], np.ndarray] = {}
        for f, t in enumerate(truths):
            for box, oid in zip(t.boxes, t.object_ids):
                where.setdefault(int(oid), {})[f] = keyed[(f, int(oid))] = np.asarray(box, np.float32)
        w, h = e["size_wh"]
        ref_keys = {(int(lk["frame"]), int(lk["object"])) for lk in e["reference"]["leaks"]}
        only = [lk for lk in e["default"]["leaks"] if (int(lk["frame"]), int(lk["object"])) not in ref_keys]
        print(
            f"== {e['clip']}: default {len(e['default']['leaks'])}, reference {len(e['reference']['leaks'])}, default only {len(only)}"
        )
        for oid in sorted({int(lk["object"]) for lk in only}):
            face = bool(e["is_face"][oid])
            cls = "face" if face else "plate"
            life = where[oid]
            for tag in ("default", "reference"):
                s = sightings(e[tag]["record"], cls, life)
                line = "".join(s[f] for f in sorted(life))
                print(f"  object {oid} ({cls}, {e['roles'][oid]}) frames {min(life)}-{max(life)} {tag:9s} |{line}|")
        for lk in only:
            f, oid = int(lk["frame"]), int(lk["object"])
            face = bool(e["is_face"][oid])
            cls = "face" if face else "plate"
            box = np.asarray(lk["box"], np.float32)
            lk["velocity_px"] = fixed_camera._true_velocity(keyed, f, oid)
            lk["edge_px"] = round(float(min(box[0], box[1], w - box[2], h - box[3])), 1)
            info: dict[str, Any] = {
                "clip": e["clip"],
                "frame": f,
                "object": oid,
                "class": cls,
                "role": e["roles"][oid],
                "size_px": lk["size_px"],
                "velocity": lk["velocity_px"],
                "masked": lk["masked"],
                "retained": lk["retained"],
                "edge_px": lk.get("edge_px", None),
            }
            print(
                f"  frame {f} object {oid} ({cls}, {e['roles'][oid]}) box {_fmt(box)} size {lk['size_px']} v {lk['velocity_px']} "
                f"masked {lk['masked']} retained {lk['retained']} edge {lk['edge_px']}"
            )
            for tag in ("default", "reference"):
                rec = e[tag]["record"]
                near = []
                for g in range(f - reach, f + reach + 1):
                    b = where[oid].get(g)
                    if b is None:
                        continue
                    m = _match(rec.found.get(g, {}).get(cls), b)
                    if m is not None:
                        near.append(g - f)
                info[f"{tag}_found_near"] = near
                dets = rec.found.get(f, {}).get(cls)
                m = _match(dets, box)
                regions = rec.regions.get(f)
                cov = _cover(box, regions.xyxy) if regions is not None and len(regions) else np.zeros(0)
                info[f"{tag}_cover"] = float(cov.max()) if len(cov) else 0.0
                run = (
                    "not run"
                    if dets is None
                    else (f"found {_fmt(dets.xyxy[m[0]])} score {m[1]:.2f} IoU {m[2]:.2f}" if m else "run, not found")
                )
                print(f"    {tag}: {run}; found within {reach}: {near}")
                own = np.zeros(len(cov), bool)
                for i in np.nonzero(cov > 0)[0]:
                    src = "det" if regions.source[i] == DETECTED else "pred"
                    motion = _track_motion(rec, int(regions.tracker_id[i]), f)
                    own[i] = _own_track(rec, int(regions.tracker_id[i]), where[oid], f)
                    print(
                        f"      mask {_fmt(regions.xyxy[i])} {src} {'face' if regions.class_id[i] == FACE else 'plate'} "
                        f"track {int(regions.tracker_id[i])} {'own' if own[i] else 'foreign'} covers {cov[i]:.2f}; {motion}"
                    )
                # Hidden by a mask of its own (its class, its place, its size) or only by others'.
                info[f"{tag}_own_cover"] = float(cov[own].max()) if own.any() else 0.0
            if info["reference_own_cover"] < OWN_COVER:
                cat = "d"  # the reference hides it only with other objects' masks
            elif videos.is_missed(lk):
                cat = "a" if not info["default_found_near"] else "b"
            else:
                cat = "c"
            print(f"    category {cat}")
            info["category"] = cat
            rows.append(info)
    print()
    print("| category | object-frames | faces | plates | crossers / standing | size px | speed px/frame |")
    print("|---|---|---|---|---|---|---|")
    for cat in "abcd":
        sel = [r for r in rows if r["category"] == cat]
        if not sel:
            continue
        sizes = [r["size_px"] for r in sel]
        speeds = [float(np.hypot(*r["velocity"])) if r["velocity"] else 0.0 for r in sel]
        print(
            f"| {cat} | {len(sel)} | {sum(r['class'] == 'face' for r in sel)} | {sum(r['class'] == 'plate' for r in sel)} | "
            f"{sum(r['role'] != 'standing' for r in sel)} / {sum(r['role'] == 'standing' for r in sel)} | "
            f"{min(sizes):.0f}-{max(sizes):.0f} | {min(speeds):.0f}-{max(speeds):.0f} |"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--eval-dir", type=Path, default=DEFAULT_EVAL_DIR)
    parser.add_argument("--profile", default=None)
    parser.add_argument("--half", choices=fixed_camera.HALVES, default="tune")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--crosser-frames", type=int, default=48)
    parser.add_argument("--crosser-size", default="1920x1080")
    parser.add_argument("--crossing-photos", type=int, default=8)
    parser.add_argument("--only", nargs="+", default=[], help="SET:K[,K...]: the crossers clips to run")
    parser.add_argument("--record", type=Path, default=None, help="run the clips and pickle the records here")
    parser.add_argument("--explain", type=Path, default=None, help="classify the leaks of a pickle from --record")
    parser.add_argument("--reach", type=int, default=6, help="frames either side a detection counts as near")
    args = parser.parse_args(argv)
    if args.record:
        record(args)
    if args.explain:
        explain(args.explain, args.reach)
    return 0


if __name__ == "__main__":
    sys.exit(main())
