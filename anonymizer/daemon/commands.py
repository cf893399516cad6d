"""Sub-commands: ``daemon``, ``status``, ``audit verify`` and ``demo``; wired in by ``anonymizer.cli``."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

DEMO_SETTLE_S = 2
DEMO_POLL_S = 1
SAMPLES_DIR = Path(__file__).resolve().parents[2] / "samples"
MEDIA_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".mp4", ".mov", ".mkv", ".avi")


def register(subparsers: Any) -> None:
    """Add the daemon's sub-commands to the CLI's ``add_subparsers()`` object."""
    p = subparsers.add_parser(
        "daemon",
        help="watch input folders and anonymize what arrives (systemd service)",
        description=(
            "Run in the foreground as a systemd Type=notify service: poll each configured input folder, "
            "anonymize every settled photo/video into its output folder, quarantine bad inputs with a "
            "reason, journal every job in SQLite, append a hash-chained audit line per job, and apply "
            "the profile's retention to sources after a verified output. Logs are JSON lines on stdout "
            "with no file names. SIGHUP reloads the config, SIGTERM stops (exit 0). "
            "Exit codes: docs/daemon.md."
        ),
    )
    p.add_argument(
        "--config", required=True, type=Path, metavar="FILE",
        help="daemon YAML config (state_dir, audit_dir, folders; check it with validate-config)",
    )
    p.add_argument(
        "--log-level", default="info", choices=("debug", "info", "warning", "error"),
        help="least severe log events written to stdout (default: info)",
    )
    p.set_defaults(func=cmd_daemon)

    p = subparsers.add_parser(
        "status",
        help="queue, running job and recent failures, from the daemon's journal",
        description=(
            "Read the daemon's SQLite journal (read-only, safe while the daemon runs) and show the "
            "queue per folder, the running job, job counts by state and the most recent failures with "
            "their reasons. Exit 1 when the daemon has not run with this config yet."
        ),
    )
    p.add_argument(
        "--config", required=True, type=Path, metavar="FILE",
        help="the daemon's YAML config (its state_dir locates the journal)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_status)

    p = subparsers.add_parser(
        "audit",
        help="audit trail tools",
        description="Tools for the daemon's hash-chained audit trail (audit_dir/audit.jsonl).",
    )
    audit_sub = p.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    v = audit_sub.add_parser(
        "verify",
        help="check the audit log's hash chain (exit 0 when intact)",
        description=(
            "Re-hash every line of audit.jsonl and check the chain and the head the journal recorded, "
            "so an edited, reordered, deleted or truncated line is found. Exit 0 when intact; 1 names "
            "the first bad line."
        ),
    )
    v.add_argument(
        "--config", required=True, type=Path, metavar="FILE",
        help="the daemon's YAML config (its audit_dir and state_dir locate the log and the journal)",
    )
    v.set_defaults(func=cmd_audit_verify)

    p = subparsers.add_parser(
        "demo",
        help="set up demo folders with the bundled samples and run the daemon on them",
        description=(
            "Create DIR/{in,out,quarantine,state,audit} and DIR/daemon.yaml (built-in default profile, "
            "1 s polling, 2 s settle, sources kept), copy the bundled sample photos and video into "
            "DIR/in, and run the daemon in the foreground; anonymized copies appear in DIR/out. "
            "Safe to run again. Ctrl-C stops it."
        ),
    )
    p.add_argument("--dir", type=Path, default=Path("demo"), metavar="DIR", help="demo folder (default: ./demo)")
    p.set_defaults(func=cmd_demo)


def cmd_daemon(args: argparse.Namespace) -> int:
    from anonymizer.daemon.service import run_daemon

    return run_daemon(args.config, log_level=args.log_level)


def _open_journal(args: argparse.Namespace) -> Any:
    """Return (config, read-only journal or None). Raise ConfigError with a clear message."""
    import sqlite3

    from anonymizer.daemon.config import load_daemon_config
    from anonymizer.daemon.journal import Journal
    from anonymizer.daemon.service import JOURNAL_FILE
    from anonymizer.errors import ConfigError

    cfg = load_daemon_config(args.config)
    path = cfg.state_dir / JOURNAL_FILE
    if not path.exists():
        return cfg, None
    try:
        journal = Journal(path, readonly=True)
        journal.get_meta("schema_version")  # opening is lazy: touch it to surface errors here
    except (sqlite3.Error, OSError) as exc:
        raise ConfigError(f"{path}: cannot read the journal ({exc}); run as the service user or root") from exc
    return cfg, journal


def cmd_status(args: argparse.Namespace) -> int:
    from anonymizer.audit.records import utc_iso

    _cfg, journal = _open_journal(args)
    if journal is None:
        print("no journal yet: the daemon has not run with this config", file=sys.stderr)
        return 1
    try:
        counts = journal.counts()
        running = journal.running()
        failures = journal.recent_failures(10)
        depth = journal.queue_depth_by_folder()
    finally:
        journal.close()
    now = time.time()
    data = {
        "queue": depth,
        "states": counts,
        "running": [
            {
                "job_id": j.id,
                "folder": j.folder,
                "sha256": j.input_sha256,
                "running_s": round(now - (j.started_at or now), 1),
            }
            for j in running
        ],
        "recent_failures": [
            {
                "job_id": j.id,
                "folder": j.folder,
                "state": j.state,
                "attempts": j.attempts,
                "sha256": j.input_sha256,
                "reason": j.error,
                "time": utc_iso(j.updated_at),
                **({"retry_at": utc_iso(j.next_attempt_at)} if j.state == "queued" else {}),
            }
            for j in failures
        ],
    }
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    print(
        f"queue: {counts['queued']} queued, {counts['running']} running"
        + "".join(f"  [{k}: {v}]" for k, v in sorted(depth.items()))
    )
    for r in data["running"]:
        print(f"running: {r['job_id']} (folder {r['folder']}, {r['running_s']} s, sha256 {(r['sha256'] or '?')[:16]})")
    print("jobs: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    if data["recent_failures"]:
        print("recent failures:")
        for f in data["recent_failures"]:
            when = f" retry at {f['retry_at']}" if "retry_at" in f else ""
            print(f"  {f['time']} {f['job_id']} {f['state']} (attempts {f['attempts']}){when}: {f['reason']}")
    return 0


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from anonymizer.audit.log import AUDIT_FILE, verify

    cfg, journal = _open_journal(args)
    expected_lines = expected_head = None
    if journal is not None:
        try:
            head = journal.get_meta("audit_head")
        finally:
            journal.close()
        if head:
            lines, _, expected_head = head.partition(":")
            expected_lines = int(lines)
    result = verify(cfg.audit_dir / AUDIT_FILE, expected_lines=expected_lines, expected_head=expected_head)
    if result.ok:
        print(f"audit chain intact: {result.lines} lines, head {result.head}")
        return 0
    print(f"audit chain BROKEN: {result.problem} (first {result.lines} lines are intact)")
    return 1


def write_demo(root: Path) -> Path:
    """Create the demo layout under ``root`` (idempotent) and return its daemon config path."""
    from anonymizer.config import BUILTIN_PROFILES_DIR

    root = root.resolve()
    for sub in ("in", "out", "quarantine", "state", "audit"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    config = root / "daemon.yaml"
    if not config.exists():
        config.write_text(
            "# Demo daemon config written by `anonymizer demo`; paths are relative to this file.\n"
            "state_dir: state\n"
            "audit_dir: audit\n"
            "folders:\n"
            "  - name: demo\n"
            "    input: in\n"
            "    output: out\n"
            "    quarantine: quarantine\n"
            f"    profile: {BUILTIN_PROFILES_DIR / 'default.yaml'}\n"
            f"    poll_interval_s: {DEMO_POLL_S}\n"
            f"    settle_s: {DEMO_SETTLE_S}\n",
            encoding="utf-8",
        )
    if SAMPLES_DIR.is_dir():
        for sample in sorted(SAMPLES_DIR.iterdir()):
            target = root / "in" / sample.name
            if (
                sample.suffix.lower() in MEDIA_SUFFIXES
                and not target.exists()
                and not (root / "out" / sample.name).exists()
            ):
                # Copy under a temporary name and rename, as a well-behaved writer to a share does.
                tmp = target.with_name(target.name + ".part")
                shutil.copyfile(sample, tmp)
                tmp.rename(target)
    return config


def cmd_demo(args: argparse.Namespace) -> int:
    from anonymizer.daemon.service import run_daemon

    config = write_demo(args.dir)
    root = config.parent
    print(
        f"demo folders in {root}: drop photos/videos into {root / 'in'}, anonymized copies appear in "
        f"{root / 'out'}; rejected files go to {root / 'quarantine'}. Ctrl-C stops.\n"
        f"  status: anonymizer status --config {config}\n"
        f"  audit:  anonymizer audit verify --config {config}",
        file=sys.stderr,
    )
    if not SAMPLES_DIR.is_dir():
        print("(bundled samples not found: this is not a source checkout; add your own files)", file=sys.stderr)
    return run_daemon(config)
