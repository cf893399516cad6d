from pathlib import Path

import pytest

from anonymizer.config import Profile, load_profile, parse_duration, profile_from_dict
from anonymizer.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("path", sorted((ROOT / "profiles").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_profile_is_valid(path):
    profile = load_profile(path)
    assert profile.classes()


def test_default_profile_file_matches_documented_keys():
    # The shipped default must state every key, so that it documents the whole schema.
    import yaml

    data = yaml.safe_load((ROOT / "profiles" / "default.yaml").read_text())
    for section in ("detect", "track", "mask", "output", "limits", "retention", "privacy"):
        assert section in data
    defaults = Profile().to_dict()
    for cls in ("faces", "plates"):
        assert set(data["detect"][cls]) == set(defaults["detect"][cls]), cls
    for section in ("track", "mask", "output"):
        assert set(data[section]) == set(defaults[section]), section


def test_default_yaml_states_exactly_the_built_in_defaults():
    # Keys omitted from any profile take the built-in values; default.yaml documents them.
    assert load_profile(ROOT / "profiles" / "default.yaml").to_dict() == Profile().to_dict()


def test_error_names_file_key_and_allowed_values(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("mask:\n  method: blurr\n")
    with pytest.raises(ConfigError) as info:
        load_profile(bad)
    message = str(info.value)
    assert str(bad) in message and "mask.method" in message and "blur, pixelate, fill" in message


def test_all_errors_are_reported_together():
    with pytest.raises(ConfigError) as info:
        profile_from_dict({"mask": {"shape": "star"}, "output": {"crf": 99}, "detect": {"faces": {"colour": 1}}}, "p.yaml")
    lines = str(info.value).splitlines()
    assert len(lines) == 3
    assert any("detect.faces.colour" in line and "unknown key" in line for line in lines)


def test_booleans_are_not_accepted_as_numbers():
    with pytest.raises(ConfigError, match="output.crf"):
        profile_from_dict({"output": {"crf": True}})


def test_profile_is_frozen_and_hash_depends_on_settings_only():
    a = profile_from_dict({"mask": {"method": "pixelate"}}, "a.yaml")
    b = profile_from_dict({"mask": {"method": "pixelate"}}, "b.yaml")
    c = profile_from_dict({"mask": {"method": "fill"}}, "c.yaml")
    assert a.sha256 == b.sha256 != c.sha256
    with pytest.raises(AttributeError):
        a.name = "x"  # type: ignore[misc]


def test_retention_move_requires_destination_and_durations_parse():
    with pytest.raises(ConfigError, match="retention.move_to"):
        profile_from_dict({"retention": {"source": "move"}})
    profile = profile_from_dict({"retention": {"source": "delete", "after": "24h"}})
    assert profile.retention.after_s == 86400
    assert parse_duration("30d") == 30 * 86400 and parse_duration("0s") == 0
    with pytest.raises(ValueError):
        parse_duration("soon")


def test_custom_model_path_must_exist(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        profile_from_dict({"detect": {"faces": {"model": "missing.pt"}}}, "p.yaml", tmp_path)
    weights = tmp_path / "face.pt"
    weights.write_bytes(b"x")
    profile = profile_from_dict({"detect": {"faces": {"model": "face.pt"}}}, "p.yaml", tmp_path)
    assert profile.detect.faces.model == str(weights)


def test_at_least_one_class_enabled():
    with pytest.raises(ConfigError, match="at least one"):
        profile_from_dict({"detect": {"faces": {"enabled": False}, "plates": {"enabled": False}}})


def test_defaults_favour_recall():
    p = Profile()
    assert p.detect.faces.enabled and p.detect.plates.enabled
    assert p.track.lead_frames > 0 and p.track.trail_frames > 0


def test_track_threshold_is_below_threshold_null_turns_it_off():
    def faces(**kw):
        return profile_from_dict({"detect": {"faces": kw}}).detect.faces

    assert faces().track_threshold < faces().threshold
    assert faces(track_threshold=None).track_threshold is None
    # lowering threshold lowers the default hysteresis floor with it, never above threshold
    assert faces(threshold=0.03).track_threshold == 0.03
    with pytest.raises(ConfigError, match=r"detect\.faces\.track_threshold.*above threshold"):
        faces(threshold=0.2, track_threshold=0.3)


def test_video_margin_defaults_and_null_means_same_as_margin():
    def faces(**kw):
        return profile_from_dict({"detect": {"faces": kw}}).detect.faces

    assert faces().video_margin >= faces().margin
    assert faces(video_margin=None).video_margin is None
    with pytest.raises(ConfigError, match=r"detect\.faces\.video_margin"):
        faces(video_margin="wide")


def test_margin_px_is_validated_and_defaults_per_class():
    def spec(cls, **kw):
        return getattr(profile_from_dict({"detect": {cls: kw}}).detect, cls)

    assert spec("faces").margin_px > 0 and spec("plates").margin_px > 0
    assert spec("faces", margin_px=0).margin_px == 0
    with pytest.raises(ConfigError, match=r"detect\.plates\.margin_px"):
        spec("plates", margin_px=-1)


def test_video_zoom_is_off_or_an_enlargement():
    plates = profile_from_dict({"detect": {"plates": {"video_zoom": 3}}}).detect.plates
    assert plates.video_zoom == 3.0
    assert profile_from_dict({"detect": {"plates": {"video_zoom": 0}}}).detect.plates.video_zoom == 0
    for bad in (0.5, 1, 9, True):
        with pytest.raises(ConfigError, match=r"detect\.plates\.video_zoom"):
            profile_from_dict({"detect": {"plates": {"video_zoom": bad}}})


def test_confirm_sightings_is_validated():
    assert profile_from_dict({"track": {"confirm_sightings": 0}}).track.confirm_sightings == 0
    assert profile_from_dict({}).track.confirm_sightings > 0
    with pytest.raises(ConfigError, match=r"track\.confirm_sightings"):
        profile_from_dict({"track": {"confirm_sightings": -1}})
    with pytest.raises(ConfigError, match=r"track\.confirm_sightings"):
        profile_from_dict({"track": {"confirm_sightings": "often"}})


def test_low_collateral_profile_only_narrows_photo_faces():
    # Its header promises: a higher face threshold and a smaller photo padding, everything else
    # (plates, video padding, tracker, mask) the default's. Photo masks must lie inside the
    # default's for the same boxes, and video masks must be the default's exactly.
    import numpy as np

    from anonymizer.detections import FACE, Detections
    from anonymizer.mask.regions import pad_and_clip

    low, default = load_profile(ROOT / "profiles" / "low-collateral.yaml"), Profile()
    low_d, default_d = low.to_dict(), default.to_dict()
    assert low_d["detect"]["plates"] == default_d["detect"]["plates"]
    for section in ("track", "mask", "output", "limits", "retention", "privacy"):
        assert low_d[section] == default_d[section], section
    changed = {k for k, v in low_d["detect"]["faces"].items() if default_d["detect"]["faces"][k] != v}
    assert changed <= {"threshold", "margin", "video_margin"}
    assert low.detect.faces.threshold > default.detect.faces.threshold

    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 900, (200, 2))
    wh = rng.uniform(2, 300, (200, 2))
    dets = Detections(np.hstack([xy, xy + wh]), np.ones(200), np.full(200, FACE))
    for video in (False, True):
        narrow = pad_and_clip(dets, {FACE: low.detect.faces}, (1280, 1280), ellipse=True, video=video).xyxy
        wide = pad_and_clip(dets, {FACE: default.detect.faces}, (1280, 1280), ellipse=True, video=video).xyxy
        if video:
            np.testing.assert_array_equal(narrow, wide)
        else:
            assert (narrow[:, :2] >= wide[:, :2]).all() and (narrow[:, 2:] <= wide[:, 2:]).all()
            assert (narrow[:, 2:] - narrow[:, :2]).sum() < (wide[:, 2:] - wide[:, :2]).sum()


def test_retention_and_privacy_do_not_change_the_profile_hash():
    # The job key holds the profile hash: a retention edit must not make known content new again.
    base = profile_from_dict({"mask": {"method": "pixelate"}})
    edited = profile_from_dict(
        {"mask": {"method": "pixelate"}, "retention": {"source": "delete", "after": "30d"},
         "privacy": {"log_file_names": True}}
    )
    assert edited.retention != base.retention and edited.sha256 == base.sha256
