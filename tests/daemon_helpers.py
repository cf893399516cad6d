"""Drive the real daemon as a VMS would: a subprocess on temporary folders, files copied in.

``DaemonProcess`` starts ``python -m anonymizer daemon --config FILE`` with its own
``NOTIFY_SOCKET`` (a unix datagram socket the test reads), so tests see exactly the sd_notify
messages systemd would: READY=1, RELOADING=1, STOPPING=1, STATUS=...
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

import yaml
from support import sha256 as sha256  # re-exported: tests call dh.sha256 and dh.wait_for
from support import wait_for

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "samples"
FACE_SAMPLES = sorted(SAMPLES.glob("faces-*.jpg"))
START_TIMEOUT_S = 120


def write_fast_profile(path: Path, *, retention: dict[str, Any] | None = None, log_file_names: bool = False) -> Path:
    """A quick profile for tests: faces only, one scale (photos take ~50 ms on 2 cores)."""
    data: dict[str, Any] = {
        "name": "test-fast",
        "detect": {"faces": {"scales": [1.0]}, "plates": {"enabled": False}},
        "output": {"preset": "ultrafast"},
        "retention": retention or {"source": "keep"},
        "privacy": {"log_file_names": log_file_names},
    }
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def folder_entry(root: Path, name: str, profile: Path, **extra: Any) -> dict[str, Any]:
    """A folder block with in/out/quarantine under ``root/name`` (created), fast polling."""
    for sub in ("in", "out", "quarantine"):
        (root / name / sub).mkdir(parents=True, exist_ok=True)
    entry = {
        "name": name,
        "input": str(root / name / "in"),
        "output": str(root / name / "out"),
        "quarantine": str(root / name / "quarantine"),
        "profile": str(profile),
        "poll_interval_s": 0.2,
        "settle_s": 0.8,
    }
    entry.update(extra)
    return entry


def write_daemon_config(path: Path, folders: list[dict[str, Any]], **top: Any) -> Path:
    data = {"state_dir": str(path.parent / "state"), "audit_dir": str(path.parent / "audit"), "folders": folders}
    data.update(top)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def copy_slowly(
    src: Path, dst: Path, *, chunks: int = 6, pause_s: float = 0.3, between: Callable[[], None] | None = None
) -> None:
    """Write ``src`` to ``dst`` in chunks with pauses, as a slow SMB client does."""
    data = Path(src).read_bytes()
    step = max(1, len(data) // chunks + 1)
    with open(dst, "wb") as fh:
        for start in range(0, len(data), step):
            fh.write(data[start : start + step])
            fh.flush()
            os.fsync(fh.fileno())
            if between is not None:
                between()
            time.sleep(pause_s)


def audit_lines(audit_dir: Path) -> list[dict[str, Any]]:
    path = Path(audit_dir) / "audit.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in Path(root).rglob("*") if p.is_file())


def status(config: Path) -> dict[str, Any]:
    """``anonymizer status --config CONFIG --json``, parsed; fail with its output if it exits non-zero."""
    result = run_cli("status", "--config", str(config), "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "anonymizer", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class DaemonProcess:
    """The real daemon in a subprocess, with stdout/stderr captured to files and sd_notify read."""

    def __init__(self, config: Path, workdir: Path) -> None:
        self.config = config
        self.workdir = workdir
        self.index = len(list(workdir.glob("daemon-*.stdout")))
        self.stdout_path = workdir / f"daemon-{self.index}.stdout"
        self.stderr_path = workdir / f"daemon-{self.index}.stderr"
        self.notify_path = workdir / f"notify-{self.index}.sock"
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(str(self.notify_path))
        self.notify.settimeout(0.2)
        self.messages: list[str] = []
        self.timed: list[tuple[float, str]] = []  # (time.monotonic() at receipt, message)
        self._lock = threading.Lock()
        self._closed = threading.Event()
        # Drain the socket continuously, as systemd does: a full datagram queue would otherwise
        # hide messages (the daemon never blocks on it, it drops them).
        self._reader = threading.Thread(target=self._drain, name="notify-reader", daemon=True)
        self._reader.start()
        self.proc: subprocess.Popen[bytes] | None = None

    def _drain(self) -> None:
        while not self._closed.is_set():
            try:
                data = self.notify.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            received = time.monotonic()
            with self._lock:
                lines = data.decode().split("\n")
                self.messages.extend(lines)
                self.timed.extend((received, line) for line in lines)

    def start(self, *, wait_ready: bool = True, watchdog_usec: int = 2_000_000) -> DaemonProcess:
        env = dict(
            os.environ, NOTIFY_SOCKET=str(self.notify_path), WATCHDOG_USEC=str(watchdog_usec), PYTHONUNBUFFERED="1"
        )
        env["WATCHDOG_PID"] = ""  # the pid is not known before the fork; empty means "any"
        with open(self.stdout_path, "wb") as stdout, open(self.stderr_path, "wb") as stderr:
            # The child keeps its own copies of the descriptors; ours can close at once.
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "anonymizer", "daemon", "--config", str(self.config)],
                cwd=REPO,
                env=env,
                stdout=stdout,
                stderr=stderr,
            )
        if wait_ready:
            wait_for(lambda: self.saw("READY=1") or self._died(), START_TIMEOUT_S, "READY=1 from the daemon")
            assert self.proc.poll() is None, f"daemon exited early:\n{self.logs()}"
        return self

    def _died(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    def read_notify(self) -> list[str]:
        with self._lock:
            return list(self.messages)

    def times_of(self, message: str) -> list[float]:
        """When each ``message`` arrived (monotonic seconds), in order."""
        with self._lock:
            return [t for t, m in self.timed if m == message]

    def saw(self, message: str) -> bool:
        return message in self.read_notify()

    def count(self, message: str) -> int:
        return self.read_notify().count(message)

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def stop(self, timeout_s: float = 60) -> int:
        """SIGTERM and wait; return the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout_s)
        time.sleep(0.3)  # let the reader thread collect the last datagrams (STOPPING=1)
        return code

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)

    def close(self) -> None:
        self.kill()
        self._closed.set()
        self._reader.join(2)
        self.notify.close()
        self.notify_path.unlink(missing_ok=True)

    def logs(self) -> str:
        return self.stdout_path.read_text(errors="replace") + self.stderr_path.read_text(errors="replace")

    def events(self) -> list[dict[str, Any]]:
        out = []
        for line in self.stdout_path.read_text(errors="replace").splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                out.append({"event": "<not json>", "line": line})
        return out

    def event_names(self) -> list[str]:
        return [e.get("event", "") for e in self.events()]

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def all_daemon_logs(workdir: Path) -> str:
    """Every line every daemon run in ``workdir`` wrote, stdout and stderr."""
    return "".join(p.read_text(errors="replace") for p in sorted(workdir.glob("daemon-*.std*")))


def stop_process(proc: subprocess.Popen | None, timeout_s: float = 10) -> None:
    """Terminate a server the tests started (moto, redis-server, the API); kill it if it lingers."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout_s)


class FolderTeardown:
    """Stops a test folder's long-lived processes once, after the folder's last test.

    Without an ``__init__.py`` a "package" fixture lasts the whole session (pytest's folders are
    not packages), so its daemon and servers would go on polling beside every later test. The
    folder's conftest registers each stop function with ``add`` and calls ``after(nextitem)`` from
    its ``pytest_runtest_teardown`` hook; the fixture's own teardown calls ``stop`` (a no-op then).
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.stops: list[Callable[[], None]] = []

    def add(self, stop: Callable[[], None]) -> None:
        self.stops.append(stop)

    def stop(self) -> None:
        while self.stops:
            self.stops.pop()()

    def after(self, nextitem: Any) -> None:
        if nextitem is None or self.folder not in Path(str(nextitem.path)).parents:
            self.stop()
