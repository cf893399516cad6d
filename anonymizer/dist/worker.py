"""``anonymizer worker --config FILE``: a Celery worker that runs the engine on queued jobs.

One process per GPU (``concurrency``, prefork pool): each child builds its engine on its first
job and keeps it warm. The worker reads sources from the shares and writes outputs under the
job's temporary folder in the output share; the coordinator verifies and publishes them.
"""

from __future__ import annotations

import os
from pathlib import Path

from anonymizer.dist.app import QUEUE, make_app
from anonymizer.dist.config import load_worker_config, redacted


def run_worker(config_path: Path, *, log_level: str = "info") -> int:
    """Run the worker until SIGTERM (warm shutdown: the running job finishes). Return exit code."""
    from anonymizer.daemon.logging import configure_logging, get_logger

    configure_logging(log_level)
    cfg = load_worker_config(config_path)
    # Ultralytics phones home and may pip-install at import unless told not to (as the daemon).
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "False")
    os.environ.setdefault("YOLO_VERBOSE", "False")
    if cfg.name:
        os.environ["ANONYMIZER_WORKER_NAME"] = cfg.name
    app = make_app(cfg.broker, result_backend=cfg.result_backend, visibility_timeout_s=cfg.visibility_timeout_s)
    name = cfg.name or "%h"
    get_logger().info("worker.starting", broker=redacted(cfg.broker), concurrency=cfg.concurrency, pid=os.getpid())
    argv = [
        "worker",
        f"--loglevel={'WARNING' if log_level != 'debug' else 'INFO'}",
        f"--concurrency={cfg.concurrency}",
        "--pool=prefork",
        f"--queues={QUEUE}",
        f"--hostname=anonymizer-{os.getpid()}@{name}",
        "--without-mingle",
        "--without-gossip",
    ]
    app.worker_main(argv)
    return 0
