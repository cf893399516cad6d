"""Idle CPU of the daemon watching a polled folder that holds many already-processed files.

This is the steady state of a folder with ``retention: keep``: every poll lists and stats all the
files and reconciles new ones against the journal. The files are pre-registered in the journal
as processed (as if the daemon had handled them earlier), the real daemon is started on the
folder, and its CPU time (all threads, from /proc) is sampled over ``--seconds``.

Usage:
    python bench/daemon_idle.py --files 10000 --poll 10 --seconds 60
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from _seed import seed_processed

from anonymizer.store import JOURNAL_FILE, Journal


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime, all threads


def populate(root: Path, n: int) -> None:
    """Create ``n`` small files in 100 sub-folders and record them in the journal as processed."""
    seed_processed(root / "state" / JOURNAL_FILE, "bench", root / "in", n, prefix="cam", suffix=".mp4")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--poll", type=float, default=10.0, help="poll_interval_s")
    ap.add_argument("--seconds", type=float, default=60.0, help="measurement window")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="anonymizer-idle-") as tmp:
        root = Path(tmp)
        t0 = time.monotonic()
        populate(root, args.files)
        setup_s = time.monotonic() - t0
        (root / "profile.yaml").write_text("detect: {plates: {enabled: false}, faces: {scales: [1.0]}}\n")
        config = {
            "state_dir": "state",
            "audit_dir": "audit",
            "folders": [
                {
                    "name": "bench",
                    "input": "in",
                    "output": "out",
                    "quarantine": "q",
                    "profile": "profile.yaml",
                    "poll_interval_s": args.poll,
                    "settle_s": 30,
                },
            ],
        }
        (root / "daemon.yaml").write_text(yaml.safe_dump(config))
        with open(root / "daemon.log", "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "anonymizer", "daemon", "--config", str(root / "daemon.yaml")],
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            deadline = time.monotonic() + 120
            while b"daemon.ready" not in (root / "daemon.log").read_bytes():
                if proc.poll() is not None or time.monotonic() > deadline:
                    print((root / "daemon.log").read_text(), file=sys.stderr)
                    return 1
                time.sleep(0.2)
            # Let the first scans (which offer every file to the journal) pass before measuring.
            time.sleep(max(2 * args.poll, 5))
            c0, w0 = cpu_seconds(proc.pid), time.monotonic()
            time.sleep(args.seconds)
            c1, w1 = cpu_seconds(proc.pid), time.monotonic()
            rss_kb = int(
                next(
                    l for l in Path(f"/proc/{proc.pid}/status").read_text().splitlines() if l.startswith("VmRSS")
                ).split()[1]
            )
        finally:
            proc.terminate()
            code = proc.wait(60)
        journal = Journal(root / "state" / JOURNAL_FILE, readonly=True)
        counts = journal.counts()
        journal.close()
        result = {
            "files": args.files,
            "poll_interval_s": args.poll,
            "window_s": round(w1 - w0, 1),
            "cpu_s": round(c1 - c0, 3),
            "cpu_percent_of_one_core": round(100 * (c1 - c0) / (w1 - w0), 2),
            "rss_mib": round(rss_kb / 1024, 1),
            "jobs_queued_by_mistake": counts["queued"] + counts["running"],
            "exit_code": code,
            "setup_s": round(setup_s, 1),
        }
        print(json.dumps(result, indent=2))
        return 0 if result["jobs_queued_by_mistake"] == 0 and code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
