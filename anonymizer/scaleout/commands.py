"""Sub-command ``worker``; wired in by ``anonymizer.cli``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from anonymizer.scaleout.worker import run_worker


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "worker",
        help="run queued jobs for a daemon that has a broker (scale-out on Celery)",
        description=(
            "Run a Celery worker that takes jobs from the broker the daemon enqueues them on (daemon "
            "config key broker), anonymizes each source from the shared input folder into a temporary "
            "name in the shared output folder, and returns the summary; the daemon verifies, publishes "
            "and audits. Each job carries its profile by content; a worker whose model SHA-256s differ "
            "from the daemon's refuses the job. SIGTERM finishes the running job, then exits 0. "
            "Deployment: docs/scale-out.md."
        ),
    )
    p.add_argument(
        "--config", required=True, type=Path, metavar="FILE",
        help="worker YAML config (broker, concurrency, name; see docs/scale-out.md)",
    )
    p.add_argument(
        "--log-level", default="info", choices=("debug", "info", "warning", "error"),
        help="least severe log events written to stdout (default: info)",
    )
    p.set_defaults(func=cmd_worker)


def cmd_worker(args: argparse.Namespace) -> int:

    return run_worker(args.config, log_level=args.log_level)
