"""The plates' text cue in a real video job (``detect.plate_text.video``): a plate only the text
detector sees, appearing in a still scene, is masked in the output, as a tracked plate."""

from __future__ import annotations

import numpy as np
import pytest
from media_factory import decode_rgb, write_frames
from plate_text_media import PLATE_BOX, scene, text_model_present, with_plate_text

from anonymizer.config import profile_from_dict
from anonymizer.pipeline import Engine

pytestmark = pytest.mark.skipif(not text_model_present(), reason="the rapidocr-onnxruntime wheel is not installed")
TEXT_PROFILE = {"detect": {"device": "cpu", "faces": {"enabled": False}, "plate_text": {"video": "changed"}}}

APPEARS = 5  # the first frame with the plate's characters


def changed(src: np.ndarray, out: np.ndarray) -> float:
    x1, y1, x2, y2 = PLATE_BOX
    return float(np.abs(src[y1:y2, x1:x2].astype(np.float32) - out[y1:y2, x1:x2].astype(np.float32)).mean())


def test_plate_text_in_a_fixed_camera_clip_is_masked_only_with_the_video_text_cue(tmp_path) -> None:
    rng = np.random.default_rng(0)
    images = [scene() if i < APPEARS else with_plate_text(scene()) for i in range(16)]
    noisy = [np.clip(im.astype(np.int16) + rng.normal(0, 2, im.shape), 0, 255).astype(np.uint8) for im in images]
    src = write_frames(tmp_path / "plate-text.mp4", noisy)
    source = decode_rgb(src)
    for profile, expect in ((TEXT_PROFILE, True), ({"detect": {**TEXT_PROFILE["detect"], "plate_text": {}}}, False)):
        engine = Engine(profile_from_dict(profile))
        result = engine.process(src, tmp_path / f"out-{expect}.mp4")
        out = decode_rgb(tmp_path / f"out-{expect}.mp4")
        after = [changed(a, b) for a, b in zip(source[APPEARS:], out[APPEARS:])]
        if expect:
            # Found on the gated plate frames' changed areas; tracked, so the frames between two
            # plate frames (every 2nd) are masked too, and its lead reaches back before them.
            assert result.passes["plate"]["text"] >= 1, result.passes
            assert result.counts["plate"].detections >= 1
            assert min(after) > 6.0, after
        else:
            # The plate model alone leaves it readable: the cue is what masks it.
            assert "text" not in result.passes["plate"]
            assert max(after) < 6.0, after
