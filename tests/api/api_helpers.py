"""Helpers for the API tests. The API as deployed: the real daemon and ``anonymizer api`` as two processes on one config,
called over loopback HTTP with httpx, with tokens signed by a test RSA key listed in a JWKS file."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import daemon_helpers as dh
import pytest

httpx = pytest.importorskip("httpx", reason="the api extra is not installed (pip install -e '.[api]')")
jwt = pytest.importorskip("jwt", reason="the api extra is not installed (pip install -e '.[api]')")
pytest.importorskip("fastapi", reason="the api extra is not installed (pip install -e '.[api]')")
pytest.importorskip("uvicorn", reason="the api extra is not installed (pip install -e '.[api]')")

ISSUER = "https://idp.test/realms/media"
AUDIENCE = "anonymizer"
KID = "test-key-1"
MAX_UPLOAD = 2 * 1024**2
RATE_PER_MINUTE = 120
MAX_ACTIVE = 3


def rsa_key() -> Any:
    from cryptography.hazmat.primitives.asymmetric import rsa

    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwks_of(private_key: Any, kid: str) -> dict[str, Any]:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private_key.public_key()))
    return {"keys": [jwk | {"kid": kid, "use": "sig", "alg": "RS256"}]}


@contextlib.contextmanager
def api_process(config: Path, port: int, log: Path) -> Iterator[str]:
    """``anonymizer api --config config`` on loopback until the block ends; yields its URL once
    /healthz answers (a test that starts its own API instead of the shared fixture's)."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "anonymizer", "api", "--config", str(config)], cwd=dh.REPO, stdout=out, stderr=out
        )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert proc.poll() is None, log.read_text()
        try:
            return httpx.get(url + "/healthz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    try:
        dh.wait_for(up, 60, "the API to answer", interval_s=0.2)
        yield url
    finally:
        dh.stop_process(proc)


class Api:
    """The running API: its URL, token minting and the folders/logs the tests inspect."""

    def __init__(self, root: Path, url: str, key: Any, proc: subprocess.Popen[bytes], daemon: dh.DaemonProcess) -> None:
        self.root, self.url, self.key, self.proc, self.daemon = root, url, key, proc, daemon
        self.inbox = root / "api-inbox"
        self.log_path = root / "api.stdout"
        self.tokens: list[str] = []  # every token minted: none may show up in a log (test_privacy)
        self.names: list[str] = []  # every upload name sent

    def token(
        self, client: str = "dam-1", scope: str = "jobs:submit jobs:read", *, key: Any = None, **claims: Any
    ) -> str:
        """A token signed by the test key (or ``key``); ``claims`` override or add claims."""
        now = int(time.time())
        body = {"iss": ISSUER, "aud": AUDIENCE, "client_id": client, "scope": scope, "iat": now, "exp": now + 300}
        body.update(claims)
        token = jwt.encode(body, key or self.key, algorithm="RS256", headers={"kid": KID})
        self.tokens.append(token)
        return token

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)

    def submit(
        self, token: str, data: bytes, *, name: str = "holiday-IMG_4711.jpg", profile: str = "fast"
    ) -> httpx.Response:
        self.names.append(name)
        with self.client(token) as c:
            return c.post("/v1/jobs", params={"profile": profile}, files={"file": (name, data, "image/jpeg")})

    def wait_done(self, token: str, job_id: str, timeout_s: float = 90) -> dict[str, Any]:
        def finished() -> dict[str, Any] | None:
            with self.client(token) as c:
                body = c.get(f"/v1/jobs/{job_id}").json()
            return body if body["state"] in ("done", "failed") else None

        return dh.wait_for(finished, timeout_s, f"job {job_id} to finish", interval_s=0.5)

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") + (self.root / "api.stderr").read_text(errors="replace")
