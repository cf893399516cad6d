"""What a clip's end costs must not grow with its length (issue 25, item 11: a 6-hour export must
not die at its last frame).

The end of a video job builds the job summary from per-frame provenance (the QA timeline), closes
the encoder and the audio remux, re-decodes the output to verify it and hashes it. Each test runs
that finalisation for N and 4N frames, with real parts, and bounds the peak of what Python
allocates during it (tracemalloc: Python objects and numpy arrays, what a per-frame list or a
summary built in one go would hold).
"""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import numpy as np
from media_factory import make_video

from anonymizer.detections import DETECTED, FACE, PLATE, PREDICTED, Detections
from anonymizer.review.report import timeline_svg
from anonymizer.stream.timeline import DETECTED_BIT, MAX_BINS, Timeline


def _dets(*rows: tuple) -> Detections:
    """rows: (class, track id, source); every box the same (the timeline keeps no coordinates)."""
    if not rows:
        return Detections.empty()
    a = np.array([(10, 10, 20, 20, c, t, s, 0.9) for c, t, s in rows], np.float32)
    return Detections(a[:, :4], a[:, 7], a[:, 4].astype(int), a[:, 5].astype(int), a[:, 6].astype(int))


def _recorded(n_frames: int) -> Timeline:
    """A timeline as cctv-fast leaves it for one face and one plate on screen all along: faces
    detected every 2nd frame, plates every 3rd, the tracker's guesses between (the worst case
    for runs: a "detected" and an "interpolated" run per two frames)."""
    t = Timeline({"face": 0.2, "plate": 0.1}, max_gap_frames=12)
    none = Detections.empty()
    for i in range(n_frames):
        face = (FACE, 1, DETECTED if i % 2 == 0 else PREDICTED)
        plate = (PLATE, 2, DETECTED if i % 3 == 0 else PREDICTED)
        t.record(i, _dets(face, plate), none)
    return t


def _finalise_peak(t: Timeline, n_frames: int) -> tuple[int, dict]:
    """Peak bytes allocated while the end of a job turns the timeline into its summary, its
    JSON and the QA report's SVG."""
    tracemalloc.start()
    try:
        t.finish(n_frames)
        provenance = t.provenance()
        json.dumps(provenance)
        timeline_svg(provenance["timeline"], [])
        return tracemalloc.get_traced_memory()[1], provenance
    finally:
        tracemalloc.stop()


def test_the_provenance_summary_of_a_long_clip_is_bounded_and_hides_no_detection():
    n = 3 * MAX_BINS  # past the point where exact runs would not fit
    peak_n, prov_n = _finalise_peak(_recorded(n), n)
    peak_4n, prov_4n = _finalise_peak(_recorded(4 * n), 4 * n)
    # Exact runs grew 4x with the clip (4.7 MB against 18.7 MB here, about 90 MB per 100,000
    # frames); summarised, 0.1 MB against 0.4 MB: what still grows is the per-frame bytes'
    # temporary arrays, about 15 bytes a frame (8 MB for six hours at 25 fps).
    assert peak_4n <= 1.25 * peak_n + 16 * 4 * n, (peak_n, peak_4n)
    for prov, frames in ((prov_n, n), (prov_4n, 4 * n)):
        timeline = prov["timeline"]
        assert timeline["frames"] == frames and timeline["frames_per_bin"] == -(-frames // MAX_BINS)
        for name, runs in timeline["rows"].items():
            assert len(runs) <= 4 * MAX_BINS, name
        # Summarised, every frame with a detection still lies in a "detected" run.
        covered = np.zeros(frames, bool)
        for start, length, kind in timeline["rows"]["face"]:
            if kind == "detected":
                covered[start : start + length] = True
        assert covered[::2].all()
        assert len(prov["leak_frames"]) <= 16


def test_a_short_clip_keeps_its_exact_runs():
    t = _recorded(40)
    _, prov = _finalise_peak(t, 40)
    timeline = prov["timeline"]
    assert timeline["frames_per_bin"] == 1
    face = timeline["rows"]["face"]
    assert [r for r in face if r[2] == "detected"] == [[i, 1, "detected"] for i in range(0, 40, 2)]
    assert bytes(t.bits[FACE])[0] & DETECTED_BIT


# Faces only (the real CenterFace, one small pass): the plate model would cost minutes on 2 cores.
FACES_ONLY = """
name: test-end-of-clip
detect:
  device: cpu
  faces: {scales: [1.0], video_scales: [1.0], threshold: 0.3}
  plates: {enabled: false}
"""


def test_a_real_jobs_finalisation_does_not_grow_with_the_clip(tmp_path: Path):
    """The engine on a real clip with audio, N and 4N frames: from its last frame written to the
    summary's JSON (encoder flush, audio remux, verification decode, SHA-256, timeline, summary)."""
    from anonymizer.config import load_profile
    from anonymizer.pipeline import Engine

    (tmp_path / "faces.yaml").write_text(FACES_ONLY)
    engine = Engine(load_profile(tmp_path / "faces.yaml"))

    def finalisation_peak(frames: int) -> int:
        src = make_video(tmp_path / f"in-{frames}.mp4", frames=frames, size=(160, 120), fps=12, audio=True)

        def progress(stage: str, done: int, total: int, **_: object) -> None:
            if stage == "mask" and done == frames and not tracemalloc.is_tracing():
                tracemalloc.start()  # the last frame is written: what is allocated from here is the end's

        try:
            result = engine.process(src, tmp_path / f"out-{frames}.mp4", progress)
            json.dumps(result.summary())
            assert result.frames == frames and result.audio == "copied" and tracemalloc.is_tracing()
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    n = 16
    peak_n, peak_4n = finalisation_peak(n), finalisation_peak(4 * n)
    # Fixed costs dominate (a decoder, an encoder's flush); a per-frame structure would add its
    # size per frame 48 times over.
    assert peak_4n <= 1.5 * peak_n + 64 * 1024, (peak_n, peak_4n)
