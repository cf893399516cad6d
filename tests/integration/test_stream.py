"""The streaming video path on hand-made clips, with the real models: pixels, not counts."""


import numpy as np
import pytest
from media_factory import FACES_PHOTO, decode_rgb, load_rgb, make_video, write_frames

from anonymizer.config import profile_from_dict
from anonymizer.errors import MediaError
from anonymizer.pipeline import Engine

W, H = 320, 240
# Gating with a short refresh and a full plan every third frame: every mechanism is exercised.
STREAM_PROFILE = {
    "name": "stream-test",
    "detect": {
        "device": "cpu",
        "gating": True,
        "gating_refresh_frames": 40,
        "faces": {"scales": [1.0], "video_scales": [1.0, 2.0], "threshold": 0.3, "video_full_every": 3},
        "plates": {"enabled": False},
    },
}


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine(profile_from_dict(STREAM_PROFILE))


decode = decode_rgb


def sensor_noise(image: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(image.astype(np.int16) + rng.normal(0, 3, image.shape).astype(np.int16), 0, 255).astype(np.uint8)


def still_scene() -> np.ndarray:
    photo = load_rgb(FACES_PHOTO)
    scale = max(W / photo.shape[1], H / photo.shape[0])
    import cv2

    big = cv2.resize(photo, (int(photo.shape[1] * scale) + 1, int(photo.shape[0] * scale) + 1))
    return np.ascontiguousarray(big[:H, :W])


def masked(src: np.ndarray, out: np.ndarray, box) -> bool:
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    a, b = src[y1:y2, x1:x2].astype(np.float32), out[y1:y2, x1:x2].astype(np.float32)
    return a.size > 0 and float(np.abs(a - b).mean()) > 6.0


def test_a_still_face_is_masked_in_every_frame_of_a_long_static_clip(engine, tmp_path):
    still = still_scene()
    faces = engine.detect_image(still)
    faces = faces[faces.confidence >= 0.5]
    assert len(faces) >= 2, "the sample photo shows several clear faces"
    src = write_frames(tmp_path / "static.mp4", [sensor_noise(still, i) for i in range(130)])
    result = engine.process(src, tmp_path / "out.mp4")
    passes = result.passes["face"]
    assert passes["gated"] > 100 and passes["refresh"] >= 3, passes  # the detector mostly skipped the scene
    for i, (a, b) in enumerate(zip(decode(src), decode(tmp_path / "out.mp4"))):
        for box in faces.xyxy:
            assert masked(a, b, box), (i, box.tolist())


def test_a_face_walking_into_a_static_scene_is_masked_from_its_first_visible_frame(engine, tmp_path):
    still = still_scene()
    faces = engine.detect_image(still)
    x1, y1, x2, y2 = (int(v) for v in faces.xyxy[np.argmax(faces.confidence)])
    pad = (x2 - x1) // 2
    face = still[max(0, y1 - pad) : y2 + pad, max(0, x1 - pad) : x2 + pad].copy()
    fh, fw = face.shape[:2]
    background = np.full((H, W, 3), 90, np.uint8)
    background[:, :, 1] = np.linspace(60, 160, W, dtype=np.uint8)[None, :]
    frames, boxes = [], []
    for i in range(60):
        frame = sensor_noise(background, i)
        x = -fw + 6 * (i - 10)  # enters from the left edge at frame 10, 6 px a frame
        if i >= 10:
            xs, xe = max(0, x), min(W, x + fw)
            frame[80 : 80 + fh, xs:xe] = face[:, xs - x : xe - x]
        frames.append(frame)
        # The labelled face box, in frame pixels, counted once at least half of it is inside.
        fx1, fx2 = x + (x1 - max(0, x1 - pad)), x + (x1 - max(0, x1 - pad)) + (x2 - x1)
        visible = (min(W, fx2) - max(0, fx1)) / (fx2 - fx1) if i >= 10 else 0
        boxes.append((max(0, fx1), 80 + (y1 - max(0, y1 - pad)), min(W, fx2), 80 + (y1 - max(0, y1 - pad)) + (y2 - y1)) if visible >= 0.5 else None)
    src = write_frames(tmp_path / "walk.mp4", frames)
    engine.process(src, tmp_path / "out.mp4")
    checked = 0
    for i, (a, b, box) in enumerate(zip(decode(src), decode(tmp_path / "out.mp4"), boxes)):
        if box is not None and box[2] < W:
            assert masked(a, b, box), (i, box)
            checked += 1
    assert checked >= 20


def test_a_camera_pan_turns_gating_off(engine, tmp_path):
    src = make_video(tmp_path / "pan.mp4", frames=30, size=(W, H), audio=False)
    result = engine.process(src, tmp_path / "out.mp4")
    passes = result.passes["face"]
    assert passes["camera_moved"] >= 1 and passes["refresh"] >= 2, passes


def test_threaded_and_sequential_runs_mask_the_same_pixels(tmp_path):
    # Lossless output: with lossy x264 a mask edge one pixel off moves the encoder's bits over the
    # whole frame (1-3 grey levels everywhere), which says nothing about the masks compared here.
    engine = Engine(profile_from_dict({**STREAM_PROFILE, "output": {"crf": 0}}))
    src = make_video(tmp_path / "clip.mp4", frames=20, size=(W, H))
    engine.threaded = False
    sequential = engine.process(src, tmp_path / "seq.mp4")
    engine.threaded = True
    threaded = engine.process(src, tmp_path / "thr.mp4")
    assert sequential.counts == threaded.counts and sequential.frames == threaded.frames == 20
    # The same regions, so (losslessly encoded) the same pictures, pixel for pixel.
    for a, b in zip(decode(tmp_path / "seq.mp4"), decode(tmp_path / "thr.mp4")):
        assert np.array_equal(a, b)


def test_a_decode_error_in_the_middle_leaves_no_output(engine, tmp_path):
    src = make_video(tmp_path / "clip.mp4", frames=48, size=(W, H), audio=False)
    data = bytearray(src.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 400] = bytes(range(256)) + bytes(144)  # garbage inside the coded frames
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(bytes(data))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(MediaError):
        engine.process(broken, out_dir / "broken.mp4")
    assert list(out_dir.iterdir()) == []  # neither the output nor its temporary file


def test_frames_leave_the_detect_stage_without_pixels(engine, tmp_path):
    """The tracker's look-ahead holds detections only: no picture and no block means per frame."""
    from anonymizer.stream.stages import Detect, Read

    clip = write_frames(tmp_path / "still.mp4", [sensor_noise(still_scene(), i) for i in range(6)])
    profile = engine.profile
    read = Read(clip, profile.limits, (W, H), lambda i: True, blocks=True)
    detect = Detect(engine.detectors, gate=True, refresh_frames=40)
    frames = list(detect(iter(read)))
    assert len(frames) == 6
    assert all(f.rgb is None and f.blocks is None for f in frames)
    assert any(len(f.found["face"]) for f in frames)  # it did detect on them


def test_a_shaking_fixed_camera_keeps_every_face_masked_and_detects_on_skipped_frames(tmp_path):
    # Faces on every other frame: between two detector frames a jolt moves every face, which no
    # interpolation follows, so a shake must bring the skipped frames back.
    profile = {**STREAM_PROFILE, "detect": {**STREAM_PROFILE["detect"]}}
    profile["detect"]["faces"] = {**STREAM_PROFILE["detect"]["faces"], "every_n_frames": 2}
    shaky = Engine(profile_from_dict(profile))
    still = still_scene()
    faces = shaky.detect_image(still)
    faces = faces[faces.confidence >= 0.5]
    jolts = dict(zip(range(30, 38), (40, -30, 45, -40, 30, -45, 35, -25)))  # then still again, as before
    src = write_frames(tmp_path / "shake.mp4", [sensor_noise(np.roll(still, jolts.get(i, 0), axis=1), i) for i in range(70)])
    result = shaky.process(src, tmp_path / "out.mp4")
    passes = result.passes["face"]
    assert passes["camera_moved"] >= 1 and passes["shaken"] >= 2, passes
    assert passes["gated"] > 20, passes  # still again after the shake: gated once more
    checked = 0
    for i, (a, b) in enumerate(zip(decode(src), decode(tmp_path / "out.mp4"))):
        for x1, y1, x2, y2 in faces.xyxy:
            dx = jolts.get(i, 0)
            if 0 <= x1 + dx and x2 + dx <= W:
                assert masked(a, b, (x1 + dx, y1, x2 + dx, y2)), (i, dx)
                checked += 1
    assert checked > 70


def test_frames_detected_in_batches_find_what_frames_one_by_one_find(tmp_path):
    """A batching (GPU) detector gets the passes of 8 frames per call: the cadence, a shake that
    brings back skipped frames and the refreshes that gated frames carry must not notice."""
    from anonymizer.stream.stages import Detect, Read

    profile = {**STREAM_PROFILE, "detect": {**STREAM_PROFILE["detect"], "gating_refresh_frames": 10}}
    profile["detect"]["faces"] = {**STREAM_PROFILE["detect"]["faces"], "every_n_frames": 2}
    shaky = Engine(profile_from_dict(profile))
    still = still_scene()
    jolts = dict(zip(range(13, 19), (40, -30, 45, -40, 30, -45)))
    src = write_frames(tmp_path / "shake.mp4", [sensor_noise(np.roll(still, jolts.get(i, 0), axis=1), i) for i in range(40)])
    found, stats = {}, {}
    for batch in (1, 8):
        read = Read(src, shaky.profile.limits, (W, H), lambda i: True, blocks=True)
        detect = Detect(shaky.detectors, gate=True, refresh_frames=10, batch=batch)
        found[batch] = [f.found["face"] for f in detect(iter(read))]
        stats[batch] = detect.schedules["face"].stats
    assert stats[8] == stats[1]
    assert stats[1]["shaken"] >= 2 and stats[1]["gated"] >= 5 and stats[1]["refresh"] >= 3, stats[1]
    assert len(found[8]) == len(found[1]) == 40
    for one, batched in zip(found[1], found[8]):
        assert (one is None) == (batched is None)
        if one is not None:
            np.testing.assert_array_equal(batched.xyxy, one.xyxy)
            np.testing.assert_array_equal(batched.confidence, one.confidence)


def test_a_job_stopped_mid_detection_leaves_the_detectors_usable(engine, tmp_path):
    """A stop ends the inference call in flight (onnxruntime's terminate flag): the flag must be
    cleared for the engine's next call, a photo or the next video (issue 25)."""

    class Stop(BaseException):
        pass

    def stop_at_once(stage, done, total, **_):
        if stage == "detect" and _.get("passes") is not None:
            raise Stop()

    clip = write_frames(tmp_path / "still.mp4", [sensor_noise(still_scene(), i) for i in range(12)])
    with pytest.raises(Stop):
        engine.process(clip, tmp_path / "stopped.mp4", progress=stop_at_once)
    options = [d.raw.run_options for d in engine.detectors.values() if hasattr(d.raw, "run_options")]
    assert options and not any(o.terminate for o in options)
    assert len(engine.detect_image(still_scene())) > 0
    assert engine.process(clip, tmp_path / "again.mp4").frames == 12
