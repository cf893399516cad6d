"""Sub-commands: ``daemon`` and ``demo`` here, ``status`` (daemon/status.py) and ``audit verify``/``head``
(daemon/audit_commands.py); all registered here and wired in by ``anonymizer.cli``.

Imports inside the command functions are deliberate: ``anonymizer --help`` and every other
command build this parser without loading OpenCV, PyAV, onnxruntime, FastAPI or Celery.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Any

from anonymizer.daemon.audit_commands import cmd_audit_head, cmd_audit_verify
from anonymizer.daemon.status import cmd_status

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
            "Read the daemon's SQLite journal (read-only, safe while the daemon runs) and its heartbeat "
            "file, and show whether the daemon is running, the queue per folder, the running job with "
            "its progress (done of total, ETA of the stage), job counts, what became of finished jobs' "
            "sources, sources whose retention is failing or held, and the most recent failures with "
            "their reasons; with a broker, the jobs waiting in it and every worker (host, device, "
            "current job, jobs done and failed, last heartbeat; stale when it stopped reporting). Exit 1 when the daemon has not run with this config yet."
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
            "Re-hash every line of audit.jsonl with the chain key (audit_key) and check the chain and "
            "the head the journal recorded (and --head), so an edited, reordered, deleted or truncated "
            "line is found, also one rewritten with recomputed hashes by someone without the key. "
            "Lines from before the chain was keyed are counted and reported. Exit 0 when intact; 1 "
            "names the first bad line."
        ),
    )
    v.add_argument(
        "--config", required=True, type=Path, metavar="FILE",
        help="the daemon's YAML config (its audit_dir, state_dir and audit_key locate log, journal and key)",
    )
    v.add_argument(
        "--head", metavar="VALUE",
        help=(
            "a head exported earlier by 'anonymizer audit head' (the whole syslog line, or LINES:HASH): "
            "the chain must still hold that line with that hash, so a rewrite or a cut tail is found "
            "even if the journal was changed too"
        ),
    )
    v.set_defaults(func=cmd_audit_verify)
    hd = audit_sub.add_parser(
        "head",
        help="print the chain's current head as an RFC 5424 syslog line, for journald or a remote log",
        description=(
            "Verify the chain, then print its head (line count, last hash, key id) as one RFC 5424 "
            "syslog line. Keep it outside this host's audit folder and journal (journald, a syslog "
            "server); 'audit verify --head' checks the chain against it later. Exit 1, printing "
            "nothing on stdout, when the chain is broken."
        ),
    )
    hd.add_argument(
        "--config", required=True, type=Path, metavar="FILE",
        help="the daemon's YAML config (its audit_dir, state_dir and audit_key)",
    )
    hd.set_defaults(func=cmd_audit_head)

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


def write_demo(root: Path) -> Path:
    """Create the demo layout under ``root`` (idempotent) and return its daemon config path."""
    from anonymizer.config import BUILTIN_PROFILES_DIR
    from anonymizer.fsutil import make_private_dir

    root = root.resolve()
    for sub in ("in", "out", "quarantine"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for sub in ("state", "audit"):
        make_private_dir(root / sub)  # the journal and the audit trail: the service user's only
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
