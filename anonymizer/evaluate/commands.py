"""`anonymizer evaluate SET_DIR`: measure recall and hiding on the operator's own labelled stills.

Imports inside the command functions are deliberate: ``anonymizer --help`` and every other
command build this parser without loading OpenCV, PyAV, onnxruntime, FastAPI or Celery.
"""

from __future__ import annotations

import argparse
import sys

from anonymizer.detections import CLASS_IDS
from anonymizer.evaluate.labels import HALVES


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``evaluate`` sub-command to the CLI's sub-parsers and return its parser."""
    parser = subparsers.add_parser(
        "evaluate",
        help="measure recall, hiding and collateral of a profile on a labelled image set",
        description=(
            "Run the engine with a profile over SET_DIR (images/ + labels.jsonl, see docs/evaluate.md) and "
            "report per class and object size: recall and precision at IoU >= 0.5, the share of labelled "
            "boxes really hidden in the output, the share of unlabelled pixels changed, and every box that "
            "was not hidden."
        ),
    )
    parser.add_argument("set_dir", metavar="SET_DIR", help="folder holding labels.jsonl and the images it names")
    parser.add_argument("--profile", metavar="FILE", default=None, help="profile YAML (default: the built-in default)")
    parser.add_argument("--json", action="store_true", help="print the figures and all failures as JSON")
    parser.add_argument("--limit", metavar="N", type=_positive_int, default=None, help="evaluate only the first N images")
    parser.add_argument(
        "--half",
        choices=HALVES,
        default="all",
        help="only the tune or the confirm half of the set: an image is 'confirm' when the first hex digit of "
        "the SHA-1 of its relative path is 8-f (choose rules on tune, confirm them on confirm; default all)",
    )
    parser.add_argument(
        "--class",
        dest="default_class",
        choices=sorted(CLASS_IDS),
        default=None,
        help="class of boxes whose label line names none (default: from the folder name faces-*/plates-*)",
    )
    parser.add_argument(
        "--max-failures", metavar="N", type=int, default=50,
        help="boxes not hidden, and detections possibly unlabelled, listed in the table (default 50 each)",
    )
    parser.set_defaults(func=run_evaluate, handler=run_evaluate)
    return parser


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def run_evaluate(args: argparse.Namespace) -> int:
    """Handle ``anonymizer evaluate``; return the process exit code (0 ok, 2 bad input)."""
    from anonymizer.config import load_profile
    from anonymizer.errors import AnonymizerError
    from anonymizer.evaluate.labels import read_label_set
    from anonymizer.evaluate.report import render_table, summarize, to_json
    from anonymizer.evaluate.runner import engine_anonymizer, evaluate_set
    from anonymizer.pipeline import Engine

    try:
        profile = load_profile(args.profile)
        # Read the labels before loading the models, so a malformed set fails in a moment.
        read_label_set(args.set_dir, default_class=args.default_class)
        # Stills: the engine `process` gives photos (detect.photos may name the default plan).
        engine = Engine(profile).photo_engine
        show = sys.stderr.isatty() and not args.json

        def progress(done: int, total: int) -> None:
            if show:
                print(f"\r{done}/{total} images", end="" if done < total else "\n", file=sys.stderr, flush=True)

        result = evaluate_set(
            engine_anonymizer(engine),
            args.set_dir,
            limits=profile.limits,
            profile_name=profile.name,
            profile_sha256=profile.sha256,
            models=engine.models,
            default_class=args.default_class,
            limit=args.limit,
            half=args.half,
            progress=progress,
        )
    except AnonymizerError as exc:
        print(f"anonymizer evaluate: {exc}", file=sys.stderr)
        return 2
    summary = summarize(result)
    print(to_json(summary) if args.json else render_table(summary, max_failures=args.max_failures))
    return 0
