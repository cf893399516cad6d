"""Peak decoding of CenterFace against decoding every cell, object by object, on one half of the face sets.

Runs the photo pipeline (``anonymizer evaluate``'s calls and scoring) twice per image: the
reference (full precision, ``detect.faces.peak_window`` as ``--ref-peak-window``, 0 = every cell
above the threshold becomes a box) and the candidate (``--peak-window``, at ``--precision`` and,
for int8, ``--threshold``, which moves the track and cue thresholds by the same factor as
bench/int8_recall.py does). It counts the labelled faces each hides, those the reference hides and
the candidate does not ("lost"), collateral (unlabelled pixels changed), the face boxes each
returns, and the detector's time.

Both runs of the same precision see the same pictures through the same graph, so an inference
call the other run already made (same input bytes) is answered from a per-image cache and
charged at the time it took: each run's time is its own decoding, NMS, cascade and masking plus
the inference calls it asked for. The halves are ../shared/eval's fixed split (its README).

    .venv/bin/python bench/peak_recall.py --half tune --sets faces-masks faces-wider --every 1 6
    .venv/bin/python bench/peak_recall.py --half tune --precision int8 --threshold 0.02  # int8 ratios
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from int8_recall import DEFAULT_EVAL_DIR, best_score, half, variant  # noqa: E402

from anonymizer.config import load_profile  # noqa: E402
from anonymizer.evaluate.labels import read_label_set  # noqa: E402
from anonymizer.evaluate.runner import engine_anonymizer, load_rgb, score_image  # noqa: E402


class CachedSession:
    """An onnxruntime session whose outputs for an input already seen (this image) are reused."""

    def __init__(self, session, cache: dict) -> None:
        self.session, self.cache = session, cache
        self.spent = 0.0  # seconds inside this proxy (real inference or a cache look-up)
        self.charged = 0.0  # seconds the calls this run asked for took, whoever ran them

    def run(self, names, feeds, *args):
        start = time.perf_counter()
        key = hashlib.sha1(next(iter(feeds.values())).tobytes()).hexdigest()
        if key not in self.cache:
            t = time.perf_counter()
            out = self.session.run(names, feeds, *args)
            self.cache[key] = (out, time.perf_counter() - t)
        out, seconds = self.cache[key]
        self.charged += seconds
        self.spent += time.perf_counter() - start
        return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--eval-dir", type=Path, default=DEFAULT_EVAL_DIR)
    parser.add_argument("--sets", nargs="+", default=["faces-masks", "faces-wider"])
    parser.add_argument("--every", type=int, nargs="+", default=[1], help="every N-th image of the half, per set")
    parser.add_argument("--limit", type=int, default=None, help="first N images of the half, per set")
    parser.add_argument("--half", choices=("tune", "confirm", "both"), required=True)
    parser.add_argument("--profile", default=None, help="profile YAML (default: the built-in default)")
    parser.add_argument("--ref-peak-window", type=int, default=0)
    parser.add_argument("--peak-window", type=int, default=3)
    parser.add_argument("--precision", choices=("full", "int8"), default="full", help="the candidate's")
    parser.add_argument("--threshold", type=float, default=None, help="the candidate's face threshold")
    parser.add_argument("--json", type=Path, default=None, help="append one JSON line per set here")
    args = parser.parse_args(argv)
    from anonymizer.pipeline import Engine

    profile = load_profile(args.profile)

    def build(window: int, precision: str, threshold: float | None):
        p = variant(profile, "face", precision, threshold)
        p = replace(p, detect=replace(p.detect, faces=replace(p.detect.faces, peak_window=window)))
        return Engine(p)

    names = ("ref", "cand")
    cache: dict = {}
    engines = {
        "ref": build(args.ref_peak_window, "full", None),
        "cand": build(args.peak_window, args.precision, args.threshold),
    }
    proxies = {}
    for name, engine in engines.items():
        raw = engine.detectors["face"].raw
        shared = cache if args.precision == "full" else {}
        raw.session = proxies[name] = CachedSession(raw.session, cache if name == "ref" else shared)
    run = {name: engine_anonymizer(e) for name, e in engines.items()}
    print(
        "| set | half | images | labelled | hidden ref | hidden cand | lost | gained | lowest cand/ref score | "
        "face boxes ref / cand | collateral ref / cand | s ref / cand |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    everies = args.every * len(args.sets) if len(args.every) == 1 else args.every
    for set_name, every in zip(args.sets, everies, strict=True):
        set_dir = args.eval_dir / set_name
        if not (set_dir / "labels.jsonl").is_file():
            print(f"{set_dir}: not found, skipped", file=sys.stderr)
            continue
        labels = [li for li in read_label_set(set_dir) if args.half == "both" or half(li.image) == args.half]
        labels = labels[::every][: args.limit] if args.limit else labels[::every]
        hidden = dict.fromkeys(names, 0)
        boxes_n = dict.fromkeys(names, 0)
        seconds = dict.fromkeys(names, 0.0)
        changed = dict.fromkeys(names, 0)
        judged = dict.fromkeys(names, 0)
        lost, gained, ratios, labelled = [], 0, [], 0
        for done, label in enumerate(labels):
            if done and done % 10 == 0:
                print(f"{set_name}: {done}/{len(labels)} images", file=sys.stderr, flush=True)
            rgb = load_rgb(set_dir / label.image, label, profile.limits)
            for proxy in proxies.values():  # one image's calls at a time (int8's cache is its own)
                proxy.cache.clear()
            outcome = {}
            for name in names:
                proxy = proxies[name]
                spent, charged = proxy.spent, proxy.charged
                start = time.perf_counter()
                masked, dets = run[name](rgb)
                wall = time.perf_counter() - start
                seconds[name] += wall - (proxy.spent - spent) + (proxy.charged - charged)
                boxes_n[name] += len(dets)
                scored, image = score_image(label, rgb, masked, dets, 0.0)
                changed[name] += image.collateral_changed
                judged[name] += image.collateral_total
                outcome[name] = [(b, best_score(b.box, dets)) for b in scored]
                hidden[name] += sum(b.hidden for b in scored)
            labelled += len(outcome["ref"])
            for (r, r_score), (c, c_score) in zip(outcome["ref"], outcome["cand"], strict=True):
                if r.hidden and not c.hidden:
                    lost.append({"image": label.image, "size_px": round(r.size_px, 1), "scores": [r_score, c_score]})
                gained += c.hidden and not r.hidden
                if r.hidden and r_score > 0:
                    ratios.append(c_score / r_score)
        coll = {n: changed[n] / max(1, judged[n]) for n in names}
        print(
            f"| {set_name} | {args.half} | {len(labels)} | {labelled} | {hidden['ref']} | {hidden['cand']} | "
            f"{len(lost)} | {gained} | {min(ratios, default=float('nan')):.3f} | {boxes_n['ref']} / {boxes_n['cand']} | "
            f"{coll['ref']:.4f} / {coll['cand']:.4f} | {seconds['ref']:.1f} / {seconds['cand']:.1f} |",
            flush=True,
        )
        for item in lost:
            print(f"  lost: {item['size_px']} px, best score ref {item['scores'][0]:.3f}, cand {item['scores'][1]:.3f}")
        if args.json:
            record = {
                "set": set_name,
                "half": args.half,
                "images": len(labels),
                "every": every,
                "labelled": labelled,
                "hidden": hidden,
                "lost": lost,
                "gained": gained,
                "lowest_ratio": min(ratios, default=None),
                "boxes": boxes_n,
                "collateral": coll,
                "seconds": seconds,
                "args": vars(args) | {"eval_dir": None, "json": None},
            }
            with args.json.open("a") as fh:
                fh.write(json.dumps(record, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
