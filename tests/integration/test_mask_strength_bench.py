"""bench/mask_strength.py on two labelled sample photos: its figures are the product's own metric.

At the profile's own CELLS, the script's hidden count and collateral must be what
``anonymizer evaluate`` measures on the same photos: each photo's pixels outside the labels
counted once, whatever the number of strengths compared.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

from anonymizer.config import load_profile
from anonymizer.evaluate.labels import half_of
from anonymizer.evaluate.runner import engine_anonymizer, evaluate_set
from anonymizer.mask.maskers import CELLS
from anonymizer.pipeline import Engine

ROOT = Path(__file__).resolve().parents[2]
PHOTO = ROOT / "samples" / "faces-maksssksksss209.jpg"
# The photo's public labels (Kaggle "Face Mask Detection", CC0; samples/SOURCES.md).
BOXES = [[37, 50, 63, 78], [63, 79, 88, 101], [64, 112, 91, 141], [88, 44, 112, 72], [120, 99, 150, 133],
         [161, 102, 197, 143], [206, 51, 228, 79], [227, 124, 260, 157], [236, 91, 262, 119],
         [338, 116, 370, 155], [374, 63, 396, 88], [267, 22, 289, 44], [344, 35, 361, 52], [183, 49, 205, 69]]  # fmt: skip
# Two names in the confirm half (the first hex digit of their SHA-1 is 8-f); the second keeps
# only half of the boxes, so that the two photos' totals differ.
NAMES = ("images/b.jpg", "images/f.jpg")


def load_bench():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("mask_strength", ROOT / "bench" / "mask_strength.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(not PHOTO.exists(), reason="samples/faces-maksssksksss209.jpg is missing")
def test_mask_strength_reports_the_hidden_count_and_collateral_evaluate_measures(tmp_path: Path, capsys) -> None:
    assert [half_of(name) for name in NAMES] == ["confirm", "confirm"]
    set_dir = tmp_path / "eval" / "tiny"
    (set_dir / "images").mkdir(parents=True)
    lines = []
    for name, boxes in zip(NAMES, (BOXES, BOXES[::2])):
        shutil.copy(PHOTO, set_dir / name)
        lines.append({"image": name, "width": 400, "height": 210, "class": "face", "boxes": boxes})
    (set_dir / "labels.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))

    args = ["--eval-dir", str(tmp_path / "eval"), "--sets", "tiny", "--half", "confirm", "--cells", f"{CELLS:g}", "3"]
    assert load_bench().main(args) == 0
    row = capsys.readouterr().out.splitlines()[-1]
    cells = [c.strip() for c in row.strip("|").split("|")]
    # | set | photos | labelled | hidden at CELLS | hidden at 3 | hidden only at the first | collateral |
    assert cells[:3] == ["tiny", "2", str(len(BOXES) + len(BOXES[::2]))]

    profile = load_profile(ROOT / "profiles" / "default.yaml")
    result = evaluate_set(
        engine_anonymizer(Engine(profile).photo_engine), set_dir, limits=profile.limits, half="confirm"
    )
    assert len(result.images) == 2 and result.images[0].collateral_total != result.images[1].collateral_total
    assert int(cells[3]) == sum(b.hidden for b in result.boxes)
    changed = sum(im.collateral_changed for im in result.images)
    total = sum(im.collateral_total for im in result.images)
    assert cells[6].split(" / ")[0] == f"{changed / total:.4f}"
