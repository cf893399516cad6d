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
from anonymizer.schema import parse_host_port

API_KEYS = {
    "listen",
    "jwks_file",
    "issuer",
    "audience",
    "profiles",
    "max_upload_bytes",
    "rate_per_minute",
    "max_active_jobs",
    "tls_cert",
    "tls_key",
    "leeway_s",
}
PROFILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class ApiConfig:
    """What ``anonymizer api`` serves: where, whom it trusts, and which folders take uploads."""

    host: str
    port: int
    jwks_file: Path
    issuer: str
    audience: str
    profiles: tuple[tuple[str, str], ...]  # (name the client uses, daemon folder name)
    max_upload_bytes: int = 2 * 1024**3
    rate_per_minute: int = 60
    max_active_jobs: int = 4
    tls_cert: Path | None = None
    tls_key: Path | None = None
    leeway_s: float = 30.0

    def folder_for(self, profile_name: str) -> str | None:
        """Return the daemon folder behind a profile name, or None when it is not configured."""
        return dict(self.profiles).get(profile_name)


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


def parse_listen(c: Checker, path: str, value: Any) -> tuple[str, int] | None:
    """Given HOST:PORT, return (host, port); record an error and return None otherwise."""
    return parse_host_port(c, path, value, "127.0.0.1:8443")


def _file(c: Checker, d: dict[str, Any], key: str, base: Path) -> Path | None:
    value = c.get(d, "api", key, None, str)
    if value is None:
        return None
    p = Path(value).expanduser()
    p = (p if p.is_absolute() else base / p).resolve()
    if not p.is_file():
        c.error(f"api.{key}", f"{p} is not an existing file")
    return p


def api_config_from_dict(c: Checker, raw: Any, base: Path, folder_names: set[str]) -> ApiConfig | None:
    """Given the raw ``api:`` mapping, return an ApiConfig (None if absent or invalid; errors in ``c``)."""
    if raw is None:
        return None
    d = c.section(raw, "api", API_KEYS)
    if not d:
        if not isinstance(raw, dict) or not raw:
            c.error("api", "expected a mapping with listen, jwks_file, issuer, audience, profiles")
        return None
    errors_before = len(c.errors)
    missing = missing_modules("fastapi", "uvicorn", "jwt", "python_multipart", "cryptography")
    if missing:
        c.error("api", f"needs the api extra (pip install 'anonymizer[api]'); missing: {', '.join(missing)}")
    for key in ("listen", "jwks_file", "issuer", "audience", "profiles"):
        if key not in d:
            c.error(f"api.{key}", "required key is missing")
    listen = parse_listen(c, "api.listen", d["listen"]) if "listen" in d else None
    jwks = _file(c, d, "jwks_file", base)
    issuer = c.get(d, "api", "issuer", None, str)
    audience = c.get(d, "api", "audience", None, str)
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
    tls_cert = _file(c, d, "tls_cert", base)
    tls_key = _file(c, d, "tls_key", base)
    if (tls_cert is None) != (tls_key is None):
        c.error("api.tls_key" if tls_key is None else "api.tls_cert", "tls_cert and tls_key go together")
    dflt = ApiConfig("", 0, Path(), "", "", ())
    max_upload = c.get(d, "api", "max_upload_bytes", dflt.max_upload_bytes, int, minimum=1)
    rate = c.get(d, "api", "rate_per_minute", dflt.rate_per_minute, int, minimum=1, maximum=100000)
    active = c.get(d, "api", "max_active_jobs", dflt.max_active_jobs, int, minimum=1, maximum=10000)
    leeway = float(c.get(d, "api", "leeway_s", dflt.leeway_s, (int, float), minimum=0, maximum=600))
    if len(c.errors) > errors_before or listen is None or jwks is None or issuer is None or audience is None:
        return None
    return ApiConfig(
        host=listen[0],
        port=listen[1],
        jwks_file=jwks,
        issuer=issuer,
        audience=audience,
        profiles=tuple(profiles),
        max_upload_bytes=max_upload,
        rate_per_minute=rate,
        max_active_jobs=active,
        tls_cert=tls_cert,
        tls_key=tls_key,
        leeway_s=leeway,
    )
