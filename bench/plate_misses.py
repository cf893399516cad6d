"""What the plate model (and the text cue) make of the plates no pass finds, on kept crossers clips.

Reads the clips kept by ``bench/eval_video.py --kind crossers --compare --keep DIR --json FILE``
and picks the plate object-frames both the profile and the reference left without any mask
(``videos.is_missed`` for both: no pass of either engine found them near that frame). For each
(every ``--every``-th frame of each object) it decodes the input frame and reports:

* the plate's size (w x h px), speed (px a frame, the eval's own ``velocity_px``), sharpness
  (variance of the Laplacian inside the box) and contrast (grey-level standard deviation);
* the best score the plate model gives a box on the plate (IoU >= 0.2 or centre inside the true
  box) in a square window centred on it, seen at ``--zooms`` times its source size (1/3: the
  1080p dense pass, 0.5: the full plan's 1280 px tiles, 1: ``video_zoom`` 2's windows, 2 and 3:
  closer looks), at int8 and at full precision (``detect.plates.precision``);
* whether PP-OCRv4's text detector (the photo path's ``detect.plate_text``) marks it: the highest
  text probability inside the box and whether a plate-shaped region of the photo rule lies on it,
  at zoom 1 and 2.

Bench output only: product logs never carry coordinates.

    .venv-test/bin/python bench/eval_video.py --kind crossers --half tune --compare --clips-per-set 3 \\
        --crosser-frames 48 --sets plates-openalpr plates-uc3m-lowres --keep /tmp/keep --json /tmp/tune.json
    .venv-test/bin/python bench/plate_misses.py --keep /tmp/keep --json /tmp/tune.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from anonymizer.config import load_profile
from anonymizer.evaluate.videos import is_missed, iter_clip

MODEL_SIDE = 640


def window(frame: np.ndarray, box: np.ndarray, zoom: float) -> tuple[np.ndarray, np.ndarray]:
    """(the 640 px square the model sees: source px around ``box`` at ``zoom`` times their size,
    the box in that square's px)."""
    h, w = frame.shape[:2]
    side = int(round(MODEL_SIDE / zoom))
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    x0 = int(np.clip(round(cx - side / 2), 0, max(0, w - side)))
    y0 = int(np.clip(round(cy - side / 2), 0, max(0, h - side)))
    crop = frame[y0 : y0 + side, x0 : x0 + side]
    # Outside the frame (a window larger than the frame) stays the letterbox's grey.
    canvas = np.full((side, side, 3), 114, np.uint8)
    canvas[: crop.shape[0], : crop.shape[1]] = crop
    interpolation = cv2.INTER_AREA if zoom < 1 else cv2.INTER_LINEAR
    seen = cv2.resize(canvas, (MODEL_SIDE, MODEL_SIDE), interpolation=interpolation)
    k = MODEL_SIDE / side
    return seen, (np.asarray(box, np.float32) - [x0, y0, x0, y0]) * k


def on_box(xyxy: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Which of ``xyxy`` lie on ``box``: IoU >= 0.2 or centre inside it."""
    if not len(xyxy):
        return np.zeros(0, bool)
    x1, y1 = np.maximum(box[0], xyxy[:, 0]), np.maximum(box[1], xyxy[:, 1])
    x2, y2 = np.minimum(box[2], xyxy[:, 2]), np.minimum(box[3], xyxy[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (xyxy[:, 2] - xyxy[:, 0]) * (xyxy[:, 3] - xyxy[:, 1])
    iou = inter / np.maximum(1e-6, area + (box[2] - box[0]) * (box[3] - box[1]) - inter)
    c = (xyxy[:, :2] + xyxy[:, 2:]) / 2
    inside = (c[:, 0] >= box[0]) & (c[:, 0] <= box[2]) & (c[:, 1] >= box[1]) & (c[:, 1] <= box[3])
    return (iou >= 0.2) | inside


def pick(clips: list[dict[str, Any]], every: int) -> list[tuple[str, dict[str, Any]]]:
    """(clip, leak) of the plate object-frames both engines left unmasked, every ``every``-th
    frame of each object."""
    out = []
    for clip in clips:
        ref = clip.get("reference")
        if ref is None:
            continue
        theirs = {(lk["frame"], lk["object"]): lk for lk in ref["leaks"]}
        seen: dict[int, int] = {}
        for lk in sorted(clip["leaks"], key=lambda lk: (lk["object"], lk["frame"])):
            other = theirs.get((lk["frame"], lk["object"]))
            if lk.get("face", True) or other is None or not (is_missed(lk) and is_missed(other)):
                continue
            n = seen.get(lk["object"], 0)
            seen[lk["object"]] = n + 1
            if n % every == 0:
                out.append((clip["clip"], lk))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", type=Path, required=True, help="the folder of eval_video.py --keep")
    parser.add_argument(
        "--json", type=Path, required=True, help="the file of eval_video.py --json (run with --compare)"
    )
    parser.add_argument("--every", type=int, default=3, help="every n-th missed frame of each object")
    parser.add_argument("--zooms", type=float, nargs="+", default=[1 / 3, 0.5, 1.0, 2.0, 3.0])
    parser.add_argument("--profile", default=None)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)

    from anonymizer.detect.factory import build_text_cue, plate_shape
    from anonymizer.detect.onnx import YoloOnnx
    from anonymizer.detect.registry import builtin_weights
    from anonymizer.detect.text import plate_shaped

    profile = load_profile(args.profile)
    spec = profile.detect.plates
    path, licence = builtin_weights("platedet")
    models = {p: YoloOnnx(path, licence, "platedet", threads=args.threads, precision=p) for p in ("int8", "full")}
    thresholds = {"int8": spec.threshold, "full": 0.05}
    text = build_text_cue(profile.detect)
    shape = plate_shape(profile.detect.plate_text)

    data = json.loads(args.json.read_text())
    chosen = pick(data["clips"], args.every)
    print(f"{len(chosen)} object-frames (both engines missed them; every {args.every}-th per object)", file=sys.stderr)
    by_clip: dict[str, dict[int, list[dict[str, Any]]]] = {}
    for clip, lk in chosen:
        by_clip.setdefault(clip, {}).setdefault(int(lk["frame"]), []).append(lk)
    rows = []
    for clip, frames in by_clip.items():
        for index, frame in enumerate(iter_clip(args.keep / f"{clip}.mp4")):
            for lk in frames.get(index, []):
                box = np.asarray(lk["box"], np.float32)
                x1, y1, x2, y2 = (int(round(v)) for v in box)
                grey = cv2.cvtColor(frame[max(0, y1) : y2, max(0, x1) : x2], cv2.COLOR_RGB2GRAY)
                v = lk.get("velocity_px") or [0.0, 0.0]
                row: dict[str, Any] = {
                    "clip": clip,
                    "frame": index,
                    "object": lk["object"],
                    "w": float(box[2] - box[0]),
                    "h": float(box[3] - box[1]),
                    "speed": float(np.hypot(*v)),
                    "sharp": float(cv2.Laplacian(grey, cv2.CV_64F).var()) if grey.size else 0.0,
                    "contrast": float(grey.std()) if grey.size else 0.0,
                }
                for zoom in args.zooms:
                    seen, b = window(frame, box, zoom)
                    for p, model in models.items():
                        xyxy, scores = model(seen, 0.001)
                        hit = on_box(xyxy, b)
                        row[f"{p}@{zoom:.2g}"] = float(scores[hit].max()) if hit.any() else 0.0
                    if text is not None and zoom in (1.0, 2.0):
                        prob = text.probability(seen, MODEL_SIDE)
                        s = prob.shape[0] / MODEL_SIDE
                        bi = np.round(b * s).astype(int)
                        inside = prob[max(0, bi[1]) : bi[3] + 1, max(0, bi[0]) : bi[2] + 1]
                        row[f"text_p@{zoom:.2g}"] = float(inside.max()) if inside.size else 0.0
                        txy, tsc = text(seen, MODEL_SIDE)
                        ok = plate_shaped(txy, tsc, seen.shape[:2], shape) if len(txy) else np.zeros(0, bool)
                        row[f"text_plate@{zoom:.2g}"] = bool(on_box(txy[ok], b).any()) if ok.any() else False
                rows.append(row)
                print(
                    f"  {clip} f{index} o{lk['object']} {row['w']:.0f}x{row['h']:.0f} v{row['speed']:.0f} "
                    f"sharp {row['sharp']:.0f} contrast {row['contrast']:.0f} "
                    + " ".join(
                        f"{k} {val:.3f}" if isinstance(val, float) else f"{k} {val}"
                        for k, val in row.items()
                        if "@" in k
                    ),
                    file=sys.stderr,
                    flush=True,
                )
    if not rows:
        print("no object-frame both engines missed")
        return 0
    n = len(rows)
    print(
        f"\n{n} plate object-frames both engines missed (every {args.every}-th per object), "
        f"{len({(r['clip'], r['object']) for r in rows})} plates"
    )
    ws, hs = np.array([r["w"] for r in rows]), np.array([r["h"] for r in rows])
    sp = np.array([r["speed"] for r in rows])
    print(
        f"width px median {np.median(ws):.0f} (min {ws.min():.0f}, max {ws.max():.0f}); height median {np.median(hs):.0f}; "
        f"speed px/frame median {np.median(sp):.0f} (max {sp.max():.0f}); "
        f"sharpness median {np.median([r['sharp'] for r in rows]):.0f}, contrast median {np.median([r['contrast'] for r in rows]):.0f}"
    )
    print()
    print(
        "| zoom (x source px) | precision | found at the class threshold | found at track_threshold 0.02 | found at 0.01 | median best score |"
    )
    print("|---|---|---|---|---|---|")
    for zoom in args.zooms:
        for p in models:
            s = np.array([r[f"{p}@{zoom:.2g}"] for r in rows])
            print(
                f"| {zoom:.2g} | {p} | {int((s >= thresholds[p]).sum())} / {n} ({thresholds[p]}) | {int((s >= 0.02).sum())} | "
                f"{int((s >= 0.01).sum())} | {np.median(s):.3f} |"
            )
    if text is not None:
        print()
        print("| text cue, zoom | text probability >= 0.3 inside the box | a plate-shaped text region on it |")
        print("|---|---|---|")
        for zoom in (1.0, 2.0):
            if f"text_p@{zoom:.2g}" in rows[0]:
                tp = np.array([r[f"text_p@{zoom:.2g}"] for r in rows])
                tb = sum(r[f"text_plate@{zoom:.2g}"] for r in rows)
                print(f"| {zoom:.2g} | {int((tp >= 0.3).sum())} / {n} | {tb} / {n} |")
    print()
    print(
        "| plate width px | object-frames | int8 found at 1x / 2x / 3x (class threshold) | full found at 1x / 2x / 3x (0.05) |"
    )
    print("|---|---|---|---|")
    for lo, hi in ((0, 20), (20, 30), (30, 45), (45, 1e9)):
        sel = [r for r in rows if lo <= r["w"] < hi]
        if not sel:
            continue
        cells = []
        for p in models:
            cells.append(
                " / ".join(str(sum(r.get(f"{p}@{z:.2g}", 0) >= thresholds[p] for r in sel)) for z in (1.0, 2.0, 3.0))
            )
        print(f"| {lo:.0f}-{'' if hi > 1e8 else f'{hi:.0f}'} | {len(sel)} | {cells[0]} | {cells[1]} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
