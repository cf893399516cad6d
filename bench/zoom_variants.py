"""Schedule variants for small plates on fixed cameras, measured before any becomes a setting.

Runs ``bench/eval_video.py`` (every argument after ``--``) with ``ClassSchedule._gated_passes``
(anonymizer/detect/schedule.py) patched in this process only:

* ``zoom-every``: the closer look (``video_zoom``'s windows over the changed areas) on every gated
  detector frame, not only on the full plan's (every ``video_full_every``-th one); the other gated
  frames keep their windows at the full plan's finest view too.

Only gated frames change, which the reference (gating off) never runs, so
``eval_video.py --reference-json`` may reuse a reference run with the unpatched code.

    .venv-test/bin/python bench/zoom_variants.py --variant zoom-every -- --kind crossers --half tune \\
        --clips-per-set 3 --crosser-frames 48 --sets plates-openalpr plates-uc3m-lowres --reference-json /tmp/ref.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def zoom_every() -> None:
    from anonymizer.detect import schedule

    original = schedule.ClassSchedule._gated_passes

    def gated_passes(self, full, crops, height, width):  # type: ignore[no-untyped-def]
        passes = original(self, full, crops, height, width)
        if full or not self.fixed_input or self.spec.video_zoom <= 1 or not len(crops):
            return passes
        plan = self.detector.plan(height, width, video=True)
        zoom = self.spec.video_zoom * schedule.finest_view(plan, self.spec, self.fixed_input, height, width)
        self.stats["zoomed"] += 1
        return [*passes, *schedule.zoom_windows(crops, zoom, self.fixed_input, height, width)]

    schedule.ClassSchedule._gated_passes = gated_passes  # type: ignore[method-assign]


VARIANTS = {"zoom-every": zoom_every}


def main() -> int:
    argv = sys.argv[1:]
    rest = argv[argv.index("--") + 1 :] if "--" in argv else []
    own = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", choices=sorted(VARIANTS), required=True)
    args = parser.parse_args(own)
    VARIANTS[args.variant]()
    from bench.eval_video import main as eval_main

    return eval_main(rest)


if __name__ == "__main__":
    sys.exit(main())
