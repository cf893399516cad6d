"""A profile tuned for video never silently lowers photo recall (issue 25: `cctv-fast` masked 21
faces of a crowd photo where the default masked 77, and the install steps map the VMS folder,
where photos arrive too, to it).

Real engines, real models, a real crowd photo from samples/.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import daemon_helpers as dh

from anonymizer.config import BUILTIN_PROFILES_DIR, load_profile, profile_from_dict
from anonymizer.pipeline import Engine

pytestmark = pytest.mark.skipif(not dh.FACE_SAMPLES, reason="samples/faces-*.jpg are missing")


def faces_masked(engine: Engine, photo: Path, out: Path) -> int:
    return engine.process(photo, out).counts["face"].regions


def test_a_photo_in_a_cctv_fast_folder_gets_the_default_photo_plan(tmp_path: Path) -> None:
    photo = dh.FACE_SAMPLES[0]
    cctv = load_profile(BUILTIN_PROFILES_DIR / "cctv-fast.yaml")
    default = load_profile(BUILTIN_PROFILES_DIR / "default.yaml")
    assert cctv.detect.photos == "default"
    assert cctv.for_photos().detect.faces == default.detect.faces
    assert cctv.for_photos().detect.plates == default.detect.plates
    # ... and its video plan is its own.
    assert cctv.detect.faces.video_scales == (0.67,) and cctv.detect.faces.every_n_frames == 2

    with_cctv = faces_masked(Engine(cctv), photo, tmp_path / "cctv.jpg")
    with_default = faces_masked(Engine(default), photo, tmp_path / "default.jpg")
    # What cctv-fast did to photos before: its 0.67 scale, no mirror, threshold 0.2.
    old = yaml.safe_load((BUILTIN_PROFILES_DIR / "cctv-fast.yaml").read_text())
    old["detect"]["photos"] = "profile"
    old["detect"]["faces"].update(scales=[0.67], flip=False)
    with_old_plan = faces_masked(Engine(profile_from_dict(old)), photo, tmp_path / "old.jpg")
    print(f"faces masked on {photo.name}: cctv-fast {with_cctv}, default {with_default}, old cctv plan {with_old_plan}")
    assert with_cctv == with_default
    assert with_old_plan < with_default  # the photo is one where the old plan really lost faces


def test_validate_config_warns_where_a_profile_lowers_photo_recall(tmp_path: Path) -> None:
    lowering = tmp_path / "lowering.yaml"
    lowering.write_text(
        yaml.safe_dump({"detect": {"photos": "profile", "faces": {"scales": [1.0], "flip": False, "threshold": 0.3}}})
    )
    ignored = tmp_path / "ignored.yaml"
    ignored.write_text(yaml.safe_dump({"detect": {"faces": {"scales": [1.0, 2.0, 3.0, 4.0]}}}))
    run = dh.run_cli("validate-config", str(lowering), str(ignored), str(BUILTIN_PROFILES_DIR / "default.yaml"))
    assert run.returncode == 0, run.stderr
    warnings = [line for line in run.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2, run.stderr
    assert str(lowering) in warnings[0] and "threshold 0.3 > 0.12" in warnings[0]
    assert "scales [1.0] lack [2.0, 3.0]" in warnings[0] and "no mirrored pass" in warnings[0]
    assert str(ignored) in warnings[1] and "scales set, but photos get the default plan" in warnings[1]
