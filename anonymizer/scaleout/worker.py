"""``anonymizer worker --config FILE``: a Celery worker that runs the engine on queued jobs.

One process per GPU (``concurrency``, prefork pool): each child builds its engine on its first
job and keeps it warm. The worker reads sources from the shares and writes outputs under the
job's temporary folder in the output share, verified; the coordinator publishes them.

The main process also keeps this worker's status record in Redis fresh and, with ``metrics:``
in the config, serves its Prometheus metrics (``anonymizer.scaleout.heartbeat``, ``.metrics``).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

from anonymizer.scaleout.app import QUEUE, make_app
from anonymizer.settings.scaleout import load_worker_config, redacted


def run_worker(config_path: Path, *, log_level: str = "info") -> int:
    """Run the worker until SIGTERM (warm shutdown: the running job finishes). Return exit code."""
    # Imported when the command runs: ``anonymizer --help`` imports this module's parser, not the engine's libraries.
    from anonymizer.logs import configure_logging, get_logger

    configure_logging(log_level)
    cfg = load_worker_config(config_path)
    # Ultralytics phones home and may pip-install at import unless told not to (as the daemon).
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "False")
    os.environ.setdefault("YOLO_VERBOSE", "False")
    if cfg.name:
        os.environ["ANONYMIZER_WORKER_NAME"] = cfg.name
    app = make_app(cfg.broker, result_backend=cfg.result_backend, visibility_timeout_s=cfg.visibility_timeout_s)
    name = cfg.name or socket.gethostname()
    nodename = f"anonymizer-{os.getpid()}@{name}"
    log = get_logger(worker=name)
    log.info("worker.starting", broker=redacted(cfg.broker), concurrency=cfg.concurrency, pid=os.getpid())
    metrics = None
    if cfg.metrics is not None:
        # Imported here: prometheus-client only with metrics configured.
        from anonymizer.scaleout.metrics import WorkerMetrics

        metrics = WorkerMetrics()
        try:
            metrics.serve(*cfg.metrics)
        except OSError as exc:
            log.error("metrics.failed", error=exc.strerror or type(exc).__name__, address=f"{cfg.metrics[0]}:{cfg.metrics[1]}")
            return 4
    _quiet_celery(log)
    reporter = _reporter(cfg, nodename, metrics, log).start()
    argv = [
        "--quiet",  # no ASCII-art banner on stdout, between the JSON log lines (issue 25)
        "worker",
        f"--loglevel={'WARNING' if log_level != 'debug' else 'INFO'}",
        f"--concurrency={cfg.concurrency}",
        "--pool=prefork",
        f"--queues={QUEUE}",
        f"--hostname={nodename}",
        "--without-mingle",
        "--without-gossip",
    ]
    try:
        app.worker_main(argv)  # Celery ends it with SystemExit(0) after a warm shutdown
    finally:
        reporter.stop()
        # The stop line every long-running command writes (daemon.stopped, api.stopped).
        log.info("worker.stopped", pid=os.getpid())
    return 0


def _quiet_celery(log: Any) -> None:
    """stdout carries JSON lines only (journald interleaves stdout and stderr): Celery's console
    messages ("worker: Warm shutdown (MainProcess)", written straight to the process's stdout)
    and its free-text warning about running as root become JSON lines of ours instead."""
    import warnings

    import celery.apps.worker as celery_console
    from celery.exceptions import SecurityWarning

    def say(message: Any, f: Any = None) -> None:
        log.info("worker.celery", message=" ".join(str(message).split()))

    celery_console.safe_say = say  # looked up at each call by its signal handlers
    warnings.filterwarnings("ignore", category=SecurityWarning)
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        log.warning(
            "worker.running_as_root",
            advice="run workers as an unprivileged service user (systemd/anonymizer-worker.service has User=)",
        )


def _reporter(cfg: Any, nodename: str, metrics: Any, log: Any) -> Any:
    """The status record's writer, on its own Redis connection (the result backend's URL):
    sharing the pool processes' connection pool across a fork could leave a lock held."""
    import redis

    # Imported when the command runs: ``anonymizer --help`` imports this module's parser, not the engine's libraries.
    from anonymizer.scaleout.heartbeat import Reporter, WorkerState, host_device

    client = redis.Redis.from_url(cfg.result_backend or cfg.broker, socket_timeout=5, socket_connect_timeout=5)
    # Kept as long as the job of a worker that died may wait for its redelivery, and an hour.
    state = WorkerState(
        name=nodename,
        host=socket.gethostname(),
        pid=os.getpid(),
        concurrency=cfg.concurrency,
        heartbeat_s=cfg.heartbeat_s,
        ttl_s=int(cfg.visibility_timeout_s) + 3600,
        device=host_device(),
    )
    return Reporter(client, state, metrics=metrics, log=log)
