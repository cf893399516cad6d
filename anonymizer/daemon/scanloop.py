"""The scanner thread: polls every input folder and offers complete files to the journal.

It runs beside the main loop and only inserts rows into the journal (its own SQLite connection),
so a job that takes minutes never starves discovery or settle tracking. Whether a file is complete
is ``Scanner``'s (size, mtime and inode settled: ``anonymizer.jobs.settle``); this thread decides
when each folder is scanned: on its poll interval, at once on a local wake-up, and again as soon as
what a wake-up found could have settled.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from anonymizer.daemon.scanner import Scanner
from anonymizer.daemon.wakeup import LocalWakeup
from anonymizer.settings.daemon import FolderConfig
from anonymizer.store import Journal


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
