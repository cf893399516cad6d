"""The service's one loop: claim → executor → lifecycle, with reload, audit retry and retention
between turns.

Each turn::

    tick the heartbeat ─▶ reload if SIGHUP came ─▶ retry missing audit lines (every 30 s)
      ─▶ retire what is due ─▶ gauges and STATUS= (every 2 s)
      ─▶ executor.poll(): jobs that ended ─▶ claim while the executor has room ─▶ submit
      ─▶ poll again when something was submitted (an in-process job has ended by then)
      ─▶ wait for a new file (or a result) when nothing was claimed

The same loop drives an in-process engine and Celery workers (``anonymizer.daemon.executors``);
the job's lifecycle (``Lifecycle``) records every outcome, so the loop only keeps time.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anonymizer.daemon.engines import EngineCache
from anonymizer.daemon.executors import Executor
from anonymizer.daemon.heartbeat import Heartbeat
from anonymizer.daemon.job import Lifecycle, StopRequested
from anonymizer.daemon.metrics import Metrics
from anonymizer.daemon.notify import Notifier
from anonymizer.daemon.scanloop import ScanLoop
from anonymizer.errors import ConfigError, ModelError
from anonymizer.settings.daemon import DaemonConfig, FolderConfig, load_daemon_config
from anonymizer.store import Journal

AUDIT_RETRY_S = 30.0  # how often audit lines that could not be written are tried again
GAUGES_S = 2.0  # how often queue gauges and the STATUS= line are refreshed while no job ends
UNAVAILABLE_WAIT_S = 2.0  # how long the loop waits after the executor reported its backend away


@dataclass(frozen=True)
class Signals:
    """What the signal handlers set and the loop reads: stop (SIGTERM/SIGINT), reload (SIGHUP),
    and wake (a new file was queued, or a signal came: stop waiting)."""

    stop: threading.Event = field(default_factory=threading.Event)
    reload: threading.Event = field(default_factory=threading.Event)
    wake: threading.Event = field(default_factory=threading.Event)


class StatusLine:
    """Queue gauges and systemd's STATUS= line ("queue 3, running j-…"), sent only when it changes."""

    def __init__(
        self, journal: Journal, metrics: Metrics, notifier: Notifier, folders: tuple[FolderConfig, ...]
    ) -> None:
        self.journal = journal
        self.metrics = metrics
        self.notifier = notifier
        self.folders = folders  # the configured ones: replaced on reload
        self._line = ""

    def line(self, running: str | None) -> str:
        depth = self.journal.queue_depth()
        return f"queue {depth}" + (f", running {running}" if running else ", idle")

    def update(self, running: str | None) -> None:
        folders = self.folders
        for f in folders:
            self.metrics.queue_depth.labels(f.name).set(0)
        for folder, depth in self.journal.queue_depth_by_folder().items():
            self.metrics.queue_depth.labels(folder).set(depth)
        held = self.journal.held_by_folder()
        for f in folders:
            self.metrics.sources_held.labels(f.name).set(held.get(f.name, 0))
        line = self.line(running)
        if line != self._line:
            self._line = line
            self.notifier.send(f"STATUS={line}")


class Coordinator:
    """Runs the loop until a stop; ``run()`` returns the configuration in force at the end."""

    def __init__(
        self,
        *,
        config_path: Path,
        cfg: DaemonConfig,
        journal: Journal,
        lifecycle: Lifecycle,
        executor: Executor,
        engines: EngineCache,
        scan: ScanLoop,
        heartbeat: Heartbeat,
        status: StatusLine,
        signals: Signals,
        log: Any,
        buckets: Any = None,
    ) -> None:
        self.config_path = config_path
        self.cfg = cfg
        self.journal = journal
        self.lifecycle = lifecycle
        self.executor = executor
        self.engines = engines
        self.scan = scan
        self.heartbeat = heartbeat
        self.status = status
        self.signals = signals
        self.log = log
        self.buckets = buckets  # the S3 thread (anonymizer.buckets.loop), told about reloads
        self._next_gauges = 0.0
        self._next_audit_retry = time.monotonic() + AUDIT_RETRY_S

    def run(self) -> DaemonConfig:
        try:
            while self.turn():
                pass
        finally:
            self.executor.stop()
        return self.cfg

    def turn(self) -> bool:
        """One turn of the loop; False once it must end (a stop, or the scanner thread died)."""
        signals = self.signals
        if signals.stop.is_set():
            return False
        self.heartbeat.tick()
        if self.scan.error is not None or not self.scan.is_alive():
            return False
        if signals.reload.is_set():
            signals.reload.clear()
            self.cfg = self.reload(self.cfg)
        folders = {f.name: f for f in self.cfg.folders}
        self._housekeeping(folders)
        try:
            self._collect(folders)
            submitted = self._fill(folders)
            if submitted:
                # An in-process job has ended by now: retire it before the next turn may see a
                # stop (a source kept at once is recorded so before the daemon exits).
                self._collect(folders)
        except StopRequested:
            return False  # the job was requeued; the stop event is set
        except self.executor.unavailable_errors() as exc:
            # The broker or result backend is away: jobs out stay out (the journal has them);
            # the loop keeps retiring and auditing, and tries again shortly.
            self.log.error("dist.broker_unavailable", error=type(exc).__name__)
            signals.stop.wait(UNAVAILABLE_WAIT_S)
            return True
        if not submitted:
            signals.wake.wait(self.executor.wait_s)
            signals.wake.clear()
        return True

    def _collect(self, folders: dict[str, FolderConfig]) -> None:
        """Take the outcomes of jobs that ended; retire what became due and refresh the status."""
        if self.executor.poll(folders):
            self.heartbeat.tick()
            self.lifecycle.retire_due(folders)
            self.status.update(None)

    def _fill(self, folders: dict[str, FolderConfig]) -> int:
        """Claim jobs while the executor has room; return how many were submitted."""
        submitted = 0
        while self.executor.capacity() > 0 and not self.signals.stop.is_set():
            job = self.journal.claim(folders)
            if job is None:
                break
            self.executor.submit(job, folders[job.folder])
            submitted += 1
        return submitted

    def _housekeeping(self, folders: dict[str, FolderConfig]) -> None:
        if time.monotonic() >= self._next_audit_retry:
            # Audit lines that could not be written (audit_dir full or read-only) are retried
            # here; until then their sources are not retired.
            self._next_audit_retry = time.monotonic() + AUDIT_RETRY_S
            try:
                self.lifecycle.write_missing_audit(folders)
            except OSError as exc:
                self.log.error("audit.write_failed", reason=exc.strerror or type(exc).__name__)
        self.lifecycle.retire_due(folders)
        self.journal.flush_names()  # erased names out of the WAL, once no reader holds it
        if time.monotonic() >= self._next_gauges:
            self.status.update(None)
            self._next_gauges = time.monotonic() + GAUGES_S

    def reload(self, cfg: DaemonConfig) -> DaemonConfig:
        """Load the configuration again; return the new one, or ``cfg`` if the new one is refused.

        Everything that can fail (the file, every profile's engine, the folders) is done before
        anything changes, so a bad reload leaves the running configuration untouched.
        """
        notifier = self.status.notifier
        notifier.send(
            "RELOADING=1",
            f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}",
            "STATUS=reloading configuration",
        )
        self.log.info("config.reloading")
        try:
            new = load_daemon_config(self.config_path)
            if (new.state_dir, new.audit_dir, new.audit_key_path) != (cfg.state_dir, cfg.audit_dir, cfg.audit_key_path):
                raise ConfigError(
                    f"{self.config_path}: state_dir, audit_dir and audit_key can only change with a restart"
                )
            ready = self.engines.prepare([f.profile for f in new.folders])
            for f in new.folders:
                f.output.mkdir(parents=True, exist_ok=True)
                f.quarantine.mkdir(parents=True, exist_ok=True)
        except (ConfigError, ModelError, OSError) as exc:
            reason = str(exc) if not isinstance(exc, OSError) else (exc.strerror or type(exc).__name__)
            self.log.error("config.reload_rejected", error=reason, kept="previous configuration")
            notifier.send("READY=1", "STATUS=reload rejected; previous configuration kept")
            return cfg
        if new.metrics != cfg.metrics:
            self.log.warning("config.metrics_unchanged", reason="the metrics address only changes with a restart")
        if new.broker != cfg.broker:
            # Jobs out on workers are followed through the broker they were sent to.
            self.log.warning("config.broker_unchanged", reason="the broker settings only change with a restart")
        self.engines.replace(ready)
        self.lifecycle.output_mode = new.output_mode
        self.lifecycle.note_mounts(new.folders)
        self.scan.set_folders(new.folders)
        self.status.folders = new.folders
        if self.buckets is not None:
            self.buckets.set_config(new)  # a bucket section added by a reload waits for a restart
        self.log.info("config.reloaded", folders=len(new.folders))
        notifier.send("READY=1", "STATUS=configuration reloaded")
        return new
