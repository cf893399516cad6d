"""Fitted tiles against fixed-size tiles on the photo sets: what each hides, what it costs.

``detect.<class>.tile_fit`` shrinks the tiles of a scaled photo to the smallest size that still
overlaps its neighbours by ``tile_overlap x tile_size`` (anonymizer.detect.multiscale.tile_spans).
This runs the product's photo path (``Engine.detect_image``, regions, masker: the calls
``anonymizer evaluate`` makes) twice on every chosen photo of a half, fixed tiles first, then
fitted, interleaved photo by photo so both share the machine's load, and compares them labelled
object by labelled object:

- ``lost``: hidden with fixed tiles, not with fitted ones (the adoption rule: 0 on both halves);
- ``gained``: the reverse;
- the seconds of each engine (photo by photo, same load), and collateral (unlabelled pixels changed).

Both engines take the profile's own photo keys (``detect.photos: profile``), so the tile setting
is what differs. ``--faces-only`` disables plates in both (the face sets' labels are faces: the
plate passes are the same in both engines, a fixed-input model's tiles keep their size).

    .venv-test/bin/python bench/photo_tiles.py --half tune --sets faces-wider --every 2 --faces-only
    .venv-test/bin/python bench/photo_tiles.py --half confirm --sets faces-masks plates-openalpr --every 3
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from anonymizer.evaluate.labels import HALVES, read_label_set, select_half  # noqa: E402
from anonymizer.evaluate.runner import engine_anonymizer, load_rgb, score_image  # noqa: E402

DEFAULT_EVAL_DIR = Path(os.environ.get("ANONYMIZER_EVAL_DIR", ROOT.parent / "shared" / "eval"))
SETS = ("faces-wider", "faces-masks", "plates-openalpr", "plates-uc3m-lowres")


def profiles(path: Path | None, faces_only: bool):
    """(fixed tiles, fitted tiles): the profile with its own photo keys, tile_fit off and on for every class."""
    from anonymizer.config import load_profile

    base = load_profile(path)
    detect = replace(base.detect, photos="profile")
    if faces_only:
        detect = replace(detect, plates=replace(detect.plates, enabled=False))

    def with_fit(fit: bool):
        return replace(
            base,
            detect=replace(
                detect, faces=replace(detect.faces, tile_fit=fit), plates=replace(detect.plates, tile_fit=fit)
            ),
        )

    return with_fit(False), with_fit(True)


def compare(set_dir: Path, half: str, every: int, engines, limits) -> dict:
    labels = select_half(read_label_set(set_dir), half)[::every]
    runs = [engine_anonymizer(e) for e in engines]
    hidden = [[], []]
    seconds = [0.0, 0.0]
    collateral = [[0, 0], [0, 0]]
    for done, label in enumerate(labels, start=1):
        rgb = load_rgb(set_dir / label.image, label, limits)
        for i, run in enumerate(runs):
            start = time.perf_counter()
            masked, dets = run(rgb)
            seconds[i] += time.perf_counter() - start
            boxes, image = score_image(label, rgb, masked, dets, 0.0)
            hidden[i] += [b.hidden for b in boxes]
            collateral[i][0] += image.collateral_changed
            collateral[i][1] += image.collateral_total
        print(
            f"  {set_dir.name} {half}: {done}/{len(labels)} photos, {seconds[0]:.1f} / {seconds[1]:.1f} s",
            file=sys.stderr,
        )
    lost = sum(a and not b for a, b in zip(*hidden))
    gained = sum(b and not a for a, b in zip(*hidden))
    return {
        "set": set_dir.name,
        "half": half,
        "photos": len(labels),
        "objects": len(hidden[0]),
        "hidden": (sum(hidden[0]), sum(hidden[1])),
        "lost": lost,
        "gained": gained,
        "seconds": tuple(round(s, 1) for s in seconds),
        "collateral": tuple(round(c / max(t, 1), 4) for c, t in collateral),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", nargs="+", default=list(SETS))
    parser.add_argument("--half", choices=HALVES, default="tune")
    parser.add_argument("--every", type=int, default=1, help="every n-th photo of the half")
    parser.add_argument("--profile", type=Path, default=None, help="default: the built-in default")
    parser.add_argument("--faces-only", action="store_true", help="plates off in both engines")
    parser.add_argument("--eval-dir", type=Path, default=DEFAULT_EVAL_DIR)
    args = parser.parse_args(argv)
    missing = [s for s in args.sets if not (args.eval_dir / s / "labels.jsonl").is_file()]
    if missing:
        print(f"evaluation sets not found under {args.eval_dir}: {', '.join(missing)}", file=sys.stderr)
        return 2

    from anonymizer.media.memory import return_large_buffers
    from anonymizer.pipeline import Engine

    return_large_buffers()  # set up as the CLI sets up its own process (the seconds compare like the product's)
    fixed, fitted = profiles(args.profile, args.faces_only)
    engines = (Engine(fixed), Engine(fitted))
    print(
        "| set | half | photos | objects | hidden: fixed tiles / fitted | lost | gained | seconds: fixed / fitted (ratio) | collateral: fixed / fitted |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.sets:
        r = compare(args.eval_dir / name, args.half, args.every, engines, fixed.limits)
        ratio = r["seconds"][1] / max(r["seconds"][0], 1e-9)
        print(
            f"| {r['set']} | {r['half']} | {r['photos']} | {r['objects']} | {r['hidden'][0]} / {r['hidden'][1]} | "
            f"{r['lost']} | {r['gained']} | {r['seconds'][0]} / {r['seconds'][1]} ({ratio:.2f}) | "
            f"{r['collateral'][0]} / {r['collateral'][1]} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
