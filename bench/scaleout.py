"""Scale-out throughput: the same batch through the coordinator with 1 and with 2 workers.

A real redis-server on loopback, real ``anonymizer worker`` processes (concurrency 1 each) and
the daemon as coordinator (``broker:`` in its config). Each run uses fresh folders and a fresh
broker; the workers are started and answer a ping before the files arrive, and the daemon has
warmed up, so start-up is excluded. Measured from the moment the files are renamed into the input
folder until the last job is audited:

- files/min;
- the coordinator's own CPU seconds over that span (hashing, verification of every output,
  publishing, audit), from /proc/<pid>/stat: what one coordinator costs per file, whatever the
  number of workers;
- the workers' CPU seconds (their pool processes), for comparison.

Each sample photo is copied ``--copies`` times with unique trailing bytes after the JPEG end
marker (decoders ignore them), so no copy is a duplicate of another.

Usage:
    python bench/scaleout.py --copies 4               # 1 then 2 workers, fast profile
    python bench/scaleout.py --copies 4 --workers 1 2 4 --profile default
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO / "tests" / "scaleout")]

from scaleout_helpers import RedisServer, WorkerProcess, wait_for_workers

SAMPLES = sorted((REPO / "samples").glob("*.jpg"))
TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of one live process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def finished(journal: Path, n: int) -> bool:
    if not journal.exists():
        return False
    db = sqlite3.connect(f"file:{journal}?mode=ro", uri=True)
    try:
        row = db.execute(
            "SELECT COUNT(*) FROM jobs WHERE state IN ('done', 'retired', 'quarantined') AND audited = 1"
        ).fetchone()
    except sqlite3.Error:
        return False
    finally:
        db.close()
    return row[0] >= n


def run_once(n_workers: int, copies: int, profile: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="anonymizer-scaleout-") as tmp:
        root = Path(tmp)
        for d in ("in", "staging", "out", "q"):
            (root / d).mkdir()
        if profile == "fast":
            prof = root / "fast.yaml"
            prof.write_text("detect: {plates: {enabled: false}, faces: {scales: [1.0]}}\n")
        elif profile == "default":
            prof = REPO / "profiles" / "default.yaml"
        else:
            prof = Path(profile).resolve()
        redis = RedisServer(root / "redis").start()
        workers = [WorkerProcess(root, redis.url, f"w{i}").start() for i in range(n_workers)]
        daemon = None
        try:
            wait_for_workers(redis.url, [w.name for w in workers])
            config = {
                "state_dir": str(root / "state"),
                "audit_dir": str(root / "audit"),
                "broker": redis.url,
                "folders": [
                    {"name": "bench", "input": str(root / "in"), "output": str(root / "out"),
                     "quarantine": str(root / "q"), "profile": str(prof), "poll_interval_s": 0.5, "settle_s": 1}
                ],
            }
            (root / "daemon.yaml").write_text(yaml.safe_dump(config))
            staged = []
            for i in range(copies):
                for s in SAMPLES:
                    p = root / "staging" / f"{s.stem}-{i}.jpg"
                    p.write_bytes(s.read_bytes() + f"copy-{i}".encode())
                    staged.append(p)
            log = open(root / "daemon.log", "wb")  # noqa: SIM115 - closed with the process below
            daemon = subprocess.Popen(
                [sys.executable, "-m", "anonymizer", "daemon", "--config", str(root / "daemon.yaml")],
                cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
            )
            while b"daemon.ready" not in (root / "daemon.log").read_bytes():
                if daemon.poll() is not None:
                    raise RuntimeError((root / "daemon.log").read_text())
                time.sleep(0.2)
            cpu0 = cpu_s(daemon.pid)
            wcpu0 = sum(cpu_s(c) for w in workers for c in w.children())
            t0 = time.monotonic()
            for p in staged:
                p.rename(root / "in" / p.name)
            while not finished(root / "state" / "journal.sqlite3", len(staged)):
                if daemon.poll() is not None:
                    raise RuntimeError((root / "daemon.log").read_text()[-4000:])
                time.sleep(0.1)
            elapsed = time.monotonic() - t0
            coordinator = cpu_s(daemon.pid) - cpu0
            worker_cpu = sum(cpu_s(c) for w in workers for c in w.children()) - wcpu0
        finally:
            if daemon is not None:
                daemon.terminate()
                daemon.wait(60)
            for w in workers:
                w.stop()
            redis.stop()
        db = sqlite3.connect(root / "state" / "journal.sqlite3")
        outcomes = dict(db.execute("SELECT outcome, COUNT(*) FROM jobs GROUP BY outcome").fetchall())
        db.close()
        return {
            "workers": n_workers,
            "files": len(staged),
            "elapsed_s": round(elapsed, 1),
            "files_per_minute": round(60 * len(staged) / elapsed, 1),
            "coordinator_cpu_s": round(coordinator, 2),
            "coordinator_cpu_s_per_file": round(coordinator / len(staged), 3),
            "workers_cpu_s": round(worker_cpu, 1),
            "outcomes": outcomes,
        }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--copies", type=int, default=4, help="copies of each sample photo (default 4)")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts to run (default 1 2)")
    ap.add_argument("--profile", default="fast", help="'fast' (faces, one scale), 'default', or a profile path")
    args = ap.parse_args()
    rows = [run_once(n, args.copies, args.profile) for n in args.workers]
    print(json.dumps({"profile": args.profile, "cores": os.cpu_count(), "note": "includes settle_s=1 s", "runs": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
