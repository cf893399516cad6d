"""The schema is the config: validation, the sample profile and the docs tables all come from it."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from anonymizer import config_docs
from anonymizer import schema as module
from anonymizer.config import Profile, load_profile, profile_from_dict
from anonymizer.errors import ConfigError
from anonymizer.settings.daemon import DaemonConfig, daemon_config_from_dict

ROOT = Path(__file__).resolve().parents[2]

# Profile.sha256 of the shipped profiles: journals key jobs by it, so the same settings must keep
# hashing the same. The schema kept the hashes from before it (dd2e0361..., 2557db80...,
# f5ad3983...); a new setting (detect.<class>.video_zoom, detect.<class>.video_zoom_every_frame, detect.<class>.precision,
# detect.plate_text, detect.photos, the cascade's mirrored_no_context /
# mirrored_weak_only / upscale_max_px, detect.<class>.peak_window, all three off) or a changed
# default (the photo cascade on, its cue thresholds; plates on int8 at threshold 0.038, cctv-fast
# pinned to full; the tracker's track.confirm_still_* and confirm_fast_sightings of issue 26, the fast one off;
# detect.plate_text.video and video_every of issue 26, the video text cue off;
# detect.<class>.video_zoom_max_share of issue 22, off; track.confirm_crosser_sightings of issue 26,
# weak crossers chained by their motion, on at 4; detect.<class>.detail_precision,
# video_detail_precision and detail_threshold of issue 22)
# changes them, and that is the only reason to edit these: the same content is then processed once more. (cctv-fast also lost its
# photo-only keys in issue 25: its photos get the default plan.)
SHA256_BEFORE = {
    "default.yaml": "806c315e7e0488b42021c3e8bd3375450dcbb97391048db4193a15e2eaefaff0",
    "cctv-fast.yaml": "b87037a7cbec1b630c796d00f069cd30fe891a9ac033945276aa81dd4ff6065a",
    "low-collateral.yaml": "1a4d1ac046b40110416640dc71a14236e157bb72c4c92a0ad02796c8556d3d1c",
}


def plain_keys(cls: type, instance: Any, path: str = "") -> Iterator[tuple[str, module.Key, Any]]:
    """Every plain key of a profile section, with its dotted path and default (nested sections walked)."""
    for k in module.keys_of(cls):
        value = getattr(instance, k.name)
        where = module.join(path, k.key)
        if k.section is not None:
            yield from plain_keys(k.section, value, where)
        else:
            yield where, k, value


def nested(path: str, value: Any) -> dict[str, Any]:
    """{'a': {'b': value}} for 'a.b'."""
    head, _, rest = path.partition(".")
    return {head: nested(rest, value) if rest else value}


def errors_of(data: Any) -> list[str]:
    with pytest.raises(ConfigError) as err:
        profile_from_dict(data, "p.yaml")
    return str(err.value).splitlines()


def test_the_shipped_profiles_hash_as_pinned() -> None:
    assert Profile().sha256 == SHA256_BEFORE["default.yaml"]
    for name, sha in SHA256_BEFORE.items():
        assert load_profile(ROOT / "profiles" / name).sha256 == sha, name


def test_the_generated_sample_reads_back_to_the_built_in_defaults_exactly() -> None:
    profile = profile_from_dict(yaml.safe_load(config_docs.default_profile_yaml()), "sample.yaml")
    assert profile == Profile() and profile.to_dict() == Profile().to_dict()
    assert profile.sha256 == Profile().sha256


def test_the_shipped_default_profile_is_the_generated_sample() -> None:
    # regenerate with: .venv/bin/python scripts/gen_config_docs.py
    assert (ROOT / "profiles" / "default.yaml").read_text() == config_docs.default_profile_yaml()


def test_the_docs_tables_and_the_sample_are_current() -> None:
    stale = [str(p.relative_to(ROOT)) for p in config_docs.stale(ROOT)]
    assert not stale, f"stale: {stale}; run .venv/bin/python scripts/gen_config_docs.py"


def test_every_key_appears_in_its_docs_table() -> None:
    table = (ROOT / "docs" / "configuration.md").read_text()
    for where, _, _ in plain_keys(Profile, Profile()):
        shown = where.replace("detect.faces.", "detect.<class>.").replace("detect.plates.", "detect.<class>.")
        assert f"| `{shown}` |" in table, where
    daemon = (ROOT / "docs" / "daemon.md").read_text()
    for key in sorted(module.yaml_keys(DaemonConfig) - {"retry"}):
        assert f"| `{key}" in daemon, key


def test_print_defaults_prints_the_sample(capsys: pytest.CaptureFixture[str]) -> None:
    from anonymizer.cli import main

    assert main(["validate-config", "--print-defaults"]) == 0
    assert capsys.readouterr().out == (ROOT / "profiles" / "default.yaml").read_text()


def test_a_missing_marker_is_refused() -> None:
    with pytest.raises(ValueError, match="schema:profile"):
        config_docs.with_table("no markers here\n", "profile", "| t |\n")
    text = "a\n<!-- schema:profile -->\nold\n<!-- /schema:profile -->\nb\n"
    assert config_docs.with_table(text, "profile", "new\n") == text.replace("old", "new")


def test_every_field_of_a_profile_section_is_a_declared_key() -> None:
    # A field added without ``setting`` would be unvalidated, undocumented and missing from the sample.
    for cls in _owners():
        declared = {k.name for k in module.keys_of(cls)}
        assert {f.name for f in dataclasses.fields(cls)} - declared <= {"source_path"}, cls.__name__


def _owners() -> set[type]:
    out: set[type] = set()
    todo = [Profile]
    while todo:
        cls = todo.pop()
        out.add(cls)
        todo += [k.section for k in module.keys_of(cls) if k.section is not None and k.section not in out]
    return out


@pytest.mark.parametrize(
    "section",
    sorted(
        {
            "",
            "detect",
            "detect.faces",
            "detect.plates.cascade",
            "track",
            "mask",
            "output",
            "limits",
            "retention",
            "privacy",
        }
    ),
)
def test_an_unknown_key_in_any_section_names_file_key_and_the_allowed_keys(section: str) -> None:
    where = module.join(section, "colour")
    (line,) = errors_of(nested(where, 1))
    assert line.startswith(f"p.yaml: at '{where}': unknown key; allowed keys: ")
    cls: type = Profile
    for part in filter(None, section.split(".")):
        cls = next(k.section for k in module.keys_of(cls) if k.key == part)
    assert line.split("allowed keys: ")[1].split(", ") == sorted(module.yaml_keys(cls))


BOUNDED = [
    (w, k) for w, k, _ in plain_keys(Profile, Profile()) if k.meta.minimum is not None or k.meta.maximum is not None
]


@pytest.mark.parametrize(("where", "key"), BOUNDED, ids=[w for w, _ in BOUNDED])
def test_every_bound_is_enforced_and_named(where: str, key: module.Key) -> None:
    m = key.meta
    is_list = key.base == tuple[float, ...]
    for bound, value, text in (
        (m.minimum, (m.minimum or 0) - 1, "below the minimum"),
        (m.maximum, (m.maximum or 0) + 1, "above the maximum"),
    ):
        if bound is None:
            continue
        if key.base is int:
            value = int(value)
        (line,) = errors_of(nested(where, [value] if is_list else value))
        assert line.startswith(f"p.yaml: at '{where}': "), line
        if is_list:
            assert f"between {m.minimum} and {m.maximum}" in line
        else:
            assert f"{text} {bound}" in line, line
        # The bound itself is allowed (a track threshold up to its class's threshold: raised here).
        data = nested(where, [bound] if is_list else bound)
        if key.name == "track_threshold":
            data["detect"][where.split(".")[1]]["threshold"] = 0.99
        if key.name == "detail_threshold":  # (taken only beside a differing detail precision)
            data["detect"][where.split(".")[1]].update(precision="full", detail_precision="int8")
        profile_from_dict(data, "p.yaml")


TYPED = [(w, k) for w, k, _ in plain_keys(Profile, Profile()) if k.meta.kind is None]


@pytest.mark.parametrize(("where", "key"), TYPED, ids=[w for w, _ in TYPED])
def test_every_key_refuses_a_wrong_type_naming_the_key(where: str, key: module.Key) -> None:
    # A bool is not a number (`crf: true` is a mistake) and a number is not a bool or a text.
    wrong = "many" if key.base is not str else 3
    if key.base in (int, float):
        wrong = True
    lines = errors_of(nested(where, wrong))
    assert len(lines) == 1 and lines[0].startswith(f"p.yaml: at '{where}': "), lines


def test_null_is_accepted_exactly_where_the_type_allows_it() -> None:
    for where, key, _ in plain_keys(Profile, Profile()):
        if key.nullable:
            profile = profile_from_dict(nested(where, None), "p.yaml")
            value: Any = profile
            for part in where.split("."):
                value = getattr(value, "after_s" if part == "after" else part)
            assert value is None, where
        elif where != "detect.faces.model":
            assert errors_of(nested(where, None)), where


def test_every_error_of_every_section_is_reported_in_one_round() -> None:
    lines = errors_of(
        {
            "detect": {"threads": -1, "faces": {"tile_size": 1}, "plates": {"cascade": {"cell_px": 2}}},
            "track": {"iou_match": 2},
            "mask": {"method": "blurr"},
            "output": {"crf": True},
            "limits": {"max_duration_s": "soon"},
            "retention": {"after": -1},
            "privacy": {"log_file_names": 1},
            "review": "maybe",
        }
    )
    assert [line.split("'")[1] for line in lines] == [
        "detect.threads",
        "detect.faces.tile_size",
        "detect.plates.cascade.cell_px",
        "track.iou_match",
        "mask.method",
        "output.crf",
        "limits.max_duration_s",
        "retention.after",
        "privacy.log_file_names",
        "review",
    ]
    assert "p.yaml: at 'mask.method': 'blurr' is not one of: blur, pixelate, fill" in lines
    assert "p.yaml: at 'detect.faces.tile_size': 1 is below the minimum 160" in lines
    assert "p.yaml: at 'limits.max_duration_s': expected a duration like 30s, 24h or 30d, got 'soon'" in lines


def test_plates_take_their_own_defaults_and_faces_theirs() -> None:
    p = profile_from_dict({"detect": {"plates": {"threshold": 0.3}}})
    assert p.detect.plates.model == "platedet" and p.detect.plates.tile_size == 1280
    assert p.detect.plates.cascade.always_scales == (0.5, 1.0, 2.0)
    assert p.detect.plates.track_threshold == 0.02  # min(default, threshold)
    assert p.detect.faces == Profile().detect.faces


def test_daemon_sections_name_file_key_and_bounds(tmp_path: Path) -> None:
    path = tmp_path / "daemon.yaml"
    data = {
        "state_dir": "state",
        "audit_dir": "audit",
        "colour": 1,
        "retry": {"max_attempts": 0, "shade": 1},
        "folders": [
            {
                "name": "a",
                "input": "in",
                "output": "out",
                "quarantine": "q",
                "profile": "p.yaml",
                "settle_s": "long",
                "hue": 1,
                "poll_interval_s": 0,
            }
        ],
        "broker_in_flight": 3,
    }
    with pytest.raises(ConfigError) as err:
        daemon_config_from_dict(data, path)
    text = str(err.value)
    for fragment in (
        "at 'colour': unknown key; allowed keys: api, audit_dir, audit_key, broker, broker_in_flight",
        "at 'retry.shade': unknown key; allowed keys: base_s, max_attempts, max_s",
        "at 'retry.max_attempts': 0 is below the minimum 1",
        "at 'folders[0].hue': unknown key",
        "at 'folders[0].settle_s': expected a duration like 30s, 24h or 30d, got 'long'",
        "at 'folders[0].poll_interval_s': 0.0 is below the minimum 0.05",
        "at 'broker_in_flight': only meaningful with a broker",
    ):
        assert f"{path}: {fragment}" in text, fragment
    assert all(line.startswith(f"{path}: at '") for line in text.splitlines())


def test_worker_config_names_file_key_and_bounds(tmp_path: Path) -> None:
    from anonymizer.settings.scaleout import load_worker_config

    path = tmp_path / "worker.yaml"
    path.write_text("broker: ftp://host/0\nconcurrency: 65\nlabel: x\n")
    with pytest.raises(ConfigError) as err:
        load_worker_config(path)
    text = str(err.value)
    assert f"{path}: at 'concurrency': 65 is above the maximum 64" in text
    assert f"{path}: at 'label': unknown key; allowed keys: broker, concurrency, heartbeat_s, metrics, name" in text
    assert f"{path}: at 'broker': scheme 'ftp' is not one of: redis, rediss, amqp, amqps" in text


def test_durations_read_back_from_their_written_form() -> None:
    for seconds in (0.0, 1.0, 90.0, 3600.0, 6 * 3600.0, 30 * 86400.0, 1.5):
        assert module.parse_duration(module.format_duration(seconds)) == seconds
    assert module.format_duration(6 * 3600.0) == "6h" and module.format_duration(0) == "0s"


def test_api_section_names_file_key_and_bounds(tmp_path: Path) -> None:
    from anonymizer.schema import Checker
    from anonymizer.settings.api import api_config_from_dict

    (tmp_path / "jwks.json").write_text('{"keys": []}')
    raw = {"listen": "127.0.0.1:99999", "jwks_file": "jwks.json", "issuer": "i", "audience": "a"}
    raw |= {"profiles": {"cctv": "inbox"}, "rate_per_minute": 0, "leeway_s": True, "colour": 1}
    c = Checker("daemon.yaml")
    assert api_config_from_dict(c, raw, tmp_path, {"inbox"}) is None
    for fragment in (
        "daemon.yaml: at 'api.listen': expected HOST:PORT with a port 1-65535, got '127.0.0.1:99999'",
        "daemon.yaml: at 'api.rate_per_minute': 0 is below the minimum 1",
        "daemon.yaml: at 'api.leeway_s': expected a duration like 30s, 24h or 30d, got True",
        "daemon.yaml: at 'api.colour': unknown key; allowed keys: audience, issuer, jwks_file, leeway_s, listen",
    ):
        assert any(e.startswith(fragment) for e in c.errors), fragment
    c = Checker("daemon.yaml")
    fixed = {k: v for k, v in raw.items() if k != "colour"} | {"listen": "[::1]:8443", "rate_per_minute": 5}
    api = api_config_from_dict(c, fixed | {"leeway_s": 1}, tmp_path, {"inbox"})
    if c.errors:  # only without the api extra
        assert all("needs the api extra" in e for e in c.errors), c.errors
        return
    assert api is not None and (api.host, api.port, api.rate_per_minute, api.leeway_s) == ("::1", 8443, 5, 1.0)
    assert api.jwks_file == (tmp_path / "jwks.json").resolve() and api.max_upload_bytes == 2 * 1024**3


def test_a_required_key_set_to_null_is_an_error(tmp_path: Path) -> None:
    from anonymizer.schema import Checker
    from anonymizer.settings.api import api_config_from_dict
    from anonymizer.settings.scaleout import load_worker_config

    path = tmp_path / "worker.yaml"
    path.write_text("broker: null\n")
    with pytest.raises(ConfigError, match=r"at 'broker': required key is null"):
        load_worker_config(path)
    (tmp_path / "jwks.json").write_text('{"keys": []}')
    raw = {"listen": "127.0.0.1:8443", "jwks_file": "jwks.json", "issuer": None, "audience": "a"}
    c = Checker("daemon.yaml")
    assert api_config_from_dict(c, raw | {"profiles": {"cctv": "inbox"}}, tmp_path, {"inbox"}) is None
    assert "daemon.yaml: at 'api.issuer': required key is null" in c.errors


def test_a_broker_url_without_its_scheme_names_neither_user_nor_password(tmp_path: Path) -> None:
    from anonymizer.settings.scaleout import load_worker_config

    path = tmp_path / "worker.yaml"
    path.write_text("broker: admin:s3cret@broker:6379/0\n")
    text = str(pytest.raises(ConfigError, load_worker_config, path).value)
    assert f"{path}: at 'broker': the scheme is not one of: redis, rediss, amqp, amqps" in text
    assert "admin" not in text and "s3cret" not in text
