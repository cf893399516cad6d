"""``anonymizer worker`` configuration, and the broker URL check the daemon config uses too.

Example::

    broker: redis://:PASSWORD@broker.example:6379/0   # or rediss:// (TLS), amqp:// (RabbitMQ)
    # result_backend: redis://...   required with an amqp:// broker
    concurrency: 1                   # engine processes on this host: one per GPU
    name: gpu-host-1                 # shown by `anonymizer status`; default: the host name
    visibility_timeout_s: 28800      # above the longest job (Redis); same value as the daemon's
    metrics: 127.0.0.1:9809          # optional: Prometheus /metrics of this worker
    heartbeat_s: 5                   # how often the worker refreshes its status record in Redis

A worker needs no profile: each job carries the coordinator's profile by content.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from anonymizer.config import Checker, read_yaml
from anonymizer.dist.app import DEFAULT_VISIBILITY_TIMEOUT_S
from anonymizer.dist.heartbeat import DEFAULT_HEARTBEAT_S

BROKER_SCHEMES = ("redis", "rediss", "amqp", "amqps")
BACKEND_SCHEMES = ("redis", "rediss")
WORKER_KEYS = {"broker", "result_backend", "concurrency", "name", "visibility_timeout_s", "metrics", "heartbeat_s"}


@dataclass(frozen=True)
class WorkerConfig:
    broker: str
    result_backend: str | None
    concurrency: int
    name: str | None
    visibility_timeout_s: float
    source_path: Path
    metrics: tuple[str, int] | None = None  # where /metrics is served, if anywhere
    heartbeat_s: float = DEFAULT_HEARTBEAT_S


def check_url(c: Checker, path: str, value: Any, schemes: tuple[str, ...]) -> str | None:
    """Validate a broker or backend URL; the error never repeats the URL (it may hold a password)."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        c.error(path, f"expected a URL such as redis://127.0.0.1:6379/0, got {type(value).__name__}")
        return None
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        c.error(path, "not a valid URL (check the port)")
        return None
    if parts.scheme not in schemes:
        c.error(path, f"scheme {parts.scheme!r} is not one of: {', '.join(schemes)}")
        return None
    if not parts.hostname and not parts.path.startswith("/") and parts.scheme != "redis+socket":
        c.error(path, "the URL names no host")
        return None
    return value


def check_address(c: Checker, path: str, value: Any) -> tuple[str, int] | None:
    """Validate ``HOST:PORT`` (``[::1]:9809`` for IPv6); return (host, port)."""
    if value is None:
        return None
    try:
        parts = urlsplit(f"//{value}") if isinstance(value, str) else None
        port = parts.port if parts is not None else None
    except ValueError:
        parts, port = None, None
    if parts is None or not parts.hostname or not port or parts.path or parts.username:
        c.error(path, f"expected HOST:PORT such as 127.0.0.1:9809 with a port 1-65535, got {value!r}")
        return None
    return parts.hostname, port


def check_backend_pair(c: Checker, broker: str | None, backend: str | None, where: str = "") -> None:
    if broker and urlsplit(broker).scheme.startswith("amqp") and not backend:
        key = f"{where}result_backend" if where else "result_backend"
        c.error(key, "an amqp:// broker needs a redis:// result backend (results must outlive a coordinator restart)")


def redacted(url: str) -> str:
    """``url`` without its password, for logs and status output."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def load_worker_config(path: str | Path) -> WorkerConfig:
    """Load and validate a worker config. Raise ConfigError listing every problem."""
    path = Path(path).expanduser().resolve()
    data = read_yaml(path, "worker config")
    c = Checker(str(path))
    top = c.section(data, "", WORKER_KEYS)
    if "broker" not in top:
        c.error("broker", "required key is missing")
    broker = check_url(c, "broker", top.get("broker"), BROKER_SCHEMES)
    backend = check_url(c, "result_backend", top.get("result_backend"), BACKEND_SCHEMES)
    check_backend_pair(c, broker, backend)
    concurrency = c.get(top, "", "concurrency", 1, int, minimum=1, maximum=64)
    name = c.get(top, "", "name", None, str)
    timeout = float(
        c.get(top, "", "visibility_timeout_s", DEFAULT_VISIBILITY_TIMEOUT_S, (int, float), minimum=10, maximum=7 * 86400)
    )
    metrics = check_address(c, "metrics", top.get("metrics"))
    heartbeat = float(c.get(top, "", "heartbeat_s", DEFAULT_HEARTBEAT_S, (int, float), minimum=0.2, maximum=60))
    import importlib.util

    if importlib.util.find_spec("celery") is None or importlib.util.find_spec("redis") is None:
        c.error("broker", "needs the dist extra (celery, redis-py): ANONYMIZER_EXTRAS=dist ./scripts/install.sh")
    c.raise_if_errors()
    assert broker is not None
    return WorkerConfig(broker, backend, concurrency, name, timeout, path, metrics, heartbeat)
