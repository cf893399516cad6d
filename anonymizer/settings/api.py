"""The daemon config's ``api:`` section, validated into a frozen ``ApiConfig``.

Example (every key in docs/api.md)::

    api:
      listen: 127.0.0.1:8443
      jwks_file: /etc/anonymizer/jwks.json
      issuer: https://idp.example.org/realms/media
      audience: anonymizer
      profiles: {cctv: api-inbox}       # name the client chooses -> a folder of `folders:`
      max_upload_bytes: 2147483648
      rate_per_minute: 60
      max_active_jobs: 4
      tls_cert: /etc/anonymizer/tls/cert.pem
      tls_key: /etc/anonymizer/tls/key.pem

A client chooses a profile by its name here, never by a path: each name maps to one of the
daemon's folders, whose profile, engine, journal, verification, retention and audit then handle
the upload exactly as a file dropped into that folder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anonymizer.config import Checker
from anonymizer.schema import Reader, setting, yaml_keys

PROFILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class ApiConfig:
    """What ``anonymizer api`` serves: where, whom it trusts, and which folders take uploads."""

    listen: tuple[str, int] = setting(
        required=True, doc="`HOST:PORT` uvicorn binds", kind="hostport", example="127.0.0.1:8443"
    )
    jwks_file: Path = setting(
        required=True,
        doc="the identity provider's signing keys as a JWKS document (what its `jwks_uri` serves); re-read "
        "when the file changes, so a key rotation is a file copy",
    )
    issuer: str = setting(required=True, doc="the `iss` every token must carry")
    audience: str = setting(required=True, doc="the `aud` every token must carry")
    # (name the client uses, daemon folder name)
    profiles: tuple[tuple[str, str], ...] = setting(
        required=True,
        doc="profile name the client chooses -> a folder of `folders:`, e.g. `{cctv: api-inbox}`; the client "
        "never names a path",
        kind="custom",
    )
    max_upload_bytes: int = setting(
        2 * 1024**3,
        doc="larger uploads get 413; the folder profile's `limits.max_file_bytes` applies too (the smaller wins)",
        minimum=1,
        shown_default="2 GiB",
    )
    rate_per_minute: int = setting(
        60,
        doc="requests per client (token bucket, bursts up to the same number); beyond: 429 with `Retry-After`",
        minimum=1,
        maximum=100000,
    )
    max_active_jobs: int = setting(
        4, doc="a client's unfinished jobs plus uploads in flight; beyond: 429", minimum=1, maximum=10000
    )
    tls_cert: Path | None = setting(
        None,
        doc="PEM certificate given to uvicorn (`ssl_certfile`): HTTPS on `listen`, with `tls_key`. Without "
        "them, serve on loopback behind a TLS reverse proxy",
    )
    tls_key: Path | None = setting(None, doc="its PEM key (`ssl_keyfile`); `tls_cert` and `tls_key` go together")
    leeway_s: float = setting(30.0, doc="clock skew allowed on `exp`/`nbf`/`iat`", minimum=0, maximum=600)

    @property
    def host(self) -> str:
        return self.listen[0]

    @property
    def port(self) -> int:
        return self.listen[1]

    def folder_for(self, profile_name: str) -> str | None:
        """Return the daemon folder behind a profile name, or None when it is not configured."""
        return dict(self.profiles).get(profile_name)


API_KEYS = yaml_keys(ApiConfig)


def missing_modules(*names: str) -> list[str]:
    """Return those of ``names`` that cannot be imported here (an optional extra not installed)."""
    from importlib.util import find_spec

    missing = []
    for name in names:
        try:
            if find_spec(name) is None:
                missing.append(name)
        except (ImportError, ValueError, AttributeError):  # blocked or broken: as good as absent
            missing.append(name)
    return missing


def api_config_from_dict(c: Checker, raw: Any, base: Path, folder_names: set[str]) -> ApiConfig | None:
    """Given the raw ``api:`` mapping, return an ApiConfig (None if absent or invalid; errors in ``c``)."""
    if raw is None:
        return None
    if not isinstance(raw, dict) or not raw:
        c.section(raw, "api", API_KEYS)  # a scalar or list: "expected a mapping, got ..."
        c.error("api", "expected a mapping with listen, jwks_file, issuer, audience, profiles")
        return None
    errors_before = len(c.errors)
    missing = missing_modules("fastapi", "uvicorn", "jwt", "python_multipart", "cryptography")
    if missing:
        c.error("api", f"needs the api extra (pip install 'anonymizer[api]'); missing: {', '.join(missing)}")

    def check(c: Checker, d: dict[str, Any], _: str, values: dict[str, Any], __: Any) -> bool:
        values["profiles"] = _profiles(c, d, folder_names)
        for key in ("jwks_file", "tls_cert", "tls_key"):
            if values[key] is not None and not values[key].is_file():
                c.error(f"api.{key}", f"{values[key]} is not an existing file")
        if (values["tls_cert"] is None) != (values["tls_key"] is None):
            c.error("api.tls_key" if values["tls_key"] is None else "api.tls_cert", "tls_cert and tls_key go together")
        return True

    api = Reader(c, base_dir=base, checks={ApiConfig: check}).read(ApiConfig, raw, "api")
    return api if len(c.errors) == errors_before else None


def _profiles(c: Checker, d: dict[str, Any], folder_names: set[str]) -> tuple[tuple[str, str], ...]:
    """The ``profiles`` mapping: each client-facing name to a folder of this config."""
    profiles: list[tuple[str, str]] = []
    raw_profiles = d.get("profiles")
    if "profiles" in d and (not isinstance(raw_profiles, dict) or not raw_profiles):
        c.error("api.profiles", "expected a mapping of profile name -> folder name, e.g. {cctv: api-inbox}")
    elif isinstance(raw_profiles, dict):
        for name, folder in raw_profiles.items():
            where = f"api.profiles.{name}"
            if not isinstance(name, str) or not PROFILE_NAME.match(name):
                c.error(where, "a profile name is 1-64 letters, digits, '.', '_' or '-'")
            elif not isinstance(folder, str) or folder not in folder_names:
                allowed = ", ".join(sorted(folder_names)) or "(none)"
                c.error(where, f"{folder!r} is not a folder of this config; allowed: {allowed}")
            else:
                profiles.append((name, folder))
    return tuple(profiles)
