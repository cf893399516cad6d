"""``anonymizer worker`` configuration, and the keys and checks the daemon config shares with it.

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
from anonymizer.schema import Reader, setting, yaml_keys

DEFAULT_HEARTBEAT_S = 5.0

# Default visibility timeout: above the profile limit's 6 h maximum video plus its verification.
DEFAULT_VISIBILITY_TIMEOUT_S = 8 * 3600.0

BROKER_SCHEMES = ("redis", "rediss", "amqp", "amqps")
BACKEND_SCHEMES = ("redis", "rediss")


# The keys a worker config and the daemon config share: one declaration each, used by both.
def broker_setting(**kw: Any) -> Any:
    return setting(
        doc="the broker: redis://:PASSWORD@host:6379/0, rediss:// (TLS) or amqp:// (RabbitMQ)",
        kind="url",
        choices=BROKER_SCHEMES,
        **kw,
    )


def backend_setting() -> Any:
    return setting(
        None,
        doc="where results wait for the coordinator; required with an amqp:// broker",
        kind="url",
        choices=BACKEND_SCHEMES,
        shown_default="the broker",
    )


def metrics_setting(doc: str, example: str) -> Any:
    return setting(None, doc=doc, kind="hostport", example=example, shown_default="off")


def timeout_setting() -> Any:
    return setting(
        DEFAULT_VISIBILITY_TIMEOUT_S,
        doc="above the longest job (Redis redelivers a job unacknowledged this long); the same in daemon and workers",
        minimum=10,
        maximum=7 * 86400,
    )


@dataclass(frozen=True)
class WorkerConfig:
    source_path: Path  # the config file
    broker: str = broker_setting(required=True)
    result_backend: str | None = backend_setting()
    concurrency: int = setting(1, doc="engine processes on this host: one per GPU", minimum=1, maximum=64)
    name: str | None = setting(
        None,
        doc="shown in logs, `anonymizer status` and `celery inspect`",
        shown_default="the host name",
        example="gpu-host-1",
    )
    visibility_timeout_s: float = timeout_setting()
    metrics: tuple[str, int] | None = metrics_setting(
        "`HOST:PORT` for this worker's Prometheus `/metrics`", "127.0.0.1:9809"
    )
    heartbeat_s: float = setting(
        DEFAULT_HEARTBEAT_S,
        doc="how often the worker refreshes its status record in Redis (`anonymizer status`)",
        minimum=0.2,
        maximum=60,
    )


WORKER_KEYS = yaml_keys(WorkerConfig)


def check_backend_pair(c: Checker, broker: str | None, backend: str | None) -> None:
    if broker and urlsplit(broker).scheme.startswith("amqp") and not backend:
        message = "an amqp:// broker needs a redis:// result backend (results must outlive a coordinator restart)"
        c.error("result_backend", message)


def check_dist_extra(c: Checker) -> None:
    """A broker needs celery and redis-py, which only the scaleout extra installs."""
    import importlib.util

    if importlib.util.find_spec("celery") is None or importlib.util.find_spec("redis") is None:
        c.error(
            "broker", "needs the scaleout extra (celery, redis-py): ANONYMIZER_EXTRAS=scaleout ./scripts/install.sh"
        )


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

    def check(c: Checker, top: dict[str, Any], _: str, values: dict[str, Any], __: Any) -> bool:
        values["source_path"] = path
        check_backend_pair(c, values["broker"], values["result_backend"])
        check_dist_extra(c)
        return True

    cfg = Reader(c, base_dir=path.parent, checks={WorkerConfig: check}).read(WorkerConfig, data)
    c.raise_if_errors()
    assert cfg is not None
    return cfg
