"""The engine verifies what it wrote before naming it: the one check an output gets.

A writer that "succeeds" but leaves a damaged file (a full disk that cut the tail, a muxer that
lost frames) is simulated by truncating the engine's temporary output right after the real
writer closes it. Without the verification the damaged file would be returned (and published).
"""

from __future__ import annotations

import pytest
from hostile import truncate
from media_factory import make_video

from anonymizer.errors import JobError, MediaError
from anonymizer.jobs.run import run_job
from anonymizer.media import image, video


def test_a_video_output_damaged_after_writing_is_refused_and_nothing_is_left(tmp_path, fast_engine, monkeypatch):
    src = make_video(tmp_path / "src.mp4", frames=12, audio=False)
    real_close = video.VideoWriter.close

    def close_then_lose_the_tail(self):  # type: ignore[no-untyped-def]
        real_close(self)
        truncate(self.dst)

    monkeypatch.setattr(video.VideoWriter, "close", close_then_lose_the_tail)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(JobError, match="output failed verification"):
        run_job(fast_engine, src, out / "clip.mp4")
    assert list(out.iterdir()) == [], "neither the damaged output nor its temporary may remain"
    assert src.exists()


def test_a_photo_output_damaged_after_writing_is_refused(tmp_path, fast_engine, monkeypatch):
    from daemon_helpers import FACE_SAMPLES

    real_write = image.write_photo

    def write_then_lose_the_tail(photo, rgb, dst, output):  # type: ignore[no-untyped-def]
        real_write(photo, rgb, dst, output)
        truncate(dst, 0.3)

    monkeypatch.setattr("anonymizer.pipeline.write_photo", write_then_lose_the_tail)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(JobError, match="output failed verification"):
        fast_engine.process(FACE_SAMPLES[0], out / "face.jpg")
    assert list(out.iterdir()) == []


def test_a_verified_output_carries_the_sha256_of_the_file_as_named(tmp_path, fast_engine):
    from anonymizer.durable import sha256_file

    src = make_video(tmp_path / "src.mp4", frames=6, audio=False)
    done = run_job(fast_engine, src, tmp_path / "clip.mp4")
    assert (done.sha256, done.size) == sha256_file(tmp_path / "clip.mp4")
    assert "verify_s" in done.summary["timings"]


def test_every_job_gives_the_inference_arena_back_even_a_failed_one(tmp_path, fast_engine, monkeypatch):
    # A daemon idle after a large photo would otherwise hold its largest pass (Engine.release_memory).
    import anonymizer.pipeline as pipeline

    released = []
    real_release = pipeline.release_shared_arena
    monkeypatch.setattr(pipeline, "release_shared_arena", lambda: released.append(real_release()))
    src = make_video(tmp_path / "src.mp4", frames=6, audio=False)
    run_job(fast_engine, src, tmp_path / "clip.mp4")
    assert released == [True]
    (tmp_path / "junk.mp4").write_bytes(b"not a video at all" * 100)
    with pytest.raises(MediaError):
        run_job(fast_engine, tmp_path / "junk.mp4", tmp_path / "other.mp4")
    assert released == [True, True]


def test_a_failed_release_neither_fails_a_verified_job_nor_replaces_a_failure(tmp_path, fast_engine, monkeypatch):
    import anonymizer.pipeline as pipeline

    def broken() -> bool:
        raise RuntimeError("onnxruntime refused the shrink")

    monkeypatch.setattr(pipeline, "release_shared_arena", broken)
    src = make_video(tmp_path / "src.mp4", frames=6, audio=False)
    done = run_job(fast_engine, src, tmp_path / "clip.mp4")
    assert done.path.exists()
    (tmp_path / "junk.mp4").write_bytes(b"not a video at all" * 100)
    with pytest.raises(MediaError):  # the job's own verdict, not the release's error
        run_job(fast_engine, tmp_path / "junk.mp4", tmp_path / "other.mp4")
