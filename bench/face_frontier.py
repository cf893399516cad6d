"""Face recall against collateral for a grid of thresholds, margins and scale sets, on one labelled set.

Each image is run once through CenterFace for every (scale, mirrored) pass at a low floor
threshold and the raw boxes are cached (``--cache``); every grid point then only merges the passes
it uses (NMS, as ``ClassDetector`` does), pads, masks and scores them with the product's own code,
which takes seconds. This is how the default's threshold, margin and scales were chosen: read the
frontier, not one point.

    .venv/bin/python bench/face_frontier.py faces-masks --scales 1,2,3
    .venv/bin/python bench/face_frontier.py faces-wider --scales 1,2 --thresholds 0.1 0.12 0.15 --margins 0.15 0.3
    .venv/bin/python bench/face_frontier.py faces-masks --margins 0.3 --margin-px 0  # padding without pixels added
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import os
import pickle
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from anonymizer.config import load_profile
from anonymizer.detect.multiscale import ClassDetector
from anonymizer.detections import FACE, Detections, box_iou
from anonymizer.evaluate.labels import read_label_set
from anonymizer.evaluate.runner import load_rgb, score_image
from anonymizer.mask.maskers import Masker
from anonymizer.mask.regions import pad_and_clip

DEFAULT_EVAL_DIR = Path(os.environ.get("ANONYMIZER_EVAL_DIR", ROOT.parent / "shared" / "eval"))
FLOOR = 0.03


def cache_passes(engine, labels, set_dir: Path, scales: list[float], limits) -> dict[str, dict]:
    """Raw face boxes per image and (scale, mirrored) pass, in source pixels, at the floor threshold.

    The passes are the product's own (``ClassDetector.detect_passes``), with the cached scales.
    """
    detector = engine.detectors["face"]
    passes_of = ClassDetector(detector.raw, dataclasses.replace(detector.spec, scales=tuple(scales)), FACE)
    out = {}
    for label in labels:
        rgb = load_rgb(set_dir / label.image, label, limits)
        found: dict[tuple[float, bool], list] = {}
        for scale, mirrored, xyxy, conf in passes_of.detect_passes([rgb], threshold=FLOOR)[0]:
            found.setdefault((scale, mirrored), []).append((xyxy, conf))
        out[label.image] = {
            k: (np.concatenate([b for b, _ in v]).reshape(-1, 4).astype(np.float32), np.concatenate([c for _, c in v]).astype(np.float32))
            for k, v in found.items()
        }
    return out


def merged(detector: ClassDetector, passes: dict, scales: tuple[float, ...], flip: bool, threshold: float) -> Detections:
    """What the detector would report with these scales, mirroring and threshold (its own merge)."""
    used = [(b[c >= threshold], c[c >= threshold]) for (s, m), (b, c) in passes.items() if s in scales and (flip or not m)]
    used = [(b, c) for b, c in used if len(b)]
    return detector.merge([b for b, _ in used], [c for _, c in used])


def load_passes(set_name: str, set_dir: Path, labels, scales: list[float], cache: Path, profile) -> dict[str, dict]:
    """The cached raw passes of one set, computed with the product's engine on first use."""
    from anonymizer.pipeline import Engine

    cache_file = cache / f"{set_name}-{'-'.join(map(str, scales))}.pkl"
    if cache_file.is_file():
        return pickle.loads(cache_file.read_bytes())
    print(f"caching raw detections of {len(labels)} images (once) ...", file=sys.stderr, flush=True)
    passes = cache_passes(Engine(profile), labels, set_dir, scales, profile.limits)
    cache.mkdir(parents=True, exist_ok=True)
    cache_file.write_bytes(pickle.dumps(passes))
    return passes


def on_labels(dets: Detections, label) -> np.ndarray:
    """Which boxes overlap a labelled or ignore box (IoU >= 0.2): what a perfect false-positive filter keeps."""
    known = np.concatenate([label.boxes, label.ignore])  # ignore is (0, 4) when absent
    if not len(dets) or not len(known):
        return np.zeros(len(dets), bool)
    return box_iou(dets.xyxy, known).max(axis=1) >= 0.2


@dataclasses.dataclass(frozen=True)
class Scores:
    hidden: float
    small: float  # faces under 16 px
    large: float  # faces of 64 px and more: where a margin cut too far, or a dropped box, shows first
    large_lost: int
    collateral: float
    detections: int

    def cells(self) -> str:
        """hidden | hidden < 16 px | hidden >= 64 px (not hidden) | collateral, as Markdown cells."""
        return f"{self.hidden:.4f} | {self.small:.4f} | {self.large:.4f} ({self.large_lost}) | {self.collateral:.4f}"


def score_all(images, detections: list[Detections], masker: Masker, spec: dict) -> Scores:
    """Pad, mask and score each image's detections with the product's own code."""
    hidden, small, large, changed, total = [], [], [], 0, 0
    for (label, rgb), dets in zip(images, detections):
        masked = masker.apply(rgb.copy(), pad_and_clip(dets, spec, (rgb.shape[1], rgb.shape[0]), ellipse=True))
        boxes, image = score_image(label, rgb, masked, dets, 0.0)
        hidden += [b.hidden for b in boxes]
        small += [b.hidden for b in boxes if b.size_px < 16]
        large += [b.hidden for b in boxes if b.size_px >= 64]
        changed, total = changed + image.collateral_changed, total + image.collateral_total
    nan = float("nan")
    return Scores(
        float(np.mean(hidden)) if hidden else nan, float(np.mean(small)) if small else nan,
        float(np.mean(large)) if large else nan, len(large) - int(np.sum(large)),
        changed / max(total, 1), sum(len(d) for d in detections),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("set", help="set name under the evaluation folder, e.g. faces-masks")
    parser.add_argument("--eval-dir", type=Path, default=DEFAULT_EVAL_DIR)
    parser.add_argument("--scales", default="1,2,3", help="scales to cache; the grid tries each prefix (1 / 1,2 / 1,2,3)")
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.1, 0.12, 0.15, 0.2])
    parser.add_argument("--margins", type=float, nargs="+", default=[0.1, 0.15, 0.2, 0.3])
    parser.add_argument("--margin-px", type=float, default=None, help="pixels added to every margin (default: the default profile's margin_px)")
    parser.add_argument(
        "--only-labelled", action="store_true",
        help="keep only boxes overlapping a labelled or ignore box (IoU >= 0.2): the collateral of a perfect false-positive filter",
    )
    parser.add_argument("--cache", type=Path, default=Path("/tmp/anonymizer-face-frontier"))
    args = parser.parse_args(argv)

    profile = load_profile(None)
    set_dir = args.eval_dir / args.set
    if not (set_dir / "labels.jsonl").is_file():
        print(f"{set_dir}: not found", file=sys.stderr)
        return 2
    labels = read_label_set(set_dir, default_class="face")
    scales = [float(s) for s in args.scales.split(",")]
    passes = load_passes(args.set, set_dir, labels, scales, args.cache, profile)
    images = [(label, load_rgb(set_dir / label.image, label, profile.limits)) for label in labels]
    # Only the merge runs per grid point; it needs the raw model for nothing.
    detector = ClassDetector(None, profile.detect.faces, FACE)  # type: ignore[arg-type]
    masker = Masker(profile.mask)

    print(
        f"| {args.set}: scales | threshold | margin | hidden | hidden < 16 px | hidden >= 64 px (not hidden) | "
        "collateral | detections |"
    )
    print("|---|---|---|---|---|---|---|---|")
    prefixes = [tuple(scales[: k + 1]) for k in range(len(scales))]
    for used, threshold, margin in itertools.product(prefixes, args.thresholds, args.margins):
        faces = profile.detect.faces
        px = faces.margin_px if args.margin_px is None else args.margin_px
        spec = {FACE: dataclasses.replace(faces, margin=margin, margin_px=px)}
        found = [merged(detector, passes[label.image], used, faces.flip, threshold) for label, _ in images]
        if args.only_labelled:
            found = [d[on_labels(d, label)] for d, (label, _) in zip(found, images)]
        r = score_all(images, found, masker, spec)
        print(f"| {','.join(f'{s:g}' for s in used)} | {threshold:g} | {margin:g} | {r.cells()} | {r.detections} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
