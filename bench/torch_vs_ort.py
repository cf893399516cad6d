"""The torch path (on the CPU, fp32) against onnxruntime on ../shared/eval photos: masked pixels.

One scale per class (quick: torch on the CPU is slow), mask ``fill``; for the first N photos of
each half (tune / confirm, the eval README's split) of each set it prints the regions each path
masks and the pixels masked by one path only, then totals per half.

    .venv/bin/python bench/torch_vs_ort.py            # 2 photos per half per set
    .venv/bin/python bench/torch_vs_ort.py --per 5
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from anonymizer.config import profile_from_dict  # noqa: E402
from anonymizer.pipeline import Engine  # noqa: E402

EVAL_DIR = Path(os.environ.get("ANONYMIZER_EVAL_DIR", ROOT.parent / "shared" / "eval"))
SETS = ("faces-masks", "faces-wider", "plates-openalpr", "plates-uc3m-lowres")
PROFILE = {
    "detect": {"device": "cpu", "faces": {"scales": [1.0]}, "plates": {"scales": [1.0]}},
    "mask": {"method": "fill"},
}


def half_of(rel: str) -> str:
    return "confirm" if hashlib.sha1(rel.encode()).hexdigest()[0] in "89abcdef" else "tune"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per", type=int, default=2, help="photos per half per set")
    args = parser.parse_args(argv)
    profile = profile_from_dict(PROFILE)
    ort, torch_engine = Engine(profile), Engine(profile, backend="torch")
    totals: dict[str, list[int]] = {}
    for name in SETS:
        labels = EVAL_DIR / name / "labels.jsonl"
        if not labels.is_file():
            print(f"{name}: not present, skipped")
            continue
        rels = [json.loads(line)["image"] for line in labels.read_text().splitlines() if line.strip()]
        for half in ("tune", "confirm"):
            for rel in [r for r in rels if half_of(r) == half][: args.per]:
                rgb = np.array(Image.open(EVAL_DIR / name / rel).convert("RGB"))
                out_a, regions_a = ort.anonymize_image(rgb)
                out_b, regions_b = torch_engine.anonymize_image(rgb)
                masked_a, masked_b = (out_a != rgb).any(axis=2), (out_b != rgb).any(axis=2)
                only_a, only_b = int((masked_a & ~masked_b).sum()), int((masked_b & ~masked_a).sum())
                t = totals.setdefault(half, [0] * 6)
                for i, v in enumerate((1, len(regions_a), len(regions_b), int(masked_a.sum()), only_a, only_b)):
                    t[i] += v
                print(
                    f"{name} {half} {rgb.shape[1]}x{rgb.shape[0]}: regions ort {len(regions_a)} torch "
                    f"{len(regions_b)}, masked px {int(masked_a.sum())}, ort only {only_a}, torch only {only_b}",
                    flush=True,
                )
    for half, (n, ra, rb, m, oa, ob) in totals.items():
        print(
            f"TOTAL {half}: {n} photos, regions ort {ra} torch {rb}, masked px {m}, ort only {oa}, torch only {ob} "
            f"({100 * (oa + ob) / max(m, 1):.3f} % of ort's masked px differ)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
