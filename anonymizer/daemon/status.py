"""The ``status`` sub-command: the daemon's liveness, its queue and its jobs, read through the store
without writing to it.

Imports inside the command functions are deliberate: ``anonymizer --help`` and every other
command build this parser without loading OpenCV, PyAV, onnxruntime, FastAPI or Celery.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any


def open_journal(args: argparse.Namespace) -> Any:
    """Return (config, read-only journal or None). Raise ConfigError with a clear message."""
    import sqlite3

    from anonymizer.errors import ConfigError
    from anonymizer.settings.daemon import load_daemon_config
    from anonymizer.store import Journal, journal_path

    cfg = load_daemon_config(args.config)
    path = journal_path(cfg.state_dir)
    if not path.exists():
        return cfg, None
    try:
        journal = Journal(path, readonly=True)
        journal.get_meta("schema_version")  # opening is lazy: touch it to surface errors here
    except (sqlite3.Error, OSError) as exc:
        raise ConfigError(f"{path}: cannot read the journal ({exc}); run as the service user or root") from exc
    return cfg, journal


# A heartbeat older than this many beats means the process is gone or frozen.
STALE_BEATS = 5


def daemon_liveness(state_dir: Path, now: float | None = None) -> dict[str, Any]:
    """Given a state_dir, say whether a daemon serves it, from ``daemon.status.json``.

    The daemon's heartbeat thread rewrites that file every few seconds and marks it "stopped" on
    a clean stop. Running means: the file says so, its pid exists, and its heartbeat is recent (a
    crashed daemon leaves a stale heartbeat; its pid may since belong to another process).
    Returns ``{"state": running | starting | stopped | not-responding | never-started, ...}``.
    """
    import os

    from anonymizer.daemon.service import BEAT_S, STATUS_FILE

    now = time.time() if now is None else now
    try:
        info = json.loads((state_dir / STATUS_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"state": "never-started"}
    except (OSError, ValueError) as exc:
        return {"state": "unknown", "reason": f"cannot read {STATUS_FILE}: {getattr(exc, 'strerror', None) or exc}"}
    age = max(0.0, now - float(info.get("heartbeat_at") or 0))
    out: dict[str, Any] = {"pid": info.get("pid"), "heartbeat_age_s": round(age, 1)}
    if info.get("state") == "stopped":
        return {"state": "stopped", "stopped_at": info.get("heartbeat_at"), **out}
    pid_alive = False
    try:
        os.kill(int(info.get("pid") or 0), 0)
        pid_alive = int(info.get("pid") or 0) > 0
    except PermissionError:
        pid_alive = True  # exists, owned by another user (the service user)
    except (OSError, ValueError):
        pid_alive = False
    if not pid_alive:
        return {"state": "not-running", "reason": "the process is gone without a clean stop (crashed or killed)", **out}
    if age > STALE_BEATS * float(info.get("beat_s") or BEAT_S):
        return {"state": "not-responding", "reason": f"no heartbeat for {age:.0f} s", **out}
    out["started_at"] = info.get("started_at")
    out["last_progress_age_s"] = round(max(0.0, now - float(info.get("last_progress_at") or now)), 1)
    out["job"] = info.get("job")
    return {"state": info.get("state") or "running", **out}


def _describe_progress(job: dict[str, Any] | None) -> str:
    if not job or not job.get("stage"):
        return ""
    text = f": {job['stage']} {job.get('done', 0)}/{job.get('total', 0)}"
    if job.get("stage_eta_s") is not None:
        text += f", about {job['stage_eta_s']:.0f} s left in this stage"
    return text


def _describe_worker(w: dict[str, Any]) -> str:
    """One line of ``anonymizer status`` per worker record (anonymizer.scaleout.heartbeat)."""
    jobs = ", ".join(f"{c['job_id']} ({c['running_s']:.0f} s)" for c in w["current"]) or "idle"
    age = w["heartbeat_age_s"]
    beat = f"heartbeat {age:.0f} s ago" if age is not None else "heartbeat age unknown"
    line = f"worker {w['name']} on {w['host']}, {w['device']}: {jobs}; {w['done']} done, {w['failed']} failed; {beat}"
    if w["stale"]:
        line += (" STALE: the worker stopped reporting (dead, or cut off from Redis); the coordinator sends"
                 " a job it held to another worker within seconds (job.reclaimed, docs/scale-out.md)")  # fmt: skip
    elif w["state"] == "stopped":
        line += " (stopped)"
    return line


def split_running(job_ids: list[str], dist: dict[str, Any] | None) -> dict[str, str]:
    """With a broker, where each journal-'running' job is: ``worker NAME`` when a live worker's
    status record holds it, else ``broker`` (handed to the broker, waiting for a worker or for
    redelivery). Without a broker every running job runs in the daemon (``daemon``).

    Issue 25: two one-slot workers showed as "4 running": the daemon hands up to
    ``broker_in_flight`` jobs to the broker, and the journal calls them all running.
    """
    if dist is None:
        return {job_id: "daemon" for job_id in job_ids}
    holders: dict[str, str] = {}
    for w in dist.get("workers") or []:
        if w.get("stale") or w.get("state") == "stopped":
            continue
        for c in w.get("current") or []:
            holders[c.get("job_id")] = f"worker {w.get('name')}"
    return {job_id: holders.get(job_id, "broker") for job_id in job_ids}


def cmd_status(args: argparse.Namespace) -> int:
    import sqlite3

    from anonymizer.audit.records import utc_iso
    from anonymizer.errors import ConfigError
    from anonymizer.settings.daemon import load_daemon_config
    from anonymizer.store import journal_path, read_status

    cfg = load_daemon_config(args.config)
    path = journal_path(cfg.state_dir)
    try:
        status = read_status(path, failures=10, problems=20)
    except (sqlite3.Error, OSError) as exc:
        raise ConfigError(f"{path}: cannot read the journal ({exc}); run as the service user or root") from exc
    now = time.time()
    daemon = daemon_liveness(cfg.state_dir, now)
    if status is None:
        print("no journal yet: the daemon has not run with this config", file=sys.stderr)
        return 1
    counts, running, failures = status.counts, status.running, status.recent_failures
    depth, sources, retention = status.queue_by_folder, status.sources, status.retention_problems
    oldest = status.review_oldest_held_at
    # Outputs held for review (anonymizer.review.hold): how many wait, and for how long.
    review = {"waiting": status.review_waiting, "oldest_waiting_s": None if oldest is None else round(now - oldest, 1)}
    live_job = daemon.get("job") or {}
    dist = None
    if cfg.broker is not None:
        from anonymizer.scaleout.client import broker_status

        dist = broker_status(cfg.broker.url, cfg.broker.result_backend)
    where = split_running([j.id for j in running], dist)
    data = {
        "daemon": {k: v for k, v in daemon.items() if k != "job"},
        "queue": depth,
        "states": counts,
        "sources": sources,
        "review": review,
        "running": [
            {
                "job_id": j.id,
                "folder": j.folder,
                "sha256": j.input_sha256,
                "running_s": round(now - (j.started_at or now), 1),
                "where": where[j.id],
                **(
                    {k: live_job.get(k) for k in ("stage", "done", "total", "stage_eta_s", "stage_since")}
                    if live_job.get("job_id") == j.id and daemon["state"] == "running"
                    else {}
                ),
            }
            for j in running
        ],
        "retention_problems": [
            {
                "job_id": j.id,
                "folder": j.folder,
                "sha256": j.input_sha256,
                "state": "held" if j.retention == "held" else "retrying",
                "attempts": j.retention_attempts,
                "reason": j.retention_error,
                **({"retry_at": utc_iso(j.retain_after)} if j.retain_after is not None else {}),
            }
            for j in retention
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
    if dist is not None:
        data["dist"] = dist
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    d = data["daemon"]
    if d["state"] in ("running", "starting"):
        line = f"daemon: {d['state']} (pid {d['pid']}, heartbeat {d['heartbeat_age_s']:.0f} s ago"
        line += f", last progress {d['last_progress_age_s']:.0f} s ago)"
    elif d["state"] == "stopped":
        line = f"daemon: stopped (at {utc_iso(d['stopped_at'])})"
    elif d["state"] == "never-started":
        line = "daemon: not running (no heartbeat file: never started with this state_dir)"
    else:
        line = f"daemon: {d['state']} (pid {d.get('pid')}): {d.get('reason')}"
    print(line)
    on_broker = sum(1 for r in data["running"] if r["where"] == "broker")
    running_text = f"{counts['running']} running"
    if dist is not None:
        running_text = f"{counts['running'] - on_broker} running on a worker, {on_broker} queued on the broker"
    print(
        f"queue: {counts['queued']} queued, {running_text}" + "".join(f"  [{k}: {v}]" for k, v in sorted(depth.items()))
    )
    for r in data["running"]:
        if r["where"] == "broker":
            print(f"on the broker: {r['job_id']} (folder {r['folder']}, sent {r['running_s']} s ago)")
            continue
        on = f", on {r['where']}" if r["where"] != "daemon" else ""
        print(
            f"running: {r['job_id']} (folder {r['folder']}{on}, {r['running_s']} s,"
            f" sha256 {(r['sha256'] or '?')[:16]})" + _describe_progress(r)
        )
    if dist is not None:
        if "error" in dist:
            print(f"broker {dist['broker']}: not reachable ({dist['error']})")
        else:
            print(f"broker {dist['broker']}: {dist['waiting']} job(s) waiting for a worker")
            for w in dist["workers"]:
                print("  " + _describe_worker(w))
            if not dist["workers"]:
                print("  no worker has reported (anonymizer worker --config FILE)")
    # 'retired' is the journal's word for a finished job whose retention ran; say what happened
    # to the source instead (a kept source was not retired in any sense a user would recognise).
    finished = counts["done"] + counts["retired"]
    print(
        f"jobs: {counts['queued']} queued, {running_text}, {finished} finished, "
        f"{counts['quarantined']} quarantined, {counts['vanished']} vanished"
    )
    if finished:
        words = {"awaiting": "awaiting retention", "held": "held (retention gave up)", "kept": "kept",
                 "deleted": "deleted", "moved": "moved", "source-gone": "already gone",
                 "source-changed": "changed since hashed, left"}  # fmt: skip
        print("sources of finished jobs: " + ", ".join(f"{words.get(k, k)} {v}" for k, v in sorted(sources.items())))
    if review["waiting"]:
        print(
            f"review: {review['waiting']} output(s) waiting for a decision, oldest for {review['oldest_waiting_s']:.0f} s"
            " (anonymizer review list)"
        )
    if data["retention_problems"]:
        print("retention problems (sources left in place):")
        for r in data["retention_problems"]:
            when = f", next try {r['retry_at']}" if r["state"] == "retrying" and "retry_at" in r else ""
            tries = f"after {r['attempts']} failed tries{when}"
            print(f"  {r['job_id']} folder {r['folder']} {r['state']} {tries}: {r['reason']}")
    if data["recent_failures"]:
        print("recent failures:")
        for f in data["recent_failures"]:
            when = f" retry at {f['retry_at']}" if "retry_at" in f else ""
            print(f"  {f['time']} {f['job_id']} {f['state']} (attempts {f['attempts']}){when}: {f['reason']}")
    return 0
