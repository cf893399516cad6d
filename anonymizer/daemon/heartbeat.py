"""The heartbeat thread: feeds systemd's watchdog while the main thread makes progress, and writes
``state_dir/daemon.status.json`` (the running job's stage, done, total, ETA) for ``anonymizer status``.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from anonymizer.daemon.metrics import Metrics
from anonymizer.daemon.notify import Notifier

STATUS_FILE = "daemon.status.json"
# The heartbeat thread wakes this often (at most): pings the watchdog, rewrites the status file.
BEAT_S = 2.0


class Heartbeat(threading.Thread):
    """Feeds the systemd watchdog from its own thread, but only while the worker makes progress.

    The main thread calls ``tick()`` on every loop turn and from every progress callback of a job
    (each video frame, each inference pass of a photo, each 64 MiB hashed or copied). This thread
    sends WATCHDOG=1 every ``interval_s`` as long as the last tick is at most ``stall_s`` old. So
    liveness does not depend on how long a job takes: a 24 MP photo that runs for minutes keeps
    the daemon alive while its passes advance, and a worker stuck inside one call stops the pings,
    so systemd kills and restarts it ``WatchdogSec`` later.

    It also writes ``status_path`` (JSON: pid, heartbeat and last-progress times, the running
    job's stage, done, total and ETA) for ``anonymizer status``; the file says "stopped" after a
    clean stop, and a heartbeat that stops moving tells a crashed or frozen process.
    """

    def __init__(
        self,
        notifier: Notifier,
        status_path: Path | None,
        *,
        stall_s: float,
        interval_s: float = BEAT_S,
        on_stall: Callable[[dict[str, Any]], None] | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        super().__init__(name="anonymizer-heartbeat", daemon=True)
        self.notifier = notifier
        self.status_path = status_path
        self.stall_s = stall_s
        self.interval_s = interval_s
        self.on_stall = on_stall
        self.metrics = metrics
        self.state = "starting"
        self.pings = 0
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._last_tick = time.monotonic()
        self._started_at = time.time()
        self._job: dict[str, Any] | None = None
        self._stage: tuple[str, float, int] | None = None  # (stage, monotonic start, done at start)

    def tick(self) -> None:
        """The worker proved progress (a job advanced, or the main loop turned)."""
        self._last_tick = time.monotonic()  # one float store: atomic, no lock needed
        if self.metrics is not None:
            self.metrics.last_progress.set(time.time())

    def job_started(self, job_id: str, folder: str) -> None:
        with self._lock:
            self._job = {"job_id": job_id, "folder": folder, "started_at": time.time()}
            self._stage = None
        self.tick()
        self.write_status()  # status shows the job at once, not at the next beat

    def report(self, stage: str, done: int, total: int) -> None:
        """Record the running job's progress: ``done`` of ``total`` in ``stage``.

        Called many times a second (every frame, and while a video's stages work); the status
        file is rewritten at once when the stage changes, else at the next beat.
        """
        now = time.monotonic()
        with self._lock:
            if self._job is None:
                return
            changed = self._stage is None or self._stage[0] != stage
            if changed:
                self._stage = (stage, now, done)
                self._job["stage_since"] = time.time()
            _, since, done_at_start = self._stage  # type: ignore[misc]
            eta = None
            rate_done = done - done_at_start
            if total > done and rate_done > 0 and now > since:
                eta = round((total - done) * (now - since) / rate_done, 1)
            self._job.update(stage=stage, done=done, total=total, stage_eta_s=eta)
            folder = self._job["folder"]
        if self.metrics is not None:
            if changed:
                self.metrics.clear_progress()
            self.metrics.record_progress(folder, stage, done, total, eta)
        if changed:
            self.write_status()

    def job_ended(self) -> None:
        with self._lock:
            self._job = None
            self._stage = None
        if self.metrics is not None:
            self.metrics.clear_progress()
        self.tick()

    def snapshot(self) -> dict[str, Any]:
        now, mono = time.time(), time.monotonic()
        with self._lock:
            job = dict(self._job) if self._job is not None else None
        return {
            "state": self.state,
            "pid": os.getpid(),
            "started_at": self._started_at,
            "heartbeat_at": now,
            "last_progress_at": now - (mono - self._last_tick),
            "beat_s": self.interval_s,
            "job": job,
        }

    def beat(self) -> None:
        """One heartbeat: ping the watchdog if the worker is not stalled; rewrite the status file.

        A worker that made no progress for ``stall_s`` while serving is reported once to
        ``on_stall`` (the service logs it and exits, and systemd restarts it); the pings stop
        too, so systemd's watchdog restarts a daemon whose own thread could not act.
        """
        idle_s = time.monotonic() - self._last_tick
        if idle_s <= self.stall_s:
            self.notifier.watchdog(force=True)
            self.pings += 1
        elif self.state == "running" and self.on_stall is not None:
            with self._lock:
                job = dict(self._job) if self._job is not None else None
            self.state = "stalled"
            self.write_status()
            self.on_stall({"stalled_s": round(idle_s, 1), "job": job})
            return
        self.write_status()

    def write_status(self) -> None:
        if self.status_path is None:
            return
        tmp = self.status_path.with_name(f".{self.status_path.name}.{os.getpid()}.tmp")
        # The heartbeat thread and the worker (on a stage change) both write: one at a time.
        with self._write_lock:
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    json.dump(self.snapshot(), fh)
                os.replace(tmp, self.status_path)  # readers never see a half-written file
            except OSError:
                pass  # advisory only: a full state_dir must not stop the daemon from working

    def run(self) -> None:
        self.beat()
        while not self._stopped.wait(self.interval_s):
            self.beat()

    def stop(self) -> None:
        """Stop beating and leave a status file that says the daemon stopped."""
        self._stopped.set()
        if self.is_alive():
            self.join(timeout=10)
        with self._lock:
            self._job = None
        self.state = "stopped"
        self.write_status()
