"""The long-running service: warm-up, scanner thread, main loop, signals and sd_notify.

Threads: the scanner runs on its own thread and only inserts rows into the journal (its own
SQLite connection), so a job that takes minutes never starves discovery or settle tracking.
Jobs run one at a time on the main thread, which also owns signals and the systemd protocol.

Signals:
    SIGHUP   reload: the new config (and every profile it names) is validated and its engines
             loaded *before* it replaces the old one; an invalid config is logged and the old one
             kept. Applied between jobs.
    SIGTERM / SIGINT   drain: a running job, photo or video, is abandoned at its next progress
             callback (every frame, every inference pass, every 64 MiB hashed) and requeued
             without counting an attempt (its temporary output removed); then exit 0.

sd_notify is spoken by hand over ``$NOTIFY_SOCKET`` (a unix datagram socket): READY=1 after
warm-up, WATCHDOG=1 from the heartbeat thread while the main thread keeps ticking (see
``Heartbeat``), STATUS= with the queue depth, RELOADING=1 / READY=1 around a reload, STOPPING=1 on
shutdown. The heartbeat also writes ``state_dir/daemon.status.json`` for ``anonymizer status``.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from anonymizer.audit.log import AUDIT_FILE, AuditLog, load_or_create_key, load_or_create_key_file
from anonymizer.config import Profile
from anonymizer.daemon.config import DaemonConfig, FolderConfig, load_daemon_config
from anonymizer.daemon.fsutil import make_private_dir, make_private_file
from anonymizer.daemon.journal import Journal
from anonymizer.daemon.logging import configure_logging, get_logger
from anonymizer.daemon.metrics import Metrics
from anonymizer.daemon.scanner import Scanner
from anonymizer.daemon.worker import StopRequested, Worker
from anonymizer.durable import is_temp_name
from anonymizer.errors import ConfigError, ModelError

JOURNAL_FILE = "journal.sqlite3"
LOCK_FILE = "daemon.lock"
STATUS_FILE = "daemon.status.json"
# The heartbeat thread wakes this often (at most): pings the watchdog, rewrites the status file.
BEAT_S = 2.0
# Exit code of a daemon that stopped itself because its worker made no progress for
# ``stall_timeout_s`` (docs/daemon.md): systemd's Restart=on-failure starts it again.
EXIT_STALLED = 7


# --------------------------------------------------------------------------- sd_notify


class Notifier:
    """Minimal sd_notify(3): datagrams to ``$NOTIFY_SOCKET``; a no-op outside systemd."""

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        addr = env.get("NOTIFY_SOCKET", "")
        self._addr = ("\0" + addr[1:]) if addr.startswith("@") else addr
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        enabled = usec.isdigit() and (not pid or pid == str(os.getpid()))
        # Ping at half the interval, as sd_watchdog_enabled(3) recommends.
        self.watchdog_interval_s = int(usec) / 2e6 if enabled else None
        self._last_ping = 0.0
        self._lock = threading.Lock()

    def send(self, *lines: str) -> bool:
        if not self._addr:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                # Never block the main loop on a slow or stuck reader (a full datagram queue
                # blocks a plain send): a dropped STATUS is harmless, a hung daemon is not.
                sock.setblocking(False)
                sock.connect(self._addr)
                sock.sendall("\n".join(lines).encode())
            return True
        except OSError:
            return False

    def watchdog(self, *, force: bool = False) -> None:
        """Send WATCHDOG=1 if half the interval has passed since the last ping (or ``force``)."""
        if self.watchdog_interval_s is None:
            return
        now = time.monotonic()
        with self._lock:
            if not force and now - self._last_ping < self.watchdog_interval_s:
                return
            self._last_ping = now
        self.send("WATCHDOG=1")


# --------------------------------------------------------------------------- heartbeat


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


# --------------------------------------------------------------------------- scanner thread


class ScanLoop(threading.Thread):
    """Polls each folder every ``poll_interval_s`` and offers complete files to the journal.

    A local input folder is also watched (``LocalWakeup``): an event there scans it at once and
    again when the files it found could have settled, so a dropped file starts about
    ``settle_s`` after it is complete instead of up to a poll interval later.
    """

    def __init__(self, journal_path: Path, log: Any, wake: threading.Event) -> None:
        super().__init__(name="anonymizer-scanner", daemon=True)
        self._journal_path = journal_path
        self._log = log
        self._wake = wake
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._folders: dict[str, FolderConfig] = {}
        self._scanners: dict[str, Scanner] = {}
        self._next_scan: dict[str, float] = {}
        self._next_full: dict[str, float] = {}
        self.error: BaseException | None = None
        from anonymizer.daemon.wakeup import LocalWakeup

        self._poke = threading.Event()
        self.wakeup = LocalWakeup(self._poke, log)

    def set_folders(self, folders: tuple[FolderConfig, ...]) -> None:
        """Swap in a new folder list; a folder whose scan settings are unchanged keeps its state."""
        with self._lock:
            scanners: dict[str, Scanner] = {}
            for f in folders:
                old = self._scanners.get(f.name)
                same = old is not None and (old.root, old.settle_s, old.done_marker) == (
                    f.input,
                    f.settle_s,
                    f.done_marker,
                )
                scanners[f.name] = old if same else Scanner(f.input, settle_s=f.settle_s, done_marker=f.done_marker)  # type: ignore[assignment]
                self._next_scan.setdefault(f.name, 0.0)
                self._next_full.setdefault(f.name, time.monotonic() + f.rescan_interval_s)
            self._folders = {f.name: f for f in folders}
            self._scanners = scanners
        self.wakeup.update({f.name: f for f in folders})

    def stop(self) -> None:
        self._stopped.set()
        self._poke.set()
        self.wakeup.stop()

    def run(self) -> None:
        journal = Journal(self._journal_path)
        try:
            while not self._stopped.is_set():
                self._poke.wait(self._scan_due(journal))
                self._poke.clear()
        except BaseException as exc:  # noqa: BLE001 - reported to the main loop, which exits
            self.error = exc
            self._log.error("scanner.crashed", error=type(exc).__name__)
            self._wake.set()
        finally:
            journal.close()

    def _scan_due(self, journal: Journal) -> float:
        """Scan every folder that is due; return seconds until the next one is."""
        with self._lock:
            folders = dict(self._folders)
            scanners = dict(self._scanners)
        now = time.monotonic()
        waits = [1.0]
        woken = self.wakeup.take_due()
        for name, folder in folders.items():
            if self._stopped.is_set():
                break
            if now >= self._next_scan.get(name, 0.0) or name in woken:
                scanner = scanners[name]
                if now >= self._next_full.get(name, 0.0):
                    # Periodic reconciliation: re-offer every complete file; the journal
                    # recognises the ones it knows, anything it lost is queued again.
                    scanner.forget_reported()
                    self._next_full[name] = now + folder.rescan_interval_s
                found = scanner.scan()
                try:
                    offered = journal.offer_many(name, [(c.rel_path, c.stat) for c in found])
                except (sqlite3.OperationalError, OSError) as exc:
                    # A busy or briefly unwritable journal: forget what this scan reported so
                    # that the next scan offers those files again.
                    self._log.error("scan.journal_failed", folder=name, error=type(exc).__name__)
                    scanner.forget_reported()
                    offered = []
                new = sum(1 for job_id in offered if job_id)
                if new:
                    self._log.info("scan.queued", folder=name, new_jobs=new, settling=scanner.last.settling)
                    self._wake.set()
                if scanner.last.errors:
                    self._log.warning("scan.errors", folder=name, errors=scanner.last.errors)
                self._next_scan[name] = time.monotonic() + folder.poll_interval_s
                if scanner.last.settling and not folder.done_marker and name in self.wakeup.watched():
                    # Look again as soon as what is settling could be complete (not sooner than
                    # twice a second: a file that stays busy costs no more than a fast poll).
                    soon = time.monotonic() + max(folder.settle_s + 0.05, 0.5)
                    self._next_scan[name] = min(self._next_scan[name], soon)
            waits.append(self._next_scan[name] - time.monotonic())
        return max(0.05, min(waits))


# --------------------------------------------------------------------------- engines


class EngineCache:
    """One warm Engine per distinct profile (by settings hash); engines are slow to build."""

    def __init__(self) -> None:
        self._engines: dict[str, Any] = {}

    def prepare(self, profiles: list[Profile]) -> dict[str, Any]:
        """Return engines for ``profiles``, reusing warm ones; raise ModelError if one fails."""
        from anonymizer.pipeline import Engine

        ready: dict[str, Any] = {}
        for profile in profiles:
            key = profile.sha256
            if key not in ready:
                ready[key] = self._engines.get(key) or Engine(profile)
        return ready

    def replace(self, engines: dict[str, Any]) -> None:
        self._engines = engines

    def __call__(self, profile: Profile) -> Any:
        engine = self._engines.get(profile.sha256)
        if engine is None:
            raise ModelError("no warm engine for this profile (config changed without a reload)")
        return engine


# --------------------------------------------------------------------------- service


class Service:
    """The daemon. ``run()`` returns the process exit code."""

    def __init__(self, config_path: Path) -> None:
        self.config_path = Path(config_path)
        self.log = get_logger()
        self.notifier = Notifier()
        self.wake = threading.Event()
        self._stop = threading.Event()
        self._reload = threading.Event()
        self._status = ""

    # -- signals -------------------------------------------------------------

    def _on_stop(self, signum: int, _frame: Any) -> None:
        self._stop.set()
        self.wake.set()

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
        self._reload.set()
        self.wake.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_reload)

    # -- lifecycle -----------------------------------------------------------

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
            self._prepare_dirs(cfg)
        except BlockingIOError:
            self.log.error("daemon.already_running", error="another daemon holds the lock on this state_dir")
            return 5
        except (OSError, sqlite3.Error) as exc:
            self.log.error("startup.failed", error=self._describe_startup_error(exc))
            return 6
        interval_s = min(BEAT_S, self.notifier.watchdog_interval_s or BEAT_S)
        self.heartbeat = Heartbeat(
            self.notifier,
            cfg.state_dir / STATUS_FILE,
            stall_s=cfg.stall_timeout_s,
            interval_s=interval_s,
            on_stall=self._on_stall,
        )
        self.heartbeat.start()
        try:
            return self._serve(cfg)
        finally:
            self.heartbeat.stop()

    def _serve(self, cfg: DaemonConfig) -> int:
        heartbeat = self.heartbeat
        self.notifier.send("STATUS=warming up (loading detectors)")
        started = time.monotonic()
        engines = EngineCache()
        try:
            engines.replace(engines.prepare([f.profile for f in cfg.folders]))
        except ModelError as exc:
            self.log.error("engine.failed", error=str(exc))
            return 3
        journal = self._journal
        metrics = Metrics()
        heartbeat.metrics = metrics  # the running job's progress, as gauges
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
        worker = Worker(
            journal=journal,
            audit=AuditLog(cfg.audit_dir, key=self._chain_key),
            hmac_key=self._hmac_key,
            engine_for=engines,
            retry=cfg.retry,
            log=self.log,
            metrics=metrics,
            should_stop=self._stop.is_set,
            heartbeat=heartbeat.tick,
            report=heartbeat.report,
            output_mode=cfg.output_mode,
        )
        worker.note_mounts(cfg.folders)
        remote = None
        if cfg.broker is not None:
            # Jobs go to `anonymizer worker` processes; this process stays the coordinator.
            from anonymizer.daemon.remote import RemoteRunner

            remote = RemoteRunner(worker, journal, cfg.broker, self.log)
        self._remote = remote
        self._recover(cfg, journal, worker)
        scan = ScanLoop(cfg.state_dir / JOURNAL_FILE, self.log, self.wake)
        scan.set_folders(cfg.folders)
        scan.start()
        self._buckets = None
        if cfg.buckets:
            # S3 sources and sinks (anonymizer/buckets): a thread of their own feeding the folders.
            from anonymizer.buckets.loop import BucketLoop

            self._buckets = BucketLoop(cfg, self.log)
            self._buckets.start()
        metrics.ready.set(1)
        heartbeat.state = "running"
        heartbeat.tick()
        self.log.info(
            "daemon.ready", folders=len(cfg.folders), warmup_s=round(time.monotonic() - started, 2), pid=os.getpid()
        )
        self.notifier.send("READY=1", f"STATUS={self._status_line(journal, None)}", f"MAINPID={os.getpid()}")
        try:
            cfg = self._loop(cfg, journal, worker, engines, scan, metrics)
        finally:
            self.notifier.send("STOPPING=1", "STATUS=stopping")
            scan.stop()
            scan.join(timeout=30)
            if self._buckets is not None:
                self._buckets.stop()
                self._buckets.join(timeout=30)
            journal.close()
        if scan.error is not None:
            self.log.error("daemon.stopped", reason="scanner thread failed")
            return 1
        self.log.info("daemon.stopped", reason="signal")
        return 0

    def _prepare_dirs(self, cfg: DaemonConfig) -> None:
        """Create and check every folder the daemon writes to, before the slow warm-up.

        Raise BlockingIOError when another daemon holds this state_dir, OSError or sqlite3.Error
        when a folder is not a writable directory: a read-only audit_dir found only at the first
        job would make every job fail.
        """
        self._startup_key = "state_dir"
        # 0700 folders, 0600 files whatever the umask: the journal names files while jobs are open.
        make_private_dir(cfg.state_dir)
        # Two daemons on one journal would process every file twice and fork the audit chain.
        self._lock_fd = os.open(cfg.state_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._hmac_key = load_or_create_key(cfg.state_dir)
        self._journal = Journal(cfg.state_dir / JOURNAL_FILE)
        # int8 graphs derived from the shipped weights are cached beside the state, not in the
        # service user's home (which a hardened unit may not have).
        from anonymizer.detect.int8 import use_cache_dir

        use_cache_dir(cfg.state_dir / "models")
        self._startup_key = "audit_key"
        self._chain_key = load_or_create_key_file(cfg.audit_key_path)
        self._startup_key = "audit_dir"
        make_private_dir(cfg.audit_dir)
        make_private_file(cfg.audit_dir / AUDIT_FILE)
        # Opened for appending once, so that a read-only audit_dir is refused here, not at the first job.
        os.close(os.open(cfg.audit_dir / AUDIT_FILE, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC))
        for i, f in enumerate(cfg.folders):
            self._startup_key = f"folders[{i}].output"
            f.output.mkdir(parents=True, exist_ok=True)
            self._startup_key = f"folders[{i}].quarantine"
            f.quarantine.mkdir(parents=True, exist_ok=True)

    def _describe_startup_error(self, exc: BaseException) -> str:
        # These paths come from the operator's config (state, audit, output folders), not from
        # input files, so naming them is safe and is what the operator needs to fix it.
        key = getattr(self, "_startup_key", "state_dir")
        if isinstance(exc, OSError):
            where = f" ({exc.filename})" if exc.filename else ""
            return f"{self.config_path}: {key}{where} is not usable: {exc.strerror or type(exc).__name__}"
        return f"{self.config_path}: {key}: the journal cannot be opened: {exc}"

    def _recover(self, cfg: DaemonConfig, journal: Journal, worker: Worker) -> None:
        """Undo what a crash may have left: running jobs, unaudited outcomes, temporary outputs."""
        remote = getattr(self, "_remote", None)
        interrupted = journal.recover_interrupted(keep=remote.still_out() if remote is not None else ())
        if interrupted:
            self.log.warning("journal.recovered", requeued=len(interrupted), job_ids=[j.id for j in interrupted])
        audited = worker.write_missing_audit({f.name: f for f in cfg.folders})
        if audited:
            self.log.warning("audit.recovered", lines=audited)
        removed = 0
        for f in cfg.folders:
            for dirpath, dirnames, filenames in os.walk(f.output):
                dirnames[:] = [d for d in dirnames if not d.startswith(".")]
                for name in filenames:
                    # Only temporaries of ours (a job's, the engine's): a crash mid-job leaves them.
                    if is_temp_name(name):
                        try:
                            os.unlink(os.path.join(dirpath, name))
                            removed += 1
                        except OSError:
                            pass
        if removed:
            self.log.warning("output.temporaries_removed", count=removed)
        if remote is not None:
            reattached = remote.reattach({f.name: f for f in cfg.folders})
            if reattached:
                self.log.info("dist.reattached", jobs=reattached)

    def _loop(
        self,
        cfg: DaemonConfig,
        journal: Journal,
        worker: Worker,
        engines: EngineCache,
        scan: ScanLoop,
        metrics: Metrics,
    ) -> DaemonConfig:
        next_gauges = 0.0
        next_audit_retry = time.monotonic() + 30.0
        heartbeat = self.heartbeat
        while not self._stop.is_set():
            heartbeat.tick()
            if scan.error is not None or not scan.is_alive():
                break
            if self._reload.is_set():
                self._reload.clear()
                cfg = self._apply_reload(cfg, engines, scan, worker)
            folders = {f.name: f for f in cfg.folders}
            if time.monotonic() >= next_audit_retry:
                # Audit lines that could not be written (audit_dir full or read-only) are retried
                # here; until then their sources are not retired.
                next_audit_retry = time.monotonic() + 30.0
                try:
                    worker.write_missing_audit(folders)
                except OSError as exc:
                    self.log.error("audit.write_failed", reason=exc.strerror or type(exc).__name__)
            worker.retire_due(folders)
            if time.monotonic() >= next_gauges:
                self._update_status(journal, metrics, cfg, None)
                next_gauges = time.monotonic() + 2.0
            if self._remote is not None:
                self._step_remote(folders)
                continue
            job = journal.claim(folders)
            if job is None:
                self.wake.wait(1.0)
                self.wake.clear()
                continue
            self._update_status(journal, metrics, cfg, job.id)
            heartbeat.job_started(job.id, job.folder)
            try:
                worker.run(job, folders[job.folder])
            except StopRequested:
                break
            finally:
                heartbeat.job_ended()
            worker.retire_due(folders)
            self._update_status(journal, metrics, cfg, None)
        return cfg

    def _step_remote(self, folders: dict[str, FolderConfig]) -> None:
        """One turn with a broker: complete the jobs whose results arrived, send more while
        there is room, then wait briefly (results are polled; a new file wakes us at once)."""
        remote = self._remote
        try:
            done = remote.collect(folders)
            while remote.has_room():
                job = self._journal.claim(folders)
                if job is None:
                    break
                remote.dispatch(job, folders[job.folder])
        except StopRequested:
            return
        except remote.unavailable_errors() as exc:
            # The broker or result backend is away: jobs out stay out (the journal has them);
            # the loop keeps retiring and auditing, and tries again shortly.
            self.log.error("dist.broker_unavailable", error=type(exc).__name__)
            self._stop.wait(2.0)
            return
        if done:
            self.heartbeat.tick()
        self.wake.wait(0.2)
        self.wake.clear()

    def _apply_reload(self, cfg: DaemonConfig, engines: EngineCache, scan: ScanLoop, worker: Worker) -> DaemonConfig:
        self.notifier.send(
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
            ready = engines.prepare([f.profile for f in new.folders])
            for f in new.folders:
                f.output.mkdir(parents=True, exist_ok=True)
                f.quarantine.mkdir(parents=True, exist_ok=True)
        except (ConfigError, ModelError, OSError) as exc:
            reason = str(exc) if not isinstance(exc, OSError) else (exc.strerror or type(exc).__name__)
            self.log.error("config.reload_rejected", error=reason, kept="previous configuration")
            self.notifier.send("READY=1", "STATUS=reload rejected; previous configuration kept")
            return cfg
        if new.metrics != cfg.metrics:
            self.log.warning("config.metrics_unchanged", reason="the metrics address only changes with a restart")
        if new.broker != cfg.broker:
            # Jobs out on workers are followed through the broker they were sent to.
            self.log.warning("config.broker_unchanged", reason="the broker settings only change with a restart")
        engines.replace(ready)
        worker.output_mode = new.output_mode
        worker.note_mounts(new.folders)
        scan.set_folders(new.folders)
        if getattr(self, "_buckets", None) is not None:
            self._buckets.set_config(new)  # a bucket section added by a reload waits for a restart
        self.log.info("config.reloaded", folders=len(new.folders))
        self.notifier.send("READY=1", "STATUS=configuration reloaded")
        return new

    def _status_line(self, journal: Journal, running: str | None) -> str:
        depth = journal.queue_depth()
        return f"queue {depth}" + (f", running {running}" if running else ", idle")

    def _update_status(self, journal: Journal, metrics: Metrics, cfg: DaemonConfig, running: str | None) -> None:
        for f in cfg.folders:
            metrics.queue_depth.labels(f.name).set(0)
        for folder, depth in journal.queue_depth_by_folder().items():
            metrics.queue_depth.labels(folder).set(depth)
        held = journal.held_by_folder()
        for f in cfg.folders:
            metrics.sources_held.labels(f.name).set(held.get(f.name, 0))
        line = self._status_line(journal, running)
        if line != self._status:
            self._status = line
            self.notifier.send(f"STATUS={line}")


def run_daemon(config_path: Path, *, log_level: str = "info") -> int:
    """Entry point of ``anonymizer daemon``: configure logging, run the service, return exit code."""
    from anonymizer.stream.run import stage_threads_alive

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
