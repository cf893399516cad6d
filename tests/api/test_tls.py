"""api.tls_cert / api.tls_key: uvicorn serves HTTPS with them (a self-signed certificate here)."""

from __future__ import annotations

import datetime
import ipaddress
import json
import ssl
import subprocess
import sys
from pathlib import Path

import daemon_helpers as dh
from api_helpers import AUDIENCE, ISSUER, KID, httpx, jwks_of, rsa_key
from support import free_port


def self_signed(root: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID

    key = rsa_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = root / "api.crt", root / "api.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def test_the_api_serves_https_with_the_configured_certificate(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    (tmp_path / "jwks.json").write_text(json.dumps(jwks_of(rsa_key(), KID)))
    profile = dh.write_fast_profile(tmp_path / "fast.yaml")
    port = free_port()
    api = {
        "listen": f"127.0.0.1:{port}",
        "jwks_file": "jwks.json",
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "profiles": {"fast": "inbox"},
        "tls_cert": str(cert),
        "tls_key": str(key),
    }
    config = dh.write_daemon_config(tmp_path / "daemon.yaml", [dh.folder_entry(tmp_path, "inbox", profile)], api=api)
    log = open(tmp_path / "api.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "anonymizer", "api", "--config", str(config)], cwd=dh.REPO, stdout=log, stderr=log
    )
    trust = ssl.create_default_context(cafile=str(cert))
    try:

        def up() -> httpx.Response | None:
            assert proc.poll() is None, (tmp_path / "api.log").read_text()
            try:
                return httpx.get(f"https://127.0.0.1:{port}/v1/jobs/a-0", verify=trust, timeout=2)
            except httpx.ConnectError:
                return None

        response = dh.wait_for(up, 60, "the API over HTTPS", interval_s=0.2)
        assert response.status_code == 401  # TLS worked; the call itself needs a token
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
            plain_ok = True
        except httpx.HTTPError:
            plain_ok = False
        assert not plain_ok  # no plain HTTP on the TLS port
    finally:
        proc.terminate()
        proc.wait(20)
        log.close()
