"""The CUDA path (onnx2torch, fp16, batched) finds what the CPU path finds. Skipped without a GPU."""

from __future__ import annotations

import numpy as np
import pytest
from media_factory import FACES_PHOTO, PLATE_PHOTO, assert_faces_changed, load_rgb, make_video

from anonymizer.config import profile_from_dict
from anonymizer.detect.torch import cuda_available
from anonymizer.detections import box_iou

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(
        not cuda_available(),
        reason="no CUDA device visible to torch (or torch, the gpu extra, is not installed: ./scripts/install.sh --gpu)",
    ),
]


def engine(device: str):
    from anonymizer.pipeline import Engine

    return Engine(profile_from_dict({"detect": {"device": device, "faces": {"scales": [1.0, 2.0]}}}))


@pytest.fixture(scope="module")
def engines():
    return engine("cpu"), engine("cuda")


@pytest.mark.parametrize("photo", [FACES_PHOTO, PLATE_PHOTO], ids=["faces", "plate"])
def test_cuda_detections_match_cpu_detections(engines, photo):
    cpu, gpu = engines
    assert gpu.device == "cuda"
    rgb = load_rgb(photo)
    a, b = cpu.detect_image(rgb), gpu.detect_image(rgb)
    confident = a[a.confidence > 0.5]
    assert len(confident) > 0
    iou = box_iou(confident.xyxy, b.xyxy)
    # every confident CPU detection has a CUDA twin (fp16 moves scores and boxes only slightly)
    assert (iou.max(axis=1) > 0.7).all()
    assert abs(len(a) - len(b)) <= max(2, 0.1 * len(a))


def test_cuda_engine_processes_a_video(tmp_path, engines):
    cpu, gpu = engines
    src = make_video(tmp_path / "clip.mp4", frames=20, size=(640, 360))
    result = gpu.process(src, tmp_path / "out.mp4")
    assert result.device == "cuda" and result.frames == 20
    assert result.counts["face"].masked_frames == 20
    # Pixels, not counts: every face the CPU path finds is changed in the CUDA path's output
    # (batched frames must come back masked in their own order).
    assert_faces_changed(cpu, src, tmp_path / "out.mp4", frames=20, min_boxes=20)


def test_the_plate_model_takes_batches_on_the_gpu(engines):
    # The batch-1 Reshapes were rewritten and the load-time check passed on the device itself;
    # a batch of crops of different shapes finds what each crop finds alone (fp16: within a pixel).
    _, gpu = engines
    raw = gpu.detectors["plate"].raw
    assert raw.max_batch is None
    rgb = load_rgb(PLATE_PHOTO)
    crops = [rgb, np.ascontiguousarray(rgb[:, ::-1]), rgb[: rgb.shape[0] // 2 + 200]]
    found = 0
    for crop, (boxes, scores) in zip(crops, raw.batch(crops, 0.25)):
        alone, alone_scores = raw(crop, 0.25)
        assert len(boxes) == len(alone)
        np.testing.assert_allclose(boxes, alone, atol=1.0)
        np.testing.assert_allclose(scores, alone_scores, atol=0.01)
        found += len(boxes)
    assert found >= 2
