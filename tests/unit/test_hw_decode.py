"""Decoding on the GPU (PyAV's CUDA hwaccel, NVDEC) when asked: the same frames as the CPU decoder,
and the CPU decoder wherever there is no CUDA device."""

from __future__ import annotations

import av
import numpy as np
import pytest
from media_factory import make_video

from anonymizer.config import profile_from_dict
from anonymizer.detect.torch import cuda_available, nvidia_device_present
from anonymizer.detections import FACE, Detections
from anonymizer.mask.maskers import Masker
from anonymizer.media import video
from anonymizer.stream.stages import Mask


def frames_of(path, *, hwaccel: bool) -> list[tuple[int | None, np.ndarray]]:
    limits = profile_from_dict({}).limits
    return [(d.pts, d.rgb()) for d in video.iter_frames(path, limits, hwaccel=hwaccel)]


def test_asking_for_the_gpu_decoder_gives_the_cpu_decoders_frames(tmp_path) -> None:
    # Without a CUDA device FFmpeg cannot create one and the CPU decodes; with one, NVDEC must
    # give the same pixels (H.264 decoding is bit-exact) and the same pts.
    src = make_video(tmp_path / "clip.mp4", frames=12, size=(320, 240), audio=False)
    cpu, asked = frames_of(src, hwaccel=False), frames_of(src, hwaccel=True)
    assert [pts for pts, _ in asked] == [pts for pts, _ in cpu]
    for (_, a), (_, b) in zip(asked, cpu):
        np.testing.assert_array_equal(a, b)


@pytest.mark.skipif(nvidia_device_present(), reason="this host has an NVIDIA device: the fallback is not taken")
def test_without_a_cuda_device_the_cpu_decodes(tmp_path) -> None:
    src = make_video(tmp_path / "clip.mp4", frames=2, size=(320, 240), audio=False)
    container, on_gpu = video._open_decoding(src, True)
    container.close()
    assert on_gpu is False


@pytest.mark.gpu
@pytest.mark.skipif(not cuda_available(), reason="no CUDA device visible to torch")
def test_with_a_cuda_device_nvdec_decodes(tmp_path) -> None:
    src = make_video(tmp_path / "clip.mp4", frames=2, size=(320, 240), audio=False)
    container, on_gpu = video._open_decoding(src, True)
    container.close()
    assert on_gpu is True


def test_an_nv12_frame_is_masked_as_its_yuv420p_twin() -> None:
    # NVDEC's frames download as nv12: masking goes through yuv420p planes, never through RGB.
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    yuv = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
    nv12 = yuv.reformat(format="nv12")
    regions = Detections(np.array([[40, 40, 120, 140]], np.float32), np.ones(1, np.float32), np.full(1, FACE, np.int32))
    mask = Mask(None, profile_from_dict({}).limits, Masker(profile_from_dict({}).mask), threaded=False)  # type: ignore[arg-type]
    outputs = [mask._mask(video.DecodedFrame(0, 0, frame), regions)[0] for frame in (yuv, nv12)]
    assert all(isinstance(out, av.VideoFrame) and out.format.name == "yuv420p" for out in outputs)
    a, b = (out.to_ndarray() for out in outputs)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, yuv.to_ndarray())  # it did mask


def test_a_stream_the_gpu_fails_on_before_its_first_frame_is_decoded_on_the_cpu(tmp_path, monkeypatch) -> None:
    # Fault injection: the GPU decoder "opens" a container whose first packet does not decode
    # (NVDEC refusing a profile shows up so); the CPU must then decode the real file from frame 0.
    src = make_video(tmp_path / "clip.mp4", frames=6, size=(320, 240), audio=False)
    data = bytearray(src.read_bytes())
    start = data.find(b"mdat") + 8
    data[start : start + 2000] = bytes(2000)  # the first coded frames are zeros
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(bytes(data))
    limits = profile_from_dict({}).limits
    with pytest.raises(video.MediaError, match="at frame 0"):
        list(video.iter_frames(broken, limits))
    monkeypatch.setattr(video, "_open_decoding", lambda path, hwaccel: (video._open(broken), True))
    asked = [(d.pts, d.rgb()) for d in video.iter_frames(src, limits, hwaccel=True)]
    assert [pts for pts, _ in asked] == [pts for pts, _ in frames_of(src, hwaccel=False)]
