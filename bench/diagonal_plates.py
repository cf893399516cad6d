"""A real plate crossing a still 1080p scene diagonally, through the whole video job.

``tests/integration/test_plate_crossers.py`` holds the default's schedule and tracker to one
horizontal crossing at 64 px a frame. This bench runs the same kind of clip in more directions:
the shipped 1080p plate photo's plate, with a little of its car, cut to ``--widths`` px wide,
crosses the shipped crowd photo (enlarged to 1920x1080, sensor noise, 25 fps) from one corner
region to the other at about 78 px a frame (and straight across), motion-blurred along its path.
Faces are off; plates run the default profile's settings.

Per case it prints, for every frame where at least half of the plate is inside the frame, what
the plate detector returned there (``F`` a box on the plate at IoU 0.3, any score the tracker
sees; ``x`` nothing on it; ``.`` not a plate detector frame) and the frames the output leaves
readable (``metrics.box_hidden``), split like the test: inside the test's reach (from
``track.max_gap_frames`` before the first sighting to as many after the last) or outside it.

    .venv-test/bin/python bench/diagonal_plates.py
    .venv-test/bin/python bench/diagonal_plates.py --widths 56 --cases down-left

A hand-made clip from shipped photos only: nothing of ../shared/eval is read.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from media_factory import judge_crossing_plate, write_crossing_plate  # noqa: E402

from anonymizer.config import load_profile, profile_from_dict  # noqa: E402
from anonymizer.pipeline import Engine  # noqa: E402

W, H = 1920, 1080
# name: (vx, vy) px a frame, start of the sprite's top-left corner
CASES = {
    "up-left": ((-40.0, -67.0), (1800, 1060)),
    "up-right": ((40.0, -67.0), (60, 1060)),
    "down-left": ((-40.0, 67.0), (1800, 0)),
    "down-right": ((40.0, 67.0), (60, 0)),
    "right": ((78.0, 0.0), (-60, 500)),
}


def run_case(engine: Engine, work: Path, width: int, velocity: tuple[float, float], start: tuple[int, int]) -> dict:
    src, dst = work / "plate.mp4", work / "plate.out.mp4"
    truths = write_crossing_plate(src, width, velocity, start, size=(W, H))
    r = judge_crossing_plate(engine, src, dst, truths)
    marks = "".join({None: ".", True: "F", False: "x"}[r["found"][i]] for i in r["visible"])
    inside = [i for i in r["leaked"] if i in r["within"]]
    outside = [i for i in r["leaked"] if i not in r["within"]]
    return {"judged": r["visible"], "marks": marks, "sightings": r["sightings"], "inside": inside, "outside": outside}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--widths", type=int, nargs="+", default=[70, 56], help="plate widths in px")
    parser.add_argument("--cases", nargs="+", choices=sorted(CASES), default=list(CASES))
    args = parser.parse_args(argv)
    default = load_profile(None)
    profile = profile_from_dict({"name": "diagonal-plates", "detect": {"device": "cpu", "faces": {"enabled": False}}})
    assert profile.detect.plates == default.detect.plates and profile.track == default.track
    engine = Engine(profile)
    print(
        "| plate px | case | px a frame | half-visible frames | plate detector (F found, x not, . not run) | leaked within reach | leaked outside |"
    )
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="anonymizer-diagonal-") as tmp:
        for width in args.widths:
            for name in args.cases:
                velocity, start = CASES[name]
                r = run_case(engine, Path(tmp), width, velocity, start)
                first = r["judged"][0] if r["judged"] else 0
                print(
                    f"| {width} | {name} | {np.hypot(*velocity):.0f} | {len(r['judged'])} (from {first}) | `{r['marks']}` "
                    f"| {r['inside'] or '-'} | {r['outside'] or '-'} |",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
