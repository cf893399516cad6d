"""The api: and buckets: sections of the daemon config: valid ones load into frozen dataclasses,
mistakes are reported all at once, naming file, key and allowed values."""

from __future__ import annotations

from pathlib import Path

import daemon_helpers as dh
import pytest
import yaml

from anonymizer.errors import ConfigError
from anonymizer.settings.daemon import load_daemon_config


def needs_extra() -> None:
    for name in ("fastapi", "uvicorn", "jwt", "boto3"):
        pytest.importorskip(name, reason="the api extra is not installed (pip install -e '.[api]')")


def config(tmp_path: Path, **top) -> Path:
    profile = dh.write_fast_profile(tmp_path / "fast.yaml")
    (tmp_path / "jwks.json").write_text('{"keys": []}')
    folder = dh.folder_entry(tmp_path, "inbox", profile)
    return dh.write_daemon_config(tmp_path / "daemon.yaml", [folder], **top)


API = {
    "listen": "127.0.0.1:8443",
    "jwks_file": "jwks.json",
    "issuer": "https://idp.test",
    "audience": "anonymizer",
    "profiles": {"cctv": "inbox"},
}
BUCKET = {"name": "archive", "folder": "inbox", "source": {"bucket": "raw"}, "sink": {"bucket": "anon"}}


def test_valid_sections_load_with_their_defaults(tmp_path: Path) -> None:
    needs_extra()
    cfg = load_daemon_config(
        config(tmp_path, api=API, buckets=[BUCKET | {"sse": {"mode": "aws:kms", "kms_key_id": "k"}}])
    )
    assert (cfg.api.host, cfg.api.port, cfg.api.folder_for("cctv"), cfg.api.folder_for("other")) == (
        "127.0.0.1",
        8443,
        "inbox",
        None,
    )
    assert cfg.api.jwks_file == (tmp_path / "jwks.json").resolve()  # relative to the config file
    (bucket,) = cfg.buckets
    assert (bucket.retention, bucket.source_prefix, bucket.upload_args()) == (
        "keep",
        "",
        {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": "k"},
    )
    assert load_daemon_config(config(tmp_path)).api is None


def test_every_mistake_is_reported_with_its_key_and_the_allowed_values(tmp_path: Path) -> None:
    needs_extra()
    bad_api = API | {
        "listen": "8443",
        "profiles": {"cctv": "nowhere", "../x": "inbox"},
        "tls_cert": "c.pem",
        "bogus": 1,
    }
    bad_bucket = BUCKET | {
        "retention": "shred",
        "folder": "nowhere",
        "sink": {"bucket": "raw"},
        "source": {"bucket": "raw", "prefix": "/in"},
    }
    path = config(tmp_path, api=bad_api, buckets=[bad_bucket])
    with pytest.raises(ConfigError) as err:
        load_daemon_config(path)
    text = str(err.value)
    for expected in (
        "at 'api.listen': expected HOST:PORT",
        "at 'api.profiles.cctv': 'nowhere' is not a folder of this config; allowed: inbox",
        "at 'api.profiles.../x': a profile name is",
        "at 'api.tls_cert'",
        "at 'api.bogus': unknown key",
        "at 'buckets[0].retention': 'shred' is not one of: keep, delete",
        "at 'buckets[0].folder': 'nowhere' is not a folder",
        "at 'buckets[0].source.prefix'",
    ):
        assert expected in text, (expected, text)
    assert str(path) in text
    data = yaml.safe_load(path.read_text())
    data["buckets"] = [
        BUCKET | {"source": {"bucket": "raw", "prefix": "in/"}, "sink": {"bucket": "raw", "prefix": "out/"}}
    ]
    data.pop("api")
    path.write_text(yaml.safe_dump(data))
    load_daemon_config(path)  # same bucket, separate prefixes: fine
    data["buckets"] = [BUCKET | {"sink": {"bucket": "raw"}}]
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match="must not contain each other"):
        load_daemon_config(path)


def _commented_block(text: str, start: str) -> str:
    lines = text.splitlines()
    i = lines.index(start)
    block = []
    for line in lines[i:]:
        if not line.startswith("#"):
            break
        block.append(line[2:])
    return "\n".join(block)


def test_the_commented_examples_in_the_shipped_config_use_only_valid_keys() -> None:
    needs_extra()
    from anonymizer.config import Checker
    from anonymizer.settings.api import api_config_from_dict
    from anonymizer.settings.buckets import buckets_from_list

    text = (dh.REPO / "systemd" / "daemon.example.yaml").read_text()
    api = yaml.safe_load(_commented_block(text, "# api:"))["api"]
    buckets = yaml.safe_load(_commented_block(text, "# buckets:"))["buckets"]
    c = Checker("daemon.example.yaml")
    api_config_from_dict(c, api, Path("/"), {"api-cctv"})
    assert len(buckets_from_list(c, buckets, {"s3-scratch"})) == 1
    # /etc/anonymizer/... does not exist on a test machine; nothing else may fail.
    assert all("is not an existing file" in e for e in c.errors), c.errors


def test_without_the_api_extra_the_sections_are_refused_naming_the_extra(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = config(tmp_path, api=API, buckets=[BUCKET])
    block = "import sys\nfor n in ('fastapi', 'uvicorn', 'boto3'):\n    sys.modules[n] = None\n"
    code = block + f"from anonymizer.cli import main\nsys.exit(main(['validate-config', {str(path)!r}]))"
    proc = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120, cwd=dh.REPO
    )
    assert proc.returncode == 1
    assert "at 'api': needs the api extra" in proc.stderr and "missing: fastapi, uvicorn" in proc.stderr
    assert "at 'buckets': needs boto3: install the s3 extra" in proc.stderr
