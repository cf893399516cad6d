"""``anonymizer api dev-token --config FILE``: a local signing key, its JWKS and a short-lived
token, to try the API on loopback without an identity provider (docs/api.md, "Try it").

The key is made once: an EC P-256 private key at ``<jwks_file>.dev-key.pem`` (0600) and its
public half, as the only key of ``api.jwks_file`` (kid ``anonymizer-dev``). Later calls reuse it
and only sign a new token. The token is printed on stdout and never written anywhere.

Refused when ``api.listen`` is not a loopback address, and when ``jwks_file`` exists but is not
this command's (an identity provider's keys are never replaced).
"""

from __future__ import annotations

import ipaddress
import json
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from anonymizer.api.auth import READ, SUBMIT
from anonymizer.errors import ConfigError

KID = "anonymizer-dev"
DEFAULT_TTL_S = 3600
MAX_TTL_S = 24 * 3600


@dataclass(frozen=True)
class DevTarget:
    """What a dev token must match, read from the config's ``api:`` section."""

    jwks_file: Path
    issuer: str
    audience: str
    host: str


def read_target(config_path: Path) -> DevTarget:
    """The api section's jwks_file, issuer, audience and listen host, read before the full
    validation can pass (it requires the JWKS file this command writes). Raise ConfigError."""
    try:
        data = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{config_path}: cannot read the config ({type(exc).__name__})") from exc
    api = data.get("api") if isinstance(data, dict) else None
    if not isinstance(api, dict):
        raise ConfigError(f"{config_path}: at 'api': the config has no api: section")
    values = {key: api.get(key) for key in ("jwks_file", "issuer", "audience", "listen")}
    missing = sorted(key for key, value in values.items() if not isinstance(value, str) or not value)
    if missing:
        raise ConfigError(f"{config_path}: at 'api': {', '.join(missing)} must be set (text)")
    host = str(values["listen"]).rsplit(":", 1)[0].strip("[]")
    jwks = Path(str(values["jwks_file"])).expanduser()
    if not jwks.is_absolute():
        jwks = config_path.parent / jwks  # as the config reader resolves it
    return DevTarget(jwks.resolve(), str(values["issuer"]), str(values["audience"]), host)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def dev_token(
    target: DevTarget, *, client: str = "dev", scope: str = f"{SUBMIT} {READ}", ttl_s: int = DEFAULT_TTL_S
) -> str:
    """Make (or reuse) the dev key and its JWKS; return a token signed by it. Raise ConfigError."""
    import jwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    if not is_loopback(target.host):
        raise ConfigError(
            f"api.listen is {target.host}, not a loopback address: dev tokens are for trials on this host; "
            "use your identity provider's keys and tokens elsewhere"
        )
    if not 1 <= ttl_s <= MAX_TTL_S:
        raise ConfigError(f"--ttl must be 1-{MAX_TTL_S} seconds, got {ttl_s}")
    key_path = target.jwks_file.with_name(target.jwks_file.name + ".dev-key.pem")
    if key_path.exists():
        key: Any = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    else:
        if target.jwks_file.exists():
            raise ConfigError(
                f"{target.jwks_file} exists and is not a dev key set (no {key_path.name} beside it): "
                "it is left alone; point api.jwks_file at a new path for a trial"
            )
        key = ec.generate_private_key(ec.SECP256R1())
        target.jwks_file.parent.mkdir(parents=True, exist_ok=True)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    jwks = {"keys": [jwk | {"kid": KID, "use": "sig", "alg": "ES256"}]}
    text = json.dumps(jwks, indent=2, sort_keys=True) + "\n"
    if not target.jwks_file.exists() or target.jwks_file.read_text(encoding="utf-8") != text:
        tmp = target.jwks_file.with_name(f".{target.jwks_file.name}.{uuid.uuid4().hex[:8]}")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, target.jwks_file)  # the API re-reads the file when it changes
    now = int(time.time())
    claims = {
        "iss": target.issuer,
        "aud": target.audience,
        "client_id": client,
        "scope": scope,
        "iat": now,
        "nbf": now,
        "exp": now + ttl_s,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, key, algorithm="ES256", headers={"kid": KID})
