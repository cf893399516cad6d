"""How many boxes CenterFace returns, and how long one call takes, at each score cut-off, full and int8.

A lower threshold is what int8 faces need to keep recall (docs/int8.md, "Recall"); this shows what
it costs per call on a crowd photo: the boxes a video frame's tracker then receives (down to
``track_threshold``) and the call's time including its decoding and NMS. Interleaved, one thread.
"cells" counts the heatmap cells above the cut-off (each becomes a box before NMS), "peaks" those
that are also the maximum of their 3x3 neighbourhood. The boxes and times are given for both
decodings (``detect.faces.peak_window``): every cell (0) and the 3x3 peaks (3).

    .venv/bin/python bench/int8_face_counts.py ../shared/eval/faces-wider/images/0--Parade/0_Parade_Parade_0_43.jpg
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from anonymizer.detect.onnx import CenterFace  # noqa: E402
from anonymizer.detect.registry import builtin_weights  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("image", type=Path)
    parser.add_argument("--width", type=int, default=640, help="the picture is resized to this width (a dense pass)")
    parser.add_argument("--cutoffs", type=float, nargs="+", default=[0.0125, 0.03, 0.05, 0.12])
    parser.add_argument("--repeats", type=int, default=3, help="median of this many calls")
    args = parser.parse_args(argv)
    rgb = np.array(Image.open(args.image).convert("RGB"))
    h, w = rgb.shape[:2]
    picture = cv2.resize(rgb, (args.width, round(h * args.width / w)))
    path, licence = builtin_weights("centerface")
    models = {
        (p, k): CenterFace(path, licence, threads=1, precision=p, peak_window=k)
        for p in ("full", "int8")
        for k in (0, 3)
    }
    heat = {}
    for p in ("full", "int8"):
        h32, w32 = -(-picture.shape[0] // 32) * 32, -(-picture.shape[1] // 32) * 32
        blob = np.zeros((1, 3, h32, w32), np.float32)
        blob[0, :, : picture.shape[0], : picture.shape[1]] = picture.transpose(2, 0, 1)
        heat[p] = models[p, 0].session.run(None, {"input.1": blob})[0][0, 0]
    peak = {p: hm == cv2.dilate(hm, np.ones((3, 3), np.uint8)) for p, hm in heat.items()}
    print(
        "| cut-off | cells full / int8 | peaks full / int8 | boxes full, cells / peaks | boxes int8, cells / peaks "
        "| ms full, cells / peaks | ms int8, cells / peaks |"
    )
    print("|---|---|---|---|---|---|---|")
    for cutoff in args.cutoffs:
        boxes = {}
        times: dict[tuple[str, int], list[float]] = {key: [] for key in models}
        for _ in range(args.repeats):
            for key, model in models.items():  # interleaved: the machine's load hits all alike
                start = time.perf_counter()
                found, _scores = model(picture, cutoff)
                times[key].append(time.perf_counter() - start)
                boxes[key] = len(found)
        ms = {key: 1000 * float(np.median(t)) for key, t in times.items()}
        cells = " / ".join(str(int((heat[p] > cutoff).sum())) for p in heat)
        peaks = " / ".join(str(int(((heat[p] > cutoff) & peak[p]).sum())) for p in heat)
        row = f"| {cutoff:g} | {cells} | {peaks} |"
        for p in ("full", "int8"):
            row += f" {boxes[p, 0]} / {boxes[p, 3]} |"
        for p in ("full", "int8"):
            row += f" {ms[p, 0]:.0f} / {ms[p, 3]:.0f} |"
        print(row, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
