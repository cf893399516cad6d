"""The torch path (onnx2torch, batched, letterboxed on the device) run on the CPU masks the pixels
the onnxruntime path masks: CI proves the GPU's code path without a GPU.

Tolerance: at most 1 % of the masked pixels may differ between the two paths (fp32 torch against
fp16 onnxruntime, torch's area resize against cv2.INTER_AREA), and both find the same number of
regions. Measured on these inputs: no pixel differs.
"""

from __future__ import annotations

import numpy as np
import pytest
from media_factory import FACES_PHOTO, PLATE_PHOTO, decode_rgb, load_rgb, make_video
from PIL import Image

from anonymizer.config import profile_from_dict
from anonymizer.detect.torch import torch_path_available

pytestmark = [
    pytest.mark.skipif(
        not torch_path_available(),
        reason="torch and onnx2torch (the gpu extra) are not installed: pip install 'anonymizer[gpu]'",
    ),
    # onnx2torch's Slice indexes with a list (torch deprecates it); pytest resets the filter
    # anonymizer.detect.torch sets for the process.
    pytest.mark.filterwarnings("ignore:Using a non-tuple sequence for multidimensional indexing"),
]

TOLERANCE = 0.01  # of the masked pixels
# One pass per class keeps this quick on 2 cores; a fill makes every masked pixel unambiguous, and
# a lossless encode (x264 at crf 0) leaves every unmasked pixel as the source decodes it.
# Both runtimes at full precision: the torch path always runs the shipped weights (int8 is
# onnxruntime's alone), and this compares runtimes, not precisions.
PROFILE = {
    "detect": {
        "device": "cpu",
        "threads": 2,
        "faces": {"scales": [1.0], "precision": "full"},
        "plates": {"scales": [1.0], "precision": "full"},
    },
    "mask": {"method": "fill"},
    "output": {"crf": 0},
}


@pytest.fixture(scope="module")
def engines():
    from anonymizer.pipeline import Engine

    profile = profile_from_dict(PROFILE)
    return Engine(profile), Engine(profile, backend="torch")


def faces_and_plate_picture() -> np.ndarray:
    """The crowd photo beside the plate photo's close-up car, both 400x267."""
    faces = load_rgb(FACES_PHOTO)
    car = Image.fromarray(load_rgb(PLATE_PHOTO)[600:1080, 0:720]).resize(faces.shape[1::-1])
    return np.hstack([faces, np.array(car)])


def assert_same_pixels(masked_a: np.ndarray, masked_b: np.ndarray) -> None:
    changed = masked_a.any() or masked_b.any()
    assert changed
    differ = np.count_nonzero(masked_a ^ masked_b)
    assert differ <= TOLERANCE * max(np.count_nonzero(masked_a), 1), (differ, np.count_nonzero(masked_a))


def test_the_torch_engine_is_batched_and_runs_on_the_cpu(engines) -> None:
    ort, torch_engine = engines
    assert (ort.backend, ort.batch) == ("onnxruntime", 1)
    assert (torch_engine.backend, torch_engine.device, torch_engine.batch) == ("torch", "cpu", 8)
    plates = torch_engine.detectors["plate"].raw
    assert plates.max_batch is None  # the batch-1 Reshapes were rewritten, and checked at load
    # The audit names the same shipped files; onnxruntime also names the 640x384 plate graph it
    # derives for video, which the torch path does not use.
    shipped = [{k: v for k, v in m.items() if k != "shaped_graph_sha256"} for m in ort.models]
    assert torch_engine.models == shipped
    assert "shaped_graph_sha256" not in torch_engine.models[1]


def test_torch_masks_the_pixels_onnxruntime_masks_on_a_photo(engines) -> None:
    ort, torch_engine = engines
    rgb = faces_and_plate_picture()
    out_a, regions_a = ort.anonymize_image(rgb)
    out_b, regions_b = torch_engine.anonymize_image(rgb)
    assert len(regions_a) == len(regions_b)
    assert {int(c) for c in regions_a.class_id} == {0, 1}  # faces and a plate
    assert_same_pixels((out_a != rgb).any(axis=2), (out_b != rgb).any(axis=2))


def test_torch_masks_the_pixels_onnxruntime_masks_on_a_clip(engines, tmp_path) -> None:
    ort, torch_engine = engines
    src = make_video(tmp_path / "clip.mp4", source=faces_and_plate_picture(), frames=10, size=(320, 240), audio=False)
    source = decode_rgb(src)
    outputs = []
    for name, engine in (("ort", ort), ("torch", torch_engine)):
        result = engine.process(src, tmp_path / f"{name}.mp4")
        assert result.frames == 10
        outputs.append(decode_rgb(result.output_path))
    assert torch_engine.detectors["plate"].raw.max_batch is None
    masked = [[(out != before).any(axis=2) for out, before in zip(frames, source)] for frames in outputs]
    assert_same_pixels(np.stack(masked[0]), np.stack(masked[1]))
    assert all(m.any() for m in masked[0])  # every frame had something masked
