"""Wake the scanner when a file lands in a *local* input folder (watchdog's native observer).

Polling stays the source of truth: on SMB/NFS, other clients' writes raise no inotify event, and
even locally an event says only "look now", never "this file is complete" (settling decides
that). So a folder on a network filesystem gets no observer at all, and an observer that cannot
start (inotify watch limit) is logged and ignored. Handlers only enqueue (watchdog's own advice):
they mark the folder due and poke the scanner thread.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from anonymizer.settings.daemon import NETWORK_FS_TYPES, FolderConfig, mount_of

# Events that can mean a new or changed file. Opens and reads (our own hashing, a worker reading
# the source) are left out: they would wake the scanner for nothing.
WAKE_EVENTS = frozenset({"created", "modified", "moved", "closed"})


class LocalWakeup:
    """One observer per local input folder; ``take_due()`` returns the folders poked since."""

    def __init__(self, poke: threading.Event, log: Any) -> None:
        self._poke = poke
        self._log = log
        self._lock = threading.Lock()
        self._due: set[str] = set()
        self._observers: dict[str, tuple[Path, Any]] = {}

    def update(self, folders: dict[str, FolderConfig]) -> None:
        """Watch exactly the local input folders of ``folders`` (called at start and on reload)."""
        for name in list(self._observers):
            path, observer = self._observers[name]
            if name not in folders or folders[name].input != path:
                self._stop_one(observer)
                del self._observers[name]
        for name, folder in folders.items():
            if name in self._observers or mount_of(folder.input)[1] in NETWORK_FS_TYPES:
                continue
            observer = self._start(name, folder.input)
            if observer is not None:
                self._observers[name] = (folder.input, observer)

    def _start(self, name: str, path: Path) -> Any:
        try:
            from watchdog.events import FileSystemEventHandler
            from watchdog.observers import Observer
        except ImportError:
            return None

        wakeup = self

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: Any) -> None:
                if event.event_type in WAKE_EVENTS:
                    wakeup._mark(name)

        observer = Observer()
        observer.daemon = True
        try:
            observer.schedule(Handler(), str(path), recursive=True)
            observer.start()
        except OSError as exc:
            self._log.warning("scan.wakeup_unavailable", folder=name, reason=exc.strerror or type(exc).__name__)
            return None
        return observer

    def _mark(self, name: str) -> None:
        with self._lock:
            self._due.add(name)
        self._poke.set()

    def take_due(self) -> set[str]:
        with self._lock:
            due, self._due = self._due, set()
        return due

    def watched(self) -> set[str]:
        return set(self._observers)

    @staticmethod
    def _stop_one(observer: Any) -> None:
        observer.stop()
        observer.join(timeout=5)

    def stop(self) -> None:
        for _, observer in self._observers.values():
            self._stop_one(observer)
        self._observers.clear()
