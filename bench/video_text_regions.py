"""Does the video text cue only add masks? Its regions against the default's, on kept clips.

Runs each clip of a ``bench/eval_video.py --keep`` folder through two profiles (the real video
job, ``Engine.process``) with the tracker stage recorded (``bench/partial_masks.Recorder``) and
compares what was masked, frame by frame: face regions must be the same (the text cue is a plate
cue), and every plate region of the first profile must still be masked in the second (each of its
boxes inside the union of the second's plate regions). A leak that appears with the second
profile while its masks are a superset is the encoder's rate control (x264 spends the bits saved
on newly blurred areas elsewhere), not a mask taken away (docs/recall.md, "A text cue for plates
in video").

    .venv-test/bin/python bench/eval_video.py --kind fixed --half tune --clips-per-set 1 \\
        --fixed-frames 96 --sets faces-wider --keep /tmp/keep-fw
    .venv-test/bin/python bench/video_text_regions.py /tmp/keep-fw \\
        profiles/default.yaml bench/profiles/video-text.yaml
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from partial_masks import Recorder  # noqa: E402

from anonymizer.config import load_profile  # noqa: E402
from anonymizer.detections import FACE, PLATE, Detections  # noqa: E402
from anonymizer.pipeline import Engine  # noqa: E402


def inside_union(box: np.ndarray, regions: np.ndarray, frame_hw: tuple[int, int]) -> bool:
    """Whether every pixel of ``box`` lies inside the union of ``regions``."""
    h, w = frame_hw
    x1, y1 = max(0, int(np.floor(box[0]))), max(0, int(np.floor(box[1])))
    x2, y2 = min(w, int(np.ceil(box[2]))), min(h, int(np.ceil(box[3])))
    if x2 <= x1 or y2 <= y1:
        return True
    cover = np.zeros((y2 - y1, x2 - x1), bool)
    for rx1, ry1, rx2, ry2 in regions:
        a, b = max(0, int(np.floor(rx1)) - x1), max(0, int(np.floor(ry1)) - y1)
        c, d = min(x2 - x1, int(np.ceil(rx2)) - x1), min(y2 - y1, int(np.ceil(ry2)) - y1)
        if c > a and d > b:
            cover[b:d, a:c] = True
    return bool(cover.all())


def of_class(regions: Detections, cid: int) -> np.ndarray:
    return regions.xyxy[regions.class_id == cid]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("keep", type=Path, help="a bench/eval_video.py --keep folder")
    parser.add_argument("base", type=Path, help="the first profile (the default)")
    parser.add_argument("other", type=Path, help="the profile with the text cue")
    args = parser.parse_args()
    recorder = Recorder()
    recorder.install()
    engines = [Engine(load_profile(args.base)), Engine(load_profile(args.other))]
    # The inputs: eval_video.py keeps NAME.mp4 beside NAME.anonymized.mp4 and NAME.plain.mp4.
    clips = sorted(p for p in args.keep.glob("*.mp4") if len(p.suffixes) == 1)
    print("| clip | frames | face regions equal | first's plate regions kept | plate regions: first / second |")
    print("|---|---|---|---|---|")
    for clip in clips:
        records = []
        for engine in engines:
            with tempfile.TemporaryDirectory() as tmp:
                result = engine.process(clip, Path(tmp) / "out.mp4")
            records.append((recorder.jobs[-1], result))
        (a, ra), (b, _) = records
        hw = (ra.height, ra.width)
        faces_equal = plates_kept = 0
        plates = [0, 0]
        for index, regions in a.regions.items():
            other = b.regions[index]
            fa, fb = of_class(regions, FACE), of_class(other, FACE)
            faces_equal += int(fa.shape == fb.shape and np.array_equal(np.sort(fa, axis=0), np.sort(fb, axis=0)))
            pa, pb = of_class(regions, PLATE), of_class(other, PLATE)
            plates_kept += int(all(inside_union(box, pb, hw) for box in pa))
            plates[0] += len(pa)
            plates[1] += len(pb)
        n = len(a.regions)
        print(f"| {clip.name} | {n} | {faces_equal} of {n} | {plates_kept} of {n} | {plates[0]} / {plates[1]} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
