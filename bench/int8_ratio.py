"""How closely an int8 CenterFace recipe tracks full precision, face by face (a quick loop).

For every labelled face of one half of faces-wider and faces-masks, the best score of a CenterFace
cell box overlapping it (IoU >= 0.3, before NMS, cut-off 0.005) in two single passes: the photo
scaled to 640 px on its long side, and the photo at its own size. Over the faces full precision
finds at 0.12 or more (its threshold) in either pass, the ratio int8 / full of the best score over
both passes is what an int8 threshold must allow for (docs/int8.md: threshold = 0.12 x the lowest
tune ratio). It is a proxy for ``bench/int8_recall.py`` (the whole photo pipeline, minutes per
photo), fast enough to compare recipes: full-precision scores are cached, int8 graphs are built
from the wheel's file with each ``Recipe`` of ``anonymizer.detect.int8.VARIANTS``.
Per-call time: both graphs on a shipped crowd photo at 640x384 and 1920x1088, 2 threads,
interleaved, median.

    .venv-test/bin/python bench/int8_ratio.py --half tune --variants int8-qdq-minmax-r2 int8-qdq-minmax-r3-neck
    .venv-test/bin/python bench/int8_ratio.py --half tune --every 2 --variants all
    .venv-test/bin/python bench/int8_ratio.py --half tune --timing-only --repeats 9 --variants int8-qdq-minmax-r2

The halves are ../shared/eval's fixed split. Evaluation data is read in place, never copied.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import onnxruntime  # noqa: E402

from anonymizer.detect import int8 as int8_module  # noqa: E402
from anonymizer.detect.int8 import SAMPLES_DIR, VARIANTS, build_int8  # noqa: E402
from anonymizer.detect.onnx import _boxes_at, _session, prepare_centerface  # noqa: E402
from anonymizer.detect.registry import builtin_weights  # noqa: E402

DEFAULT_EVAL_DIR = Path(os.environ.get("ANONYMIZER_EVAL_DIR", ROOT.parent / "shared" / "eval"))
SETS = ("faces-wider", "faces-masks")
CUT = 0.005  # cells below this read as 0
FULL_THRESHOLD = 0.12


def half(rel_path: str) -> str:
    return "confirm" if hashlib.sha1(rel_path.encode()).hexdigest()[0] in "89abcdef" else "tune"


def run(session, rgb: np.ndarray) -> tuple[np.ndarray, ...]:
    h, w = rgb.shape[:2]
    blob = np.zeros((1, 3, -(-h // 32) * 32, -(-w // 32) * 32), np.float32)
    blob[0, :, :h, :w] = rgb.transpose(2, 0, 1)
    return session.run(None, {"input.1": blob})


def best_scores(outputs, size_hw: tuple[int, int], faces: np.ndarray, scale: float) -> np.ndarray:
    """Per labelled face (original pixels), the best score of a cell box at IoU >= 0.3."""
    heat, sc, off = outputs[0][0, 0], outputs[1][0], outputs[2][0]
    ys, xs = np.nonzero(heat > CUT)
    out = np.zeros(len(faces), np.float32)
    if not len(ys) or not len(faces):
        return out
    boxes = _boxes_at(ys, xs, sc, off, size_hw) / scale
    scores = heat[ys, xs]
    f = faces[:, None, :]
    b = boxes[None]
    iw = np.clip(np.minimum(f[..., 2], b[..., 2]) - np.maximum(f[..., 0], b[..., 0]), 0, None)
    ih = np.clip(np.minimum(f[..., 3], b[..., 3]) - np.maximum(f[..., 1], b[..., 1]), 0, None)
    inter = iw * ih
    area = lambda x: (x[..., 2] - x[..., 0]) * (x[..., 3] - x[..., 1])  # noqa: E731
    iou = inter / np.maximum(area(f) + area(b) - inter, 1e-9)
    return np.where(iou >= 0.3, scores[None], 0).max(axis=1)


def passes(rgb: np.ndarray, keys: tuple[str, ...]) -> dict[str, tuple[np.ndarray, float]]:
    """The picture of each pass and its scale: 640 px on the long side, own size, twice its size
    (the photo cascade's upscaled passes are where the smallest faces are found)."""
    h, w = rgb.shape[:2]
    out = {}
    for key in keys:
        s = 640 / max(h, w) if key == "640" else float(key.rstrip("x"))
        size = (round(w * s), round(h * s))
        view = rgb if s == 1 else cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
        out[key] = (view, size[0] / w)
    return out


def images(eval_dir: Path, which: str, every: int, limit: int | None):
    for name in SETS:
        lines = [json.loads(x) for x in (eval_dir / name / "labels.jsonl").read_text().splitlines() if x.strip()]
        lines = [x for x in lines if half(x["image"]) == which][::every][:limit]
        for x in lines:
            yield name, x


def scores_for(session, eval_dir: Path, which: str, every: int, limit: int | None, keys: tuple[str, ...]) -> list[dict]:
    rows = []
    for name, label in images(eval_dir, which, every, limit):
        bgr = cv2.imread(str(eval_dir / name / label["image"]), cv2.IMREAD_COLOR)
        rgb = np.ascontiguousarray(bgr[:, :, ::-1])
        faces = np.asarray(label["boxes"], np.float32).reshape(-1, 4)
        per_pass = {}
        for key, (view, scale) in passes(rgb, keys).items():
            per_pass[key] = best_scores(run(session, view), view.shape[:2], faces, scale).round(5).tolist()
        sizes = np.sqrt((faces[:, 2] - faces[:, 0]) * (faces[:, 3] - faces[:, 1])).round(1).tolist()
        rows.append({"set": name, "image": label["image"], "size": sizes, "scores": per_pass})
    return rows


def compare(full: list[dict], int8: list[dict]) -> dict:
    ratios, pass_ratios, worst = [], [], []
    for f, q in zip(full, int8, strict=True):
        fb = np.max([f["scores"][k] for k in f["scores"]], axis=0) if f["size"] else []
        qb = np.max([q["scores"][k] for k in q["scores"]], axis=0) if q["size"] else []
        for i, size in enumerate(f["size"]):
            if fb[i] >= FULL_THRESHOLD:
                ratios.append(qb[i] / fb[i])
                worst.append((qb[i] / fb[i], size, fb[i], qb[i], f["set"]))
            for k in f["scores"]:
                if f["scores"][k][i] >= FULL_THRESHOLD:
                    pass_ratios.append(q["scores"][k][i] / f["scores"][k][i])
    if not ratios:
        raise SystemExit(f"no labelled face scored {FULL_THRESHOLD} or more at full precision: nothing to compare")
    r = np.asarray(ratios)
    worst.sort()
    return {
        "faces": len(r),
        "lowest": float(r.min()),
        "p1": float(np.percentile(r, 1)),
        "p5": float(np.percentile(r, 5)),
        "median": float(np.median(r)),
        "lowest_per_pass": float(min(pass_ratios)),
        "worst": [[round(float(v), 3) if isinstance(v, float | np.floating) else v for v in w] for w in worst[:5]],
    }


def timing(sessions: dict, repeats: int) -> dict:
    bgr = cv2.imread(str(SAMPLES_DIR / "faces-maksssksksss110.jpg"), cv2.IMREAD_COLOR)
    rgb = np.ascontiguousarray(bgr[:, :, ::-1])
    out = {}
    for w, h in ((640, 384), (1920, 1088)):
        view = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_LINEAR)
        times = {k: [] for k in sessions}
        for k, s in sessions.items():
            run(s, view)  # warm-up
        for _ in range(repeats):
            for k, s in sessions.items():
                start = time.perf_counter()
                run(s, view)
                times[k].append(time.perf_counter() - start)
        out[f"{w}x{h}"] = {k: round(1000 * float(np.median(v)), 1) for k, v in times.items()}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--eval-dir", type=Path, default=DEFAULT_EVAL_DIR)
    parser.add_argument("--half", choices=("tune", "confirm"), required=True)
    parser.add_argument("--variants", nargs="+", default=["int8-qdq-minmax-r2"], help="Recipe names, or 'all'")
    parser.add_argument("--every", type=int, default=1)
    parser.add_argument("--limit", type=int, default=None, help="first N images of the half, per set")
    parser.add_argument("--work", type=Path, default=Path("/tmp/int8_ratio"), help="graphs and cached scores")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per graph and size (0: none)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--passes", nargs="+", default=["640", "1x", "2x"], help="640 (long side), 1x, 2x")
    parser.add_argument("--timing-only", action="store_true", help="per-call times only, no scores")
    parser.add_argument("--json", type=Path, default=None, help="append one JSON line per variant here")
    args = parser.parse_args(argv)
    if not (args.eval_dir / SETS[0] / "labels.jsonl").is_file():
        print(f"{args.eval_dir}: no eval data", file=sys.stderr)
        return 2
    names = list(VARIANTS) if args.variants == ["all"] else args.variants
    args.work.mkdir(parents=True, exist_ok=True)
    source, _ = builtin_weights("centerface")
    full = _session(prepare_centerface(source), args.threads, ["CPUExecutionProvider"])
    keys = tuple(args.passes)
    cached = args.work / f"full-{args.half}-{args.every}-{args.limit}-{'-'.join(keys)}.json"
    if args.timing_only:
        full_rows = []
    elif cached.is_file():
        full_rows = json.loads(cached.read_text())
    else:
        full_rows = scores_for(full, args.eval_dir, args.half, args.every, args.limit, keys)
        cached.write_text(json.dumps(full_rows))
    print(
        "| recipe | faces | lowest | 1st pct | 5th pct | median | lowest per pass | worst (size px, full, int8) "
        "| ms 640x384 full / int8 | ms 1920x1088 full / int8 | graph |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name in names:
        # The variant's graph depends on the quantizer's code too: a cached one from another
        # onnxruntime, or from before the recipe code changed, is not this variant's.
        stamp = hashlib.sha256(Path(int8_module.__file__).read_bytes()).hexdigest()[:8]
        graph_path = args.work / f"{name}-ort{onnxruntime.__version__}-{stamp}.onnx"
        if not graph_path.is_file():
            start = time.perf_counter()
            graph_path.write_bytes(build_int8("centerface", source.read_bytes(), VARIANTS[name]))
            print(f"{name}: built in {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
        data = graph_path.read_bytes()
        session = _session(data, args.threads, ["CPUExecutionProvider"])
        if args.timing_only:
            print(f"| {name} | {timing({'full': full, 'int8': session}, args.repeats)} |", flush=True)
            continue
        start = time.perf_counter()
        result = compare(full_rows, scores_for(session, args.eval_dir, args.half, args.every, args.limit, keys))
        result["seconds"] = round(time.perf_counter() - start, 1)
        result["ms"] = timing({"full": full, "int8": session}, args.repeats) if args.repeats else {}
        result |= {
            "recipe": name,
            "half": args.half,
            "every": args.every,
            "passes": keys,
            "graph": hashlib.sha256(data).hexdigest(),
        }
        ms = result["ms"]
        worst = ", ".join(f"{w[1]:.0f} px {w[2]:.3f}->{w[3]:.3f}" for w in result["worst"][:2])
        t = [f"{ms[k]['full']} / {ms[k]['int8']}" if ms else "-" for k in ("640x384", "1920x1088")]
        print(
            f"| {name} | {result['faces']} | {result['lowest']:.3f} | {result['p1']:.3f} | {result['p5']:.3f} | "
            f"{result['median']:.3f} | {result['lowest_per_pass']:.3f} | {worst} | {t[0]} | {t[1]} | "
            f"{result['graph'][:12]} |",
            flush=True,
        )
        if args.json:
            with args.json.open("a") as fh:
                fh.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
