"""The long-running service: signals, start-up (folders, lock, keys, warm-up), recovery, and the
wiring of its threads around the one loop (``anonymizer.daemon.coordinator``).

Threads: the scanner runs on its own thread and only inserts rows into the journal
(``anonymizer.daemon.scanloop``); the heartbeat feeds systemd's watchdog while the main thread
makes progress (``anonymizer.daemon.heartbeat``); S3 buckets, when configured, have a thread of their
own. The main thread runs the loop, which hands each claimed job to an executor: in this process,
one at a time, or to Celery workers when the config names a broker
(``anonymizer.daemon.executors``).

Signals:
    SIGHUP   reload: the new config (and every profile it names) is validated and its engines
             loaded *before* it replaces the old one; an invalid config is logged and the old one
             kept. Applied between jobs.
    SIGTERM / SIGINT   drain: a running job, photo or video, is abandoned at its next progress
             callback (every frame, every inference pass, every 64 MiB hashed) and requeued
             without counting an attempt (its temporary output removed); then exit 0.
"""

from __future__ import annotations

import fcntl
import os
import signal
import sqlite3
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anonymizer.audit.log import AUDIT_FILE, AuditLog, load_or_create_key, load_or_create_key_file
from anonymizer.daemon.coordinator import Coordinator, Signals, StatusLine
from anonymizer.daemon.engines import EngineCache
from anonymizer.daemon.executors import Celery, Executor, InProcess
from anonymizer.daemon.heartbeat import BEAT_S, STATUS_FILE, Heartbeat
from anonymizer.daemon.job import Lifecycle
from anonymizer.daemon.metrics import Metrics
from anonymizer.daemon.notify import Notifier
from anonymizer.daemon.scanloop import ScanLoop
from anonymizer.detect.graph_cache import use_cache_dir
from anonymizer.durable import is_temp_name, remove_leftovers
from anonymizer.errors import ConfigError, ModelError
from anonymizer.fsutil import make_private_dir, make_private_file
from anonymizer.logs import configure_logging, get_logger
from anonymizer.settings.daemon import DaemonConfig, load_daemon_config
from anonymizer.store import JOURNAL_FILE, Job, Journal
from anonymizer.stream.run import stage_threads_alive

# Re-exported: ``anonymizer status`` and tests read these names from here.
__all__ = [
    "BEAT_S",
    "EXIT_STALLED",
    "LOCK_FILE",
    "STATUS_FILE",
    "Heartbeat",
    "Notifier",
    "Service",
    "run_daemon",
]

LOCK_FILE = "daemon.lock"
# Exit code of a daemon that stopped itself because its worker made no progress for
# ``stall_timeout_s`` (docs/daemon.md): systemd's Restart=on-failure starts it again.
EXIT_STALLED = 7


@dataclass(frozen=True)
class StateFiles:
    """What start-up opened in state_dir and the audit folder, held for the daemon's life."""

    lock_fd: int  # flock'd: one daemon per state_dir
    hmac_key: bytes  # names at rest in the journal
    chain_key: bytes  # the audit chain's
    journal: Journal


class StartupFailed(Exception):
    """A folder or file of the config is unusable at start-up; ``key`` names the config key."""

    def __init__(self, key: str, error: OSError | sqlite3.Error) -> None:
        super().__init__(key)
        self.key = key
        self.error = error


class Service:
    """The daemon. ``run()`` returns the process exit code."""

    def __init__(self, config_path: Path) -> None:
        self.config_path = Path(config_path)
        self.log = get_logger()
        self.notifier = Notifier()
        self.signals = Signals()

    # -- signals -------------------------------------------------------------

    def _on_stop(self, signum: int, _frame: Any) -> None:
        self.signals.stop.set()
        self.signals.wake.set()

    def _on_stall(self, info: dict[str, Any]) -> None:
        """The worker made no progress for ``stall_timeout_s``: report it and exit, from the
        heartbeat thread (the main thread is the one stuck). systemd restarts the daemon; the
        next start requeues the job, counting the attempt, and removes its temporary output, so
        an input that hangs the engine every time ends in quarantine after retry.max_attempts."""
        job = info.get("job") or {}
        self.log.error(
            "daemon.stalled",
            stalled_s=info.get("stalled_s"),
            job_id=job.get("job_id"),
            stage=job.get("stage"),
            done=job.get("done"),
            total=job.get("total"),
            action="exiting; systemd restarts the daemon",
        )
        self.notifier.send("STATUS=stalled: no progress; restarting")
        os._exit(EXIT_STALLED)

    def _on_reload(self, signum: int, _frame: Any) -> None:
        self.signals.reload.set()
        self.signals.wake.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_reload)

    # -- start-up ------------------------------------------------------------

    def run(self) -> int:
        # Ultralytics phones home and may pip-install at import unless told not to.
        os.environ.setdefault("YOLO_OFFLINE", "1")
        os.environ.setdefault("YOLO_AUTOINSTALL", "False")
        os.environ.setdefault("YOLO_VERBOSE", "False")
        self.install_signal_handlers()
        try:
            cfg = load_daemon_config(self.config_path)
        except ConfigError as exc:
            self.log.error("config.invalid", error=str(exc))
            return 2
        try:
            state = open_state(cfg)
        except BlockingIOError:
            self.log.error("daemon.already_running", error="another daemon holds the lock on this state_dir")
            return 5
        except StartupFailed as exc:
            self.log.error("startup.failed", error=describe_startup_error(self.config_path, exc))
            return 6
        metrics = Metrics()
        heartbeat = Heartbeat(
            self.notifier,
            cfg.state_dir / STATUS_FILE,
            stall_s=cfg.stall_timeout_s,
            interval_s=min(BEAT_S, self.notifier.watchdog_interval_s or BEAT_S),
            on_stall=self._on_stall,
            metrics=metrics,  # the running job's progress, as gauges
        )
        heartbeat.start()
        try:
            return self._serve(cfg, state, metrics, heartbeat)
        finally:
            heartbeat.stop()

    def _serve(self, cfg: DaemonConfig, state: StateFiles, metrics: Metrics, heartbeat: Heartbeat) -> int:
        self.notifier.send("STATUS=warming up (loading detectors)")
        started = time.monotonic()
        engines = EngineCache()
        try:
            engines.replace(engines.prepare([f.profile for f in cfg.folders]))
        except ModelError as exc:
            self.log.error("engine.failed", error=str(exc))
            return 3
        journal = state.journal
        if cfg.metrics is not None:
            try:
                metrics.serve(*cfg.metrics)
            except OSError as exc:
                self.log.error(
                    "metrics.failed",
                    error=exc.strerror or type(exc).__name__,
                    address=f"{cfg.metrics[0]}:{cfg.metrics[1]}",
                )
                return 4
        lifecycle = Lifecycle(
            journal=journal,
            audit=AuditLog(cfg.audit_dir, key=state.chain_key),
            hmac_key=state.hmac_key,
            engine_for=engines,
            retry=cfg.retry,
            log=self.log,
            metrics=metrics,
            should_stop=self.signals.stop.is_set,
            heartbeat=heartbeat.tick,
            report=heartbeat.report,
            output_mode=cfg.output_mode,
        )
        lifecycle.note_mounts(cfg.folders)
        status = StatusLine(journal, metrics, self.notifier, cfg.folders)
        executor = self._executor(cfg, journal, lifecycle, status, heartbeat)
        self._recover(cfg, journal, lifecycle, executor)
        scan = ScanLoop(cfg.state_dir / JOURNAL_FILE, self.log, self.signals.wake)
        scan.set_folders(cfg.folders)
        scan.start()
        buckets = None
        if cfg.buckets:
            # S3 sources and sinks (anonymizer/buckets): a thread of their own feeding the folders.
            # Imported here: boto3 is an optional extra, loaded only when a bucket is configured.
            from anonymizer.buckets.loop import BucketLoop

            buckets = BucketLoop(cfg, self.log)
            buckets.start()
        metrics.ready.set(1)
        heartbeat.state = "running"
        heartbeat.tick()
        self.log.info(
            "daemon.ready", folders=len(cfg.folders), warmup_s=round(time.monotonic() - started, 2), pid=os.getpid()
        )
        self.notifier.send("READY=1", f"STATUS={status.line(None)}", f"MAINPID={os.getpid()}")
        loop = Coordinator(
            config_path=self.config_path,
            cfg=cfg,
            journal=journal,
            lifecycle=lifecycle,
            executor=executor,
            engines=engines,
            scan=scan,
            heartbeat=heartbeat,
            status=status,
            signals=self.signals,
            log=self.log,
            buckets=buckets,
        )
        try:
            loop.run()
        finally:
            self.notifier.send("STOPPING=1", "STATUS=stopping")
            scan.stop()
            scan.join(timeout=30)
            if buckets is not None:
                buckets.stop()
                buckets.join(timeout=30)
            journal.close()
        if scan.error is not None:
            self.log.error("daemon.stopped", reason="scanner thread failed")
            return 1
        self.log.info("daemon.stopped", reason="signal")
        return 0

    def _executor(
        self, cfg: DaemonConfig, journal: Journal, lifecycle: Lifecycle, status: StatusLine, heartbeat: Heartbeat
    ) -> Executor:
        """Celery workers when the config names a broker (this process stays the coordinator),
        else the engine in this process."""
        if cfg.broker is not None:
            return Celery(lifecycle, journal, cfg.broker, self.log)

        def started(job: Job) -> None:
            status.update(job.id)
            heartbeat.job_started(job.id, job.folder)

        return InProcess(lifecycle, started=started, ended=heartbeat.job_ended)

    def _recover(self, cfg: DaemonConfig, journal: Journal, lifecycle: Lifecycle, executor: Executor) -> None:
        """Undo what a crash may have left: running jobs, unaudited outcomes, temporary outputs."""
        interrupted = journal.recover_interrupted(keep=executor.still_out())
        if interrupted:
            self.log.warning("journal.recovered", requeued=len(interrupted), job_ids=[j.id for j in interrupted])
        audited = lifecycle.write_missing_audit({f.name: f for f in cfg.folders})
        if audited:
            self.log.warning("audit.recovered", lines=audited)
        # Only temporaries of ours (a job's, the engine's): a crash mid-job leaves them.
        removed = sum(remove_leftovers(f.output, is_temp_name, skip_dot_dirs=True) for f in cfg.folders)
        if removed:
            self.log.warning("output.temporaries_removed", count=removed)
        reattached = executor.reattach({f.name: f for f in cfg.folders})
        if reattached:
            self.log.info("dist.reattached", jobs=reattached)


def open_state(cfg: DaemonConfig) -> StateFiles:
    """Create and check every folder the daemon writes to, before the slow warm-up.

    Raise BlockingIOError when another daemon holds this state_dir, StartupFailed (naming the
    config key) when a folder is not a writable directory: a read-only audit_dir found only
    at the first job would make every job fail.
    """
    key = "state_dir"
    try:
        # 0700 folders, 0600 files whatever the umask: the journal names files while jobs are open.
        make_private_dir(cfg.state_dir)
        # Two daemons on one journal would process every file twice and fork the audit chain.
        lock_fd = os.open(cfg.state_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        hmac_key = load_or_create_key(cfg.state_dir)
        journal = Journal(cfg.state_dir / JOURNAL_FILE)
        # int8 graphs derived from the shipped weights are cached beside the state, not in the
        # service user's home (which a hardened unit may not have).
        use_cache_dir(cfg.state_dir / "models")
        key = "audit_key"
        chain_key = load_or_create_key_file(cfg.audit_key_path)
        key = "audit_dir"
        make_private_dir(cfg.audit_dir)
        make_private_file(cfg.audit_dir / AUDIT_FILE)
        # Opened for appending once, so that a read-only audit_dir is refused here, not at the first job.
        os.close(os.open(cfg.audit_dir / AUDIT_FILE, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC))
        for i, f in enumerate(cfg.folders):
            key = f"folders[{i}].output"
            f.output.mkdir(parents=True, exist_ok=True)
            key = f"folders[{i}].quarantine"
            f.quarantine.mkdir(parents=True, exist_ok=True)
    except BlockingIOError:
        raise
    except (OSError, sqlite3.Error) as exc:
        raise StartupFailed(key, exc) from exc
    return StateFiles(lock_fd, hmac_key, chain_key, journal)


def describe_startup_error(config_path: Path, failed: StartupFailed) -> str:
    # These paths come from the operator's config (state, audit, output folders), not from
    # input files, so naming them is safe and is what the operator needs to fix it.
    exc, key = failed.error, failed.key
    if isinstance(exc, OSError):
        where = f" ({exc.filename})" if exc.filename else ""
        return f"{config_path}: {key}{where} is not usable: {exc.strerror or type(exc).__name__}"
    return f"{config_path}: {key}: the journal cannot be opened: {exc}"


def run_daemon(config_path: Path, *, log_level: str = "info") -> int:
    """Entry point of ``anonymizer daemon``: configure logging, run the service, return exit code."""

    configure_logging(log_level)
    code = Service(config_path).run()
    if stage_threads_alive():
        # A stopped job's stage thread may still be inside an inference call (its chain waits
        # for it 2 s at most); finalizing the interpreter under it aborts the process (SIGABRT,
        # "terminate called without an active exception"). Journal, audit and status file are
        # written and closed by now: leave without finalizing, with the same exit code.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code
