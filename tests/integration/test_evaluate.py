"""`anonymizer evaluate` end to end: real engine, real photos from samples/, labels written here."""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from anonymizer.config import Profile
from anonymizer.errors import ConfigError
from anonymizer.evaluate import commands, labels
from anonymizer.evaluate.report import render_table, summarize
from anonymizer.evaluate.runner import evaluate_set

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"
SHARED_EVAL = Path(os.environ.get("ANONYMIZER_EVAL_DIR", ROOT.parent / "shared" / "eval"))

# Boxes of the shipped sample photos, from the public labels they come with (samples/SOURCES.md):
# Kaggle "Face Mask Detection" (CC0) and openalpr/benchmarks (AGPL-3.0).
SAMPLE_LABELS = [
    {
        "image": "images/faces-maksssksksss209.jpg", "width": 400, "height": 210, "class": "face",
        "boxes": [[37, 50, 63, 78], [63, 79, 88, 101], [64, 112, 91, 141], [88, 44, 112, 72], [120, 99, 150, 133],
                  [161, 102, 197, 143], [206, 51, 228, 79], [227, 124, 260, 157], [236, 91, 262, 119],
                  [338, 116, 370, 155], [374, 63, 396, 88], [267, 22, 289, 44], [344, 35, 361, 52], [183, 49, 205, 69]],
        "box_class": ["without_mask"] * 5 + ["with_mask"] + ["without_mask"] * 3 + ["with_mask"] + ["without_mask"] * 4,
    },
    {
        "image": "images/plate-12c6cb72-3ea3-49e7-b381-e0cdfc5e8960.jpg", "width": 1280, "height": 720,
        "class": "plate", "boxes": [[911, 136, 973, 167]], "complete": False,
    },
    {
        "image": "images/plate-316b64c0-55bf-4079-a1c0-d93f461a576f.jpg", "width": 1920, "height": 1080,
        "class": "plate", "boxes": [[80, 811, 259, 900]], "complete": False,
    },
]


@pytest.fixture(scope="module")
def sample_set(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sample-set")
    (root / "images").mkdir()
    for line in SAMPLE_LABELS:
        shutil.copy(SAMPLES / Path(line["image"]).name, root / line["image"])
    (root / "labels.jsonl").write_text("".join(json.dumps(line) + "\n" for line in SAMPLE_LABELS))
    return root


def run_main(argv: list[str], capsys) -> tuple[int, str, str]:
    """Run ``anonymizer evaluate`` in this process (its sub-command parser alone); return code, out, err."""
    parser = argparse.ArgumentParser(prog="anonymizer")
    commands.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code = args.func(args)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def sample_report(sample_set) -> dict:
    import contextlib
    import io

    parser = argparse.ArgumentParser(prog="anonymizer")
    commands.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["evaluate", str(sample_set), "--json"])
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert args.func(args) == 0
    return json.loads(out.getvalue())


def test_evaluate_reports_both_classes_with_size_buckets_and_groups(sample_report):
    faces, plates = sample_report["classes"]["face"], sample_report["classes"]["plate"]
    assert faces["labelled"] == 14 and plates["labelled"] == 2
    assert sum(b["labelled"] for b in faces["by_size"].values()) == 14
    assert set(faces["by_group"]) == {"with_mask", "without_mask"}
    # The face photo is completely labelled, the plate photos are not: plate precision is judged on
    # the face photo alone (where a plate-shaped text region, detect.plate_text, is a false positive).
    assert faces["precision_images"] == 1 and faces["precision"] is not None
    assert plates["precision_images"] == 1
    assert sample_report["seconds_per_megapixel"] > 0


def test_evaluate_finds_that_the_engine_hides_the_sample_faces_and_plates(sample_report):
    faces, plates = sample_report["classes"]["face"], sample_report["classes"]["plate"]
    # Large, frontal faces: the shipped engine must hide nearly all of them. Both plates are
    # hidden: the small grey one (12c6cb72, OSG 719), which the plate model never finds, by the
    # text cue (detect.plate_text).
    assert faces["hidden"] >= 0.85
    assert plates["hidden"] == 1.0
    assert not any(f["class"] == "plate" for f in sample_report["failures"])
    assert sample_report["collateral"] < 0.05


def test_every_box_not_hidden_is_listed_as_a_failure_with_image_and_box(sample_report):
    classes = sample_report["classes"]
    not_hidden = sum(round(c["labelled"] * (1 - c["hidden"])) for c in classes.values())
    assert len(sample_report["failures"]) == not_hidden
    for failure in sample_report["failures"]:
        assert failure["image"].startswith("images/") and len(failure["box"]) == 4


def test_an_anonymizer_that_changes_nothing_is_reported_as_hiding_nothing(sample_set):
    def do_nothing(rgb):
        from anonymizer.detections import Detections

        return rgb.copy(), Detections.empty()

    summary = summarize(evaluate_set(do_nothing, sample_set, limits=Profile().limits))
    for stats in summary["classes"].values():
        assert stats["recall"] == 0.0 and stats["hidden"] == 0.0
    assert summary["collateral"] == 0.0
    assert len(summary["failures"]) == 16
    table = render_table(summary)
    assert "not hidden: 16 labelled boxes" in table and "plate-316b64c0" in table


def test_an_anonymizer_that_blacks_out_everything_hides_all_but_costs_all_collateral(sample_set):
    def black_out(rgb):
        from anonymizer.detections import Detections

        return np.zeros_like(rgb), Detections.empty()

    summary = summarize(evaluate_set(black_out, sample_set, limits=Profile().limits, limit=1))
    assert summary["classes"]["face"]["hidden"] == 1.0
    # Only pixels already within the change tolerance of black stay "unchanged".
    assert summary["collateral"] >= 0.99


def test_confident_detections_off_every_label_are_listed_for_review(sample_set):
    # The first sample photo is a crowd with every face labelled: a confident box in its empty
    # corner is reported (image, class, box, score); one on a labelled face and a weak one are not.
    from anonymizer.detections import FACE, Detections

    def claims(rgb):
        boxes = np.array([[2, 180, 30, 205], [37, 50, 63, 78], [300, 180, 330, 205]], np.float32)
        return rgb.copy(), Detections(boxes, np.array([0.8, 0.9, 0.2]), np.full(3, FACE))

    summary = summarize(evaluate_set(claims, sample_set, limits=Profile().limits, limit=1))
    assert summary["possibly_unlabelled"] == [
        {"image": "images/faces-maksssksksss209.jpg", "class": "face", "box": [2.0, 180.0, 30.0, 205.0], "confidence": 0.8}
    ]
    table = render_table(summary)
    assert "possibly unlabelled: 1 detections" in table and "face [2,180,30,205] score 0.80" in table


def test_table_output_names_the_set_the_classes_and_the_collateral(sample_set, capsys):
    from anonymizer.cli import main

    code = main(["evaluate", str(sample_set), "--limit", "1"])
    out, _ = capsys.readouterr()
    assert code == 0
    assert "face" in out and "recall" in out and "hidden" in out and "collateral" in out
    # --limit 1 keeps only the face photo: no plate rows (a text region there may still be listed
    # as a possibly unlabelled plate detection).
    assert not any(line.startswith("plate ") for line in out.splitlines())


def test_a_malformed_label_line_is_a_clear_error_naming_the_line(tmp_path, capsys):
    (tmp_path / "labels.jsonl").write_text(
        json.dumps({"image": "images/a.jpg", "width": 10, "height": 10, "boxes": [[0, 0, 5, 5]], "class": "face"})
        + "\n"
        + json.dumps({"image": "images/b.jpg", "width": 10, "height": 10, "boxes": [[5, 5, 1, 1]], "class": "face"})
        + "\n"
    )
    with pytest.raises(ConfigError, match=r"labels.jsonl:2: 'boxes' has a box with x2 <= x1"):
        labels.read_label_set(tmp_path)
    code, _, err = run_main(["evaluate", str(tmp_path)], capsys)
    assert code == 2 and "labels.jsonl:2" in err


def test_boxes_without_a_class_are_refused_unless_the_folder_or_option_names_one(tmp_path):
    line = {"image": "images/a.jpg", "width": 10, "height": 10, "boxes": [[0, 0, 5, 5]]}
    (tmp_path / "labels.jsonl").write_text(json.dumps(line) + "\n")
    with pytest.raises(ConfigError, match="has no class"):
        labels.read_label_set(tmp_path)
    assert labels.read_label_set(tmp_path, default_class="plate")[0].class_id.tolist() == [1]
    named = tmp_path / "faces-mine"
    named.mkdir()
    (named / "labels.jsonl").write_text(json.dumps(line) + "\n")
    assert labels.read_label_set(named)[0].class_id.tolist() == [0]


def test_an_image_path_leaving_the_set_folder_is_refused(tmp_path):
    line = {"image": "../secret.jpg", "width": 10, "height": 10, "boxes": [], "class": "face"}
    (tmp_path / "labels.jsonl").write_text(json.dumps(line) + "\n")
    with pytest.raises(ConfigError, match="relative path inside the set"):
        labels.read_label_set(tmp_path)


def test_zero_size_ignore_boxes_are_dropped_not_refused(tmp_path):
    line = {"image": "a.jpg", "width": 10, "height": 10, "boxes": [[0, 0, 5, 5]], "ignore": [[3, 3, 3, 8], [1, 1, 2, 2]],
            "class": "face"}
    (tmp_path / "labels.jsonl").write_text(json.dumps(line) + "\n")
    assert labels.read_label_set(tmp_path)[0].ignore.tolist() == [[1, 1, 2, 2]]


@pytest.mark.skipif(not SHARED_EVAL.is_dir(), reason="../shared/eval (licensed evaluation data) is not on this machine")
@pytest.mark.parametrize("set_name", ["faces-masks", "plates-uc3m-lowres"])
def test_smoke_run_on_three_images_of_the_shared_evaluation_sets(set_name, capsys):
    set_dir = SHARED_EVAL / set_name
    if not (set_dir / "labels.jsonl").is_file():
        pytest.skip(f"{set_name} is not in {SHARED_EVAL}")
    code, out, _ = run_main(["evaluate", str(set_dir), "--limit", "3", "--json"], capsys)
    assert code == 0
    report = json.loads(out)
    assert report["images"] == 3
    cls = "face" if set_name.startswith("faces") else "plate"
    assert report["classes"][cls]["labelled"] > 0
    assert 0.0 <= report["classes"][cls]["hidden"] <= 1.0


# --------------------------------------------------------------------------- synthetic video clips


def test_clip_truth_follows_the_camera_so_a_painted_box_lands_where_the_truth_says():
    from anonymizer.evaluate import videos

    photo = np.full((300, 500, 3), 90, np.uint8)
    box = np.array([[200, 120, 260, 180]], np.float32)
    photo[120:180, 200:260] = (255, 0, 0)
    plan = videos.plan_clip((500, 300), box, seed=3, n_frames=10, size_wh=(320, 180))
    for index in (0, 5, 9):
        affine = videos.frame_affine(plan, index, (500, 300))
        frame = videos.render_frame(photo, plan, index, np.random.default_rng(0))
        truth = videos.frame_truth(affine, box, plan.size_wh)
        if not len(truth.boxes):
            continue
        x1, y1, x2, y2 = np.round(truth.boxes[0]).astype(int)
        inner = frame[y1 + 3 : y2 - 3, x1 + 6 : x2 - 6]  # away from the motion-blurred edges
        assert inner[..., 0].mean() > 200 and inner[..., 2].mean() < 60


@pytest.fixture(scope="module")
def sample_clip(tmp_path_factory):
    from anonymizer.evaluate import videos
    from anonymizer.media.image import read_photo

    line = SAMPLE_LABELS[0]
    rgb = read_photo(SAMPLES / Path(line["image"]).name, Profile().limits).rgb
    boxes = np.asarray(line["boxes"], np.float32)
    plan = videos.plan_clip((rgb.shape[1], rgb.shape[0]), boxes, seed=5, n_frames=12, size_wh=(480, 270))
    workdir = tmp_path_factory.mktemp("clip")
    return rgb, boxes, plan, workdir


def test_an_unanonymized_clip_leaks_every_object_frame(sample_clip):
    from anonymizer.evaluate import videos

    rgb, boxes, plan, workdir = sample_clip
    src = workdir / "plain.mp4"
    truths = videos.synthesize(rgb, boxes, plan, src, seed=5)
    result = videos.count_leaks("plain", src, src, truths)
    assert result.frames == 12 and result.object_frames >= 12
    assert len(result.leaked) == result.object_frames
    assert videos.leaks_per_thousand([result]) == 1000.0
    assert result.collateral_total > 0 and videos.collateral([result]) == 0.0  # nothing changed


def test_video_collateral_counts_a_mask_away_from_the_objects(sample_clip):
    from anonymizer.evaluate import videos

    rgb, boxes, plan, workdir = sample_clip
    src, dst = workdir / "src.mp4", workdir / "blacked.mp4"
    truths = videos.synthesize(rgb, boxes, plan, src, seed=5)
    frames = videos.read_clip(src)
    for frame in frames:
        frame[:40, :80] = 0  # a false mask in a corner the sample's face never reaches
    videos.write_clip(frames, dst, plan.fps)
    result = videos.count_leaks("blacked", src, dst, truths)
    share = videos.collateral([result])
    corner = 40 * 80 / result.collateral_total * len(frames)
    assert 0.5 * corner < share < 1.5 * corner + 0.01


def test_the_real_video_job_hides_the_clip_faces_in_almost_every_frame(sample_clip):
    from anonymizer.config import load_profile
    from anonymizer.evaluate import videos
    from anonymizer.pipeline import Engine

    rgb, boxes, plan, workdir = sample_clip
    engine = Engine(load_profile(None))  # the built-in default profile
    result = videos.evaluate_clip(engine, "faces", rgb, boxes, plan, workdir, seed=5)
    assert (workdir / "faces.anonymized.mp4").is_file()
    assert result.object_frames >= 12
    # Large faces, 12 frames including a dropout burst: at most a few object-frames may leak.
    assert len(result.leaked) <= 0.05 * result.object_frames
    assert (workdir / "faces.plain.mp4").is_file() and result.collateral_total > 0  # the collateral reference


def test_video_collateral_counts_masks_not_what_the_encoder_moves(sample_clip):
    # An encoder moves a share of a noisy frame's pixels past the tolerance; measured against the
    # same re-encode without masks, only the mask counts. Simulated exactly here: the "encoder"
    # adds the same noise to both clips, written losslessly.
    from anonymizer.evaluate import metrics, videos

    rgb, boxes, plan, workdir = sample_clip
    src, plain, masked = workdir / "enc.mp4", workdir / "enc.plain.mp4", workdir / "enc.masked.mp4"
    truths = videos.synthesize(rgb, boxes, plan, src, seed=5)
    rng = np.random.default_rng(1)
    noisy = []
    for frame in videos.read_clip(src):
        moved = rng.random(frame.shape[:2]) < 0.1
        frame = frame.astype(np.int16)
        frame[moved] += 40
        noisy.append(np.clip(frame, 0, 255).astype(np.uint8))
    videos.write_clip(noisy, plain, plan.fps, crf=0)
    blacked = [frame.copy() for frame in noisy]
    for frame in blacked:
        frame[:40, :80] = 0  # a false mask in a corner
    videos.write_clip(blacked, masked, plan.fps, crf=0)
    against_reference = videos.count_leaks("m", src, masked, truths, reference=plain)
    against_input = videos.count_leaks("m", src, masked, truths)
    # what the false mask alone changes outside the true boxes, counted on the frames themselves
    mask_only = sum(metrics.collateral_counts(a, b, np.concatenate([t.boxes, t.neutral]))[0] for a, b, t in zip(noisy, blacked, truths))
    assert mask_only > 0
    assert abs(against_reference.collateral_changed - mask_only) < 0.1 * mask_only
    assert against_input.collateral_changed > 2 * mask_only  # without the reference the noise counts too


def test_the_halves_split_a_set_by_the_sha1_of_each_relative_path(sample_set):
    # The fixed split of ../shared/eval/README.md: the first hex digit of SHA-1(path) 8-f = confirm.
    assert labels.half_of("images/plate-316b64c0-55bf-4079-a1c0-d93f461a576f.jpg") == "tune"  # 0d9a40...
    assert labels.half_of("images/faces-maksssksksss209.jpg") == "confirm"  # b92e0c...
    assert labels.half_of("images/plate-12c6cb72-3ea3-49e7-b381-e0cdfc5e8960.jpg") == "confirm"  # a871f5...
    everything = labels.read_label_set(sample_set)
    tune, confirm = labels.select_half(everything, "tune"), labels.select_half(everything, "confirm")
    assert [li.image for li in tune] == ["images/plate-316b64c0-55bf-4079-a1c0-d93f461a576f.jpg"]
    assert sorted(li.image for li in tune + confirm) == sorted(li.image for li in everything)
    assert labels.select_half(everything, "all") == everything
    with pytest.raises(ConfigError, match="half must be one of"):
        labels.select_half(everything, "train")


def test_evaluate_scores_only_the_half_it_is_asked_for(sample_set, capsys):
    def do_nothing(rgb):
        from anonymizer.detections import Detections

        return rgb.copy(), Detections.empty()

    summary = summarize(evaluate_set(do_nothing, sample_set, limits=Profile().limits, half="confirm"))
    assert summary["half"] == "confirm" and summary["images"] == 2
    assert summary["classes"]["face"]["labelled"] == 14 and summary["classes"]["plate"]["labelled"] == 1
    assert "(confirm half): 2 images" in render_table(summary)
    parser = argparse.ArgumentParser(prog="anonymizer")
    commands.register(parser.add_subparsers(dest="command", required=True))
    assert parser.parse_args(["evaluate", str(sample_set), "--half", "tune"]).half == "tune"
    assert parser.parse_args(["evaluate", str(sample_set)]).half == "all"
    with pytest.raises(SystemExit):
        parser.parse_args(["evaluate", str(sample_set), "--half", "train"])
