"""Photos: which labelled objects the masker hides at other mask strengths, on the same detections.

The masker reduces a region to ``CELLS / strength`` cells across its shorter side
(``anonymizer/mask/maskers.py``). Whether a stronger mask hides more is not obvious: the retained
detail measure is not monotonic in the cell size (docs/evaluate.md, "Mask strength"). Detection is
the expensive part and does not depend on the mask, so each photo is detected once, with the
profile's photo engine, and masked at every ``--cells`` value; each is scored with the product's
own metric (``evaluate.runner.score_image``). Reports, per set and half: labelled objects, hidden
at each value, hidden only at the current value (a loss if the other were adopted), and collateral.

    .venv-test/bin/python bench/mask_strength.py --half tune --sets faces-wider faces-masks --every 4 --cells 8 6
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from anonymizer.config import load_profile  # noqa: E402
from anonymizer.evaluate.labels import read_label_set, select_half  # noqa: E402
from anonymizer.evaluate.runner import load_rgb, score_image  # noqa: E402
from anonymizer.pipeline import Engine  # noqa: E402

DEFAULT_EVAL_DIR = Path(os.environ.get("ANONYMIZER_EVAL_DIR", ROOT.parent / "shared" / "eval"))
SETS = ("faces-wider", "faces-masks", "plates-openalpr", "plates-uc3m-lowres")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval-dir", type=Path, default=DEFAULT_EVAL_DIR)
    parser.add_argument("--sets", nargs="+", default=list(SETS))
    parser.add_argument("--half", choices=("tune", "confirm"), required=True)
    parser.add_argument("--every", type=int, default=1, help="every n-th image of the half (say so when quoting)")
    parser.add_argument(
        "--cells", nargs="+", type=float, default=[8.0, 6.0], help="CELLS values; the first is the current one"
    )
    parser.add_argument("--profile", default=str(ROOT / "profiles" / "default.yaml"))
    args = parser.parse_args(argv)
    if not args.eval_dir.is_dir():
        print(f"no eval data at {args.eval_dir}", file=sys.stderr)
        return 2
    profile = load_profile(args.profile)
    engine = Engine(profile).photo_engine
    maskers = []
    for cells in args.cells:
        masker = copy.copy(engine.masker)
        masker.cells = cells / profile.mask.strength
        maskers.append(masker)
    print(f"profile {profile.name}, half {args.half}, every {args.every}, CELLS {args.cells}")
    print(
        "| set | photos | labelled | "
        + " | ".join(f"hidden at {c:g}" for c in args.cells)
        + " | hidden only at the first | collateral |"
    )
    print("|---|---|---|" + "---|" * len(args.cells) + "---|---|")
    for set_name in args.sets:
        set_dir = args.eval_dir / set_name
        labels = select_half(read_label_set(set_dir), args.half)[:: args.every]
        hidden = [0] * len(args.cells)
        only_first = labelled = 0
        changed = [0] * len(args.cells)
        total = 0
        started = time.monotonic()
        for k, label in enumerate(labels):
            rgb = load_rgb(set_dir / label.image, label, profile.limits)
            raw = engine.detect_image(rgb)
            regions = engine.regions(raw, (rgb.shape[1], rgb.shape[0]))
            verdicts = []
            for i, masker in enumerate(maskers):
                boxes, image = score_image(label, rgb, masker.apply(rgb.copy(), regions), raw, 0.0)
                verdicts.append([b.hidden for b in boxes])
                hidden[i] += sum(verdicts[-1])
                changed[i] += image.collateral_changed
                if i == 0:  # the pixels outside the labelled boxes: the same at every strength
                    total += image.collateral_total
            labelled += len(verdicts[0])
            only_first += sum(1 for j, first in enumerate(verdicts[0]) if first and not all(v[j] for v in verdicts[1:]))
            print(f"  {set_name} {k + 1}/{len(labels)} ({time.monotonic() - started:.0f} s)", file=sys.stderr)
        coll = " / ".join(f"{c / total:.4f}" if total else "-" for c in changed)
        print(
            f"| {set_name} | {len(labels)} | {labelled} | "
            + " | ".join(map(str, hidden))
            + f" | {only_first} | {coll} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
