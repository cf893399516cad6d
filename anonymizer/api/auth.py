"""OAuth 2.0 bearer tokens, validated locally: JWT signature against a JWKS file, then claims.

No identity provider has to be reachable: the operator exports the provider's signing keys
(its ``jwks_uri`` document) to ``api.jwks_file``; the file is re-read when it changes, so a key
rotation needs no restart. A token must carry ``exp``, ``iss`` and ``aud`` matching the config,
be signed with an asymmetric algorithm by a key of the set, and name its client (``client_id``,
``azp`` or ``sub``). Scopes come from ``scope`` (space-separated, RFC 8693/9068) or ``scp``.

Tokens are never logged, stored or audited; the client id is audited, and logs carry its HMAC.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import jwt

SUBMIT = "jobs:submit"
READ = "jobs:read"
ADMIN = "jobs:admin"
# Asymmetric only: an HS256 token "signed" with a public key must never verify.
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]


class AuthError(Exception):
    """A request the API refuses: ``status`` 401 (no or bad token) or 403 (scope missing)."""

    def __init__(self, status: int, detail: str, *, error: str = "invalid_token") -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.error = error


@dataclass(frozen=True)
class Principal:
    """Who is calling: the client id from the token and the scopes it was granted."""

    client_id: str
    scopes: frozenset[str]

    @property
    def is_admin(self) -> bool:
        return ADMIN in self.scopes

    def require(self, scope: str) -> None:
        """Raise AuthError(403) unless the token grants ``scope`` (jobs:admin grants all)."""
        if scope not in self.scopes and not self.is_admin:
            raise AuthError(403, f"the token lacks the scope {scope}", error="insufficient_scope")


class KeySet:
    """The JWKS file, re-read when its size or mtime changes."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._keys: dict[str | None, jwt.PyJWK] = {}

    def _load(self) -> dict[str | None, jwt.PyJWK]:
        st = os.stat(self.path)
        stamp = (st.st_size, st.st_mtime_ns)
        with self._lock:
            if stamp != self._stamp:
                data = json.loads(self.path.read_text(encoding="utf-8"))
                keys: dict[str | None, jwt.PyJWK] = {}
                for raw in data.get("keys", []):
                    if raw.get("use", "sig") != "sig":
                        continue
                    try:
                        keys[raw.get("kid")] = jwt.PyJWK(raw)
                    except jwt.PyJWKError:
                        continue  # a key type this build cannot use: the others still work
                self._keys, self._stamp = keys, stamp
            return self._keys

    def key_for(self, kid: str | None) -> jwt.PyJWK:
        try:
            keys = self._load()
        except (OSError, ValueError) as exc:
            raise AuthError(401, "the key set cannot be read; no token can be checked") from exc
        if kid in keys:
            return keys[kid]
        if kid is None and len(keys) == 1:
            return next(iter(keys.values()))
        raise AuthError(401, "the token is signed by an unknown key")


class Authenticator:
    """Validate bearer tokens for one issuer and audience against a ``KeySet``."""

    def __init__(self, keys: KeySet, *, issuer: str, audience: str, leeway_s: float = 30.0) -> None:
        self.keys = keys
        self.issuer = issuer
        self.audience = audience
        self.leeway_s = leeway_s

    def authenticate(self, authorization: str | None) -> Principal:
        """Given the Authorization header, return the Principal. Raise AuthError(401) otherwise."""
        if not authorization:
            raise AuthError(401, "a bearer token is required", error="invalid_request")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError(401, "expected 'Authorization: Bearer <token>'", error="invalid_request")
        token = token.strip()
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as exc:
            raise AuthError(401, "the token is not a JWT") from exc
        if header.get("alg") not in ALGORITHMS:
            raise AuthError(401, "the token's signing algorithm is not accepted")
        key = self.keys.key_for(header.get("kid"))
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=ALGORITHMS,
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway_s,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise AuthError(401, "the token has expired") from exc
        except jwt.InvalidAudienceError as exc:
            raise AuthError(401, "the token is not meant for this API (audience)") from exc
        except jwt.InvalidIssuerError as exc:
            raise AuthError(401, "the token's issuer is not trusted") from exc
        except jwt.InvalidTokenError as exc:
            # PyJWT's messages name claims, never the token itself.
            raise AuthError(401, f"the token is not valid: {exc}") from exc
        client = claims.get("client_id") or claims.get("azp") or claims.get("sub")
        if not isinstance(client, str) or not client:
            raise AuthError(401, "the token names no client (client_id, azp or sub)")
        raw_scopes = claims.get("scope", claims.get("scp", ""))
        scopes = raw_scopes.split() if isinstance(raw_scopes, str) else [str(s) for s in raw_scopes or []]
        return Principal(client, frozenset(scopes))


class RateLimiter:
    """Per-client token bucket: ``per_minute`` requests, refilled evenly, bursts up to the same."""

    def __init__(self, per_minute: int, *, clock=time.monotonic) -> None:
        self.capacity = float(per_minute)
        self.rate_s = per_minute / 60.0
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, client: str) -> float:
        """Take one token; return 0 when allowed, else the seconds until one is available."""
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.get(client, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * self.rate_s)
            if tokens >= 1.0:
                self._buckets[client] = (tokens - 1.0, now)
                return 0.0
            self._buckets[client] = (tokens, now)
            return (1.0 - tokens) / self.rate_s
