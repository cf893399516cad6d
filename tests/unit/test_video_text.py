"""The plates' text cue in video (``detect.plate_text.video``): the Detect stage with the real
plate model and the real PP-OCRv4 text detector, on hand-made frames of a fixed camera."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from plate_text_media import PLATE_BOX, H, W, scene, text_model_present, with_plate_text

from anonymizer.config import Profile, profile_from_dict
from anonymizer.detect import gating
from anonymizer.detect.factory import build_detectors, build_text_cue, video_text_cue
from anonymizer.detect.text import VideoTextCue
from anonymizer.detections import PLATE
from anonymizer.errors import ConfigError
from anonymizer.stream.stages import Detect, Frame

DEMO = Path(__file__).resolve().parents[2] / "samples" / "plate-12c6cb72-3ea3-49e7-b381-e0cdfc5e8960.jpg"
TEXT_PROFILE = {"detect": {"device": "cpu", "faces": {"enabled": False}, "plate_text": {"video": "changed"}}}

pytestmark = pytest.mark.skipif(not text_model_present(), reason="the rapidocr-onnxruntime wheel is not installed")


@pytest.fixture(scope="module")
def built():
    profile = profile_from_dict(TEXT_PROFILE)
    detectors, _, _ = build_detectors(profile.detect)
    cue = video_text_cue(profile.detect, build_text_cue(profile.detect))
    assert cue is not None
    return profile, detectors, cue


def frames_of(images: list[np.ndarray]) -> list[Frame]:
    out = []
    for i, rgb in enumerate(images):
        h, w = rgb.shape[:2]
        blocks = gating.block_means(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
        out.append(Frame(i, i, (w, h), rgb=rgb, blocks=blocks))
    return out


def detect(detectors, images, text: VideoTextCue | None) -> tuple[list[Frame], Detect]:
    stage = Detect(detectors, gate=True, refresh_frames=40, text=text)
    return list(stage(iter(frames_of(images)))), stage


def on_box(found, box) -> np.ndarray:
    """Which detections' centres lie inside ``box``."""
    cx, cy = (found.xyxy[:, 0] + found.xyxy[:, 2]) / 2, (found.xyxy[:, 1] + found.xyxy[:, 3]) / 2
    return (cx >= box[0]) & (cx <= box[2]) & (cy >= box[1]) & (cy <= box[3])


def test_plate_text_appearing_on_a_fixed_camera_becomes_a_plate_detection(built) -> None:
    profile, detectors, cue = built
    images = [scene(), scene(), with_plate_text(scene()), with_plate_text(scene())]
    plain, _ = detect(detectors, images, None)
    frames, stage = detect(detectors, images, cue)
    # Frame 0 is the refresh (the whole frame, no text in it), frame 2 a gated plate frame whose
    # changed area holds the characters; frames 1 and 3 are not plate frames (every 2nd frame).
    assert stage.schedules["plate"].stats["text"] == 2
    assert stage.schedules["plate"].stats["gated"] == 1
    assert frames[1].found["plate"] is None and frames[3].found["plate"] is None
    assert len(frames[0].found["plate"]) == 0
    # The plate model alone does not see this plate: the text cue does, as a plate the tracker
    # takes as it is (a score over the class's threshold, which confirms its track).
    assert not on_box(plain[2].found["plate"], PLATE_BOX).any()
    found = frames[2].found["plate"]
    hit = on_box(found, PLATE_BOX)
    assert hit.sum() == 1
    assert found.class_id[hit][0] == PLATE
    assert found.confidence[hit][0] >= max(profile.detect.plate_text.min_score, profile.detect.plates.threshold)
    x1, y1, x2, y2 = found.xyxy[hit][0]
    assert x1 <= PLATE_BOX[0] + 10 and y1 <= PLATE_BOX[1] + 8 and x2 >= PLATE_BOX[2] - 30 and y2 >= PLATE_BOX[3] - 4


def test_the_cue_looks_only_where_the_mode_and_cadence_say(built) -> None:
    _, _, cue = built
    rgb = np.zeros((H, W, 3), np.uint8)
    whole = [[0, 0, W, H]]
    crops = np.array([[10, 20, 200, 120]], np.float32)
    changed, frames = cue, replace(cue, mode="frames")
    full_only = replace(cue, every="full")
    # A gated frame: its changed areas, in both modes; nothing changed: no pass at all.
    assert changed.areas(rgb, full=False, refresh=False, crops=crops).tolist() == crops.tolist()
    assert frames.areas(rgb, full=False, refresh=False, crops=np.zeros((0, 4), np.float32)) is None
    # A refresh: the whole frame. A frame that is not gated (moving camera, gating off): the whole
    # frame only with ``frames``.
    assert changed.areas(rgb, full=True, refresh=True, crops=None).tolist() == whole
    assert changed.areas(rgb, full=True, refresh=False, crops=None) is None
    assert frames.areas(rgb, full=False, refresh=False, crops=None).tolist() == whole
    # ``video_every: full``: the full plan's frames only.
    assert full_only.areas(rgb, full=False, refresh=False, crops=crops) is None
    assert full_only.areas(rgb, full=True, refresh=False, crops=crops).tolist() == crops.tolist()


@pytest.mark.skipif(not DEMO.is_file(), reason="the demo photo is missing from samples/")
def test_a_text_candidate_never_removes_or_changes_a_plate_detection_in_video(built) -> None:
    _, detectors, cue = built
    demo = cv2.cvtColor(cv2.imread(str(DEMO)), cv2.COLOR_BGR2RGB)
    # A refresh (the whole frame at ``side``) and a gated frame where the lower half changed.
    moved = demo.copy()
    moved[demo.shape[0] // 2 :] = np.roll(demo[demo.shape[0] // 2 :], 40, axis=1)
    images = [demo, demo, moved]
    plain, _ = detect(detectors, images, None)
    frames, stage = detect(detectors, images, cue)
    assert stage.schedules["plate"].stats["text"] == 2
    plates = added = 0
    for a, b in zip(plain, frames):
        if a.found["plate"] is None:
            assert b.found["plate"] is None
            continue
        before, after = a.found["plate"], b.found["plate"]
        # Every plate detection, unchanged and in order, then the candidates no plate box covers
        # (on the gated frame, also those its refresh found, carried where nothing changed).
        np.testing.assert_array_equal(after.xyxy[: len(before)], before.xyxy)
        np.testing.assert_array_equal(after.confidence[: len(before)], before.confidence)
        plates += len(before)
        added += len(after) - len(before)
    assert plates >= 1  # the plate model found plates (weak ones, on the gated frame): each one kept
    assert added >= 1  # and the text cue added candidates, OSG 719 among them (on the refresh)
    assert on_box(frames[0].found["plate"], (911, 136, 973, 167)).any()  # its label (samples/SOURCES.md)


def test_the_audit_names_the_text_model_on_video_only_when_it_runs() -> None:
    from anonymizer.pipeline import Engine

    on = Engine(profile_from_dict(TEXT_PROFILE))
    assert on.text_cue is not None
    sha = on.text_cue.info.sha256
    assert len(sha) == 64
    assert sha in [m["sha256"] for m in on._result("video").models]
    off = Engine(profile_from_dict({"detect": {"device": "cpu", "faces": {"enabled": False}}}))
    assert sha not in [m["sha256"] for m in off._result("video").models]
    assert sha in [m["sha256"] for m in off._result("image").models]  # photos: on by default
    # Video only: photos keep their own switch, and the audit of a photo says what ran.
    video_only = profile_from_dict(
        {**TEXT_PROFILE, "detect": {**TEXT_PROFILE["detect"], "plate_text": {"enabled": False, "video": "changed"}}}
    )
    engine = Engine(video_only)
    assert sha in [m["sha256"] for m in engine._result("video").models]
    assert sha not in [m["sha256"] for m in engine._result("image").models]


def test_the_video_keys_are_declared_and_validated() -> None:
    default = Profile().detect.plate_text
    assert default.video == "off" and default.video_every == "detector"
    with pytest.raises(ConfigError) as err:
        profile_from_dict({"detect": {"plate_text": {"video": "always", "video_every": "2"}}})
    assert "detect.plate_text.video" in str(err.value)
    assert "detect.plate_text.video_every" in str(err.value)
    # `changed` without gating has no changed areas to look at: refused at load, naming the key.
    with pytest.raises(ConfigError, match=r"detect\.plate_text\.video.*gating"):
        profile_from_dict({"detect": {"gating": False, "plate_text": {"video": "changed"}}})
    assert profile_from_dict({"detect": {"gating": False, "plate_text": {"video": "frames"}}}).detect.plate_text.video == "frames"
    # YAML 1.1 reads an unquoted `off` as false: an operator writing `video: off` means off.
    assert profile_from_dict(yaml.safe_load("detect:\n  plate_text:\n    video: off\n")).detect.plate_text.video == "off"
