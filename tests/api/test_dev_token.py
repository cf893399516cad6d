"""``anonymizer api dev-token``: one command makes a local key set and a token the live API accepts."""

from __future__ import annotations

import json
import stat

import daemon_helpers as dh
import pytest
from api_helpers import api_process, httpx, jwt
from support import free_port

from anonymizer.api.devtoken import dev_token, read_target
from anonymizer.errors import ConfigError


def _config(tmp_path, listen: str):
    profile = dh.write_fast_profile(tmp_path / "fast.yaml")
    return dh.write_daemon_config(
        tmp_path / "daemon.yaml",
        [dh.folder_entry(tmp_path, "trial", profile)],
        api={
            "listen": listen,
            "jwks_file": "keys/jwks.json",  # relative: beside the config, as the config reader resolves it
            "issuer": "https://localhost/trial",
            "audience": "anonymizer",
            "profiles": {"trial": "trial"},
        },
    )


def test_dev_token_writes_a_key_set_once_and_the_live_api_accepts_its_token(tmp_path):
    port = free_port()
    config = _config(tmp_path, f"127.0.0.1:{port}")
    made = dh.run_cli("api", "dev-token", "--config", str(config))
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    jwks = tmp_path / "keys" / "jwks.json"
    key = tmp_path / "keys" / "jwks.json.dev-key.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["aud"] == "anonymizer" and claims["scope"] == "jobs:submit jobs:read"
    assert 0 < claims["exp"] - claims["iat"] <= 3600
    keys_before = jwks.read_text()
    again = dh.run_cli("api", "dev-token", "--config", str(config), "--scope", "jobs:read", "--ttl", "60")
    assert again.returncode == 0 and jwks.read_text() == keys_before, "the key is made once, then reused"
    with api_process(config, port, tmp_path / "api.out") as url:
        headers = {"Authorization": f"Bearer {token}"}
        sample = dh.FACE_SAMPLES[0].read_bytes()
        posted = httpx.post(
            url + "/v1/jobs",
            params={"profile": "trial"},
            files={"file": ("a.jpg", sample)},
            headers=headers,
            timeout=60,
        )
        assert posted.status_code == 202, posted.text
        got = httpx.get(url + posted.headers["location"], headers=headers, timeout=30)
        assert got.status_code == 200 and got.json()["state"] in ("queued", "running", "done")
        read_only = {"Authorization": f"Bearer {again.stdout.strip()}"}
        refused = httpx.post(
            url + "/v1/jobs", params={"profile": "trial"}, files={"file": ("a.jpg", sample)}, headers=read_only
        )
        assert refused.status_code == 403  # the scope asked for is the scope granted


def test_dev_token_is_refused_off_loopback_and_never_replaces_a_real_key_set(tmp_path):
    public = _config(tmp_path, "0.0.0.0:8443")
    with pytest.raises(ConfigError, match="not a loopback address"):
        dev_token(read_target(public))
    (tmp_path / "keys").mkdir()
    idp = tmp_path / "keys" / "jwks.json"
    idp.write_text(json.dumps({"keys": []}))
    local = _config(tmp_path, "[::1]:8443")
    with pytest.raises(ConfigError, match="left alone"):
        dev_token(read_target(local))
    assert json.loads(idp.read_text()) == {"keys": []}
