"""Where each worker stands, for ``anonymizer status`` and Prometheus: a record in Redis per worker.

Every ``anonymizer worker`` process writes one small JSON record to the result backend (Redis)
every ``heartbeat_s`` seconds, with a TTL: its name, host, device, the job each engine process
runs, jobs done and failed by outcome. ``anonymizer status`` reads them all and marks a worker
stale when its record was not refreshed for ``STALE_BEATS`` beats.

Why a record of its own rather than Celery's heartbeats or a ``celery inspect`` ping:

- Celery's heartbeats are events, and task events stay off (they would copy each payload, paths
  on the shares, to every listener); reading them also needs a listener running all along.
- A ping only finds workers alive right now, and answers late or not at all from one whose
  main process is busy: a worker that died, the one an operator needs to see, is simply absent.
  A record outlives its worker (TTL: the visibility timeout plus an hour, as long as its job may
  wait for redelivery), so status shows the dead worker as stale, with the job it held.
- A record's age is read from its TTL in Redis (PTTL), Redis's own clock: clocks that differ
  between hosts cannot make a live worker look stale or a dead one live.

Inside a worker, jobs run in pool processes (prefork) and the heartbeat thread runs in the
main process. Each pool process sends what it does (job started, device, job ended) as one
datagram to a Unix socket of the main process: a datagram is never half-written, so a pool
process killed mid-job cannot leave anything corrupt behind; the main process notices the dead
process and counts its job as ``lost`` (Celery delivers it again). Only job ids travel, never
a file name.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from anonymizer.detect.torch import nvidia_device_present

KEY_PREFIX = "anonymizer:worker:"
EVENTS_ENV = "ANONYMIZER_WORKER_EVENTS"  # the main process's socket, inherited by pool processes
STALE_BEATS = 6  # a record older than this many beats is stale (its worker died or lost Redis)
# Outcomes of a job on a worker: what ``anonymizer.scaleout.task.execute`` returned, plus ``lost``
# (its engine process died) and ``crashed`` (a bug raised out of the task).
OUTCOMES = {"ok": "done", "error": "failed", "mismatch": "refused", "poison": "poison", "stale": "stale"}
NOT_FAILED = ("done", "stale")


# ---------------------------------------------------------------------- pool processes


_sender: tuple[int, socket.socket] | None = None


def emit(event: str, **fields: Any) -> None:
    """From a pool process: tell the main process ``event`` (start, device, end). Never raises:
    a worker without a reporter (tests, a reporter that stopped) runs its jobs all the same."""
    global _sender
    address = os.environ.get(EVENTS_ENV)
    if not address:
        return
    try:
        if _sender is None or _sender[0] != os.getpid():  # one socket per process, not inherited
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            sock.settimeout(1.0)
            _sender = (os.getpid(), sock)
        data = json.dumps({"event": event, "pid": os.getpid(), "at": time.time(), **fields}).encode()
        _sender[1].sendto(data, address)
    except OSError:
        pass


def describe_device(device: str) -> str:
    """``cpu``, or ``cuda:N NAME`` for the GPU an engine runs on (torch is loaded by then)."""
    if device != "cuda":
        return device
    try:
        import torch

        index = torch.cuda.current_device()
        return f"cuda:{index} {torch.cuda.get_device_name(index)}"
    except Exception:  # noqa: BLE001 - a name for display only
        return "cuda"


def host_device() -> str:
    """The device before any job ran, without importing torch (0.6 GB): cpu without an NVIDIA
    device; with one, the engine's device decides (profile detect.device) and is shown once known."""

    return "cuda available (no job yet)" if nvidia_device_present() else "cpu"


# ---------------------------------------------------------------------- the main process


@dataclass
class WorkerState:
    """What one worker's record says. ``running``: pool pid -> (job id, started at)."""

    name: str
    host: str
    pid: int
    concurrency: int
    heartbeat_s: float
    ttl_s: int
    device: str
    started_at: float = field(default_factory=time.time)
    state: str = "running"
    running: dict[int, tuple[str, float]] = field(default_factory=dict)
    outcomes: dict[str, int] = field(default_factory=dict)

    def record(self, now: float) -> dict[str, Any]:
        return {
            "name": self.name,
            "host": self.host,
            "pid": self.pid,
            "state": self.state,
            "device": self.device,
            "concurrency": self.concurrency,
            "heartbeat_s": self.heartbeat_s,
            "ttl_s": self.ttl_s,
            "started_at": self.started_at,
            "heartbeat_at": now,
            "current": [
                {"job_id": job, "started_at": at} for job, at in sorted(self.running.values(), key=lambda r: r[1])
            ],
            "outcomes": dict(sorted(self.outcomes.items())),
        }


class Reporter:
    """The main process's heartbeat thread: applies the pool processes' events, refreshes the
    record every ``heartbeat_s``, and keeps the optional Prometheus metrics (``WorkerMetrics``)."""

    def __init__(self, client: Any, state: WorkerState, *, metrics: Any = None, log: Any = None) -> None:
        self.client = client
        self.state = state
        self.metrics = metrics
        self.log = log
        self._dir = tempfile.mkdtemp(prefix="anonymizer-worker-")  # 0700: only this user may send
        self.address = os.path.join(self._dir, "events.sock")
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(self.address)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="worker-heartbeat", daemon=True)
        self._redis_ok = True
        if metrics is not None:
            metrics.info(state)

    @property
    def key(self) -> str:
        return KEY_PREFIX + self.state.name

    def start(self) -> Reporter:
        os.environ[EVENTS_ENV] = self.address  # before the pool forks: every pool process has it
        self.beat()
        self._thread.start()
        return self

    def stop(self) -> None:
        """Write the record one last time as ``stopped`` (kept an hour) and close the socket."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        self.state.state, self.state.ttl_s = "stopped", 3600
        self.beat()
        self._sock.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def _run(self) -> None:
        self._sock.settimeout(0.2)
        next_beat = time.monotonic() + self.state.heartbeat_s
        while not self._stop.is_set():
            try:
                data = self._sock.recv(65536)
            except TimeoutError:
                data = b""
            except OSError:
                return  # closed by stop()
            if data:
                self.apply(data)
            if time.monotonic() >= next_beat:
                next_beat = time.monotonic() + self.state.heartbeat_s
                self.prune_dead(lambda pid: os.path.exists(f"/proc/{pid}") and not _zombie(pid))
                self.beat()

    def apply(self, data: bytes) -> None:
        """One pool process's event: a job started or ended, or the device its engine uses."""
        try:
            event = json.loads(data)
            pid, kind = int(event["pid"]), str(event["event"])
        except (ValueError, KeyError, TypeError):
            return
        if kind == "start":
            self.state.running[pid] = (str(event.get("job_id")), float(event.get("at") or time.time()))
            if self.metrics is not None:
                self.metrics.job_started(*self.state.running[pid], len(self.state.running))
        elif kind == "device":
            self.state.device = str(event.get("device"))
            if self.metrics is not None:
                self.metrics.info(self.state)
        elif kind == "end":
            job = self.state.running.pop(pid, None)
            self._ended(job, str(event.get("outcome")), float(event.get("seconds") or 0.0))

    def prune_dead(self, alive: Callable[[int], bool]) -> None:
        """A pool process that died mid-job (OOM kill, segfault) sends no ``end``: its job is
        counted ``lost`` (Celery puts it back in the queue) and leaves the record."""
        for pid in [p for p in self.state.running if not alive(p)]:
            job = self.state.running.pop(pid)
            self._ended(job, "lost", time.time() - job[1])

    def _ended(self, job: tuple[str, float] | None, outcome: str, seconds: float) -> None:
        self.state.outcomes[outcome] = self.state.outcomes.get(outcome, 0) + 1
        if self.metrics is not None:
            self.metrics.job_ended(job[0] if job else None, outcome, seconds, len(self.state.running))

    def beat(self) -> None:
        """Write the record now; a Redis that is away is logged once, and tried again next beat."""
        now = time.time()
        try:
            self.client.set(self.key, json.dumps(self.state.record(now)), ex=self.state.ttl_s)
        except Exception as exc:  # noqa: BLE001 - redis-py raises several kinds; the jobs go on
            if self._redis_ok and self.log is not None:
                self.log.warning("worker.heartbeat_failed", error=type(exc).__name__)
            self._redis_ok = False
            return
        if not self._redis_ok and self.log is not None:
            self.log.info("worker.heartbeat_restored")
        self._redis_ok = True
        if self.metrics is not None:
            self.metrics.heartbeat(now)


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            return fh.read().rsplit(")", 1)[-1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


# ---------------------------------------------------------------------- anonymizer status


def read_workers(client: Any) -> list[dict[str, Any]]:
    """Every worker record in Redis, as ``anonymizer status`` shows them, sorted by name.

    Adds ``heartbeat_age_s`` (from the record's remaining TTL: Redis's clock), ``stale``,
    ``done``, ``failed`` and each current job's ``running_s``.
    """
    out = []
    for key in sorted(client.scan_iter(match=KEY_PREFIX + "*", count=200)):
        raw, remaining_ms = client.get(key), client.pttl(key)
        try:
            rec = json.loads(raw) if raw is not None else None
        except ValueError:
            rec = None
        if not isinstance(rec, dict):
            continue
        ttl_s = float(rec.get("ttl_s") or 0)
        age = max(0.0, ttl_s - remaining_ms / 1000.0) if remaining_ms and remaining_ms > 0 else None
        outcomes = {str(k): int(v) for k, v in (rec.get("outcomes") or {}).items()}
        stale = (
            rec.get("state") != "stopped" and age is not None and age > STALE_BEATS * float(rec.get("heartbeat_s") or 0)
        )
        beat_at = float(rec.get("heartbeat_at") or time.time())
        out.append(
            {
                "name": str(rec.get("name")),
                "host": str(rec.get("host")),
                "pid": rec.get("pid"),
                "device": str(rec.get("device")),
                "state": "stale" if stale else str(rec.get("state")),
                "stale": stale,
                "heartbeat_age_s": None if age is None else round(age, 1),
                "current": [
                    {"job_id": c.get("job_id"), "running_s": round(_running_s(c, beat_at, age), 1)}
                    for c in rec.get("current") or []
                ],
                "done": outcomes.get("done", 0),
                "failed": sum(n for k, n in outcomes.items() if k not in NOT_FAILED),
                "outcomes": outcomes,
            }
        )
    return out


def _running_s(current: dict[str, Any], beat_at: float, age: float | None) -> float:
    # Both times are the worker's clock; the age since its last beat is Redis's.
    return max(0.0, beat_at - float(current.get("started_at") or beat_at)) + (age or 0.0)
