"""A real Redis broker and real ``anonymizer worker`` processes for the scale-out tests.

``RedisServer`` runs Debian's ``redis-server`` on a free loopback port with its own temporary
folder (no persistence unless asked); ``WorkerProcess`` runs ``anonymizer worker --config FILE``
(optionally through ``fault_worker.py``) with its log captured.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from daemon_helpers import REPO, stop_process, wait_for
from support import free_port

HERE = Path(__file__).resolve().parent


def redis_server_binary() -> str | None:
    return shutil.which("redis-server") or ("/usr/bin/redis-server" if os.access("/usr/bin/redis-server", os.X_OK) else None)


class RedisServer:
    def __init__(self, workdir: Path, *, appendonly: bool = False) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.appendonly = appendonly
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        binary = redis_server_binary()
        assert binary is not None
        args = [
            binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.workdir),
            "--save", "", "--appendonly", "yes" if self.appendonly else "no", "--daemonize", "no",
            "--protected-mode", "yes", "--logfile", str(self.workdir / "redis.log"),
        ]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self.ping, 20, "redis-server to answer PING")
        return self

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def restart(self) -> None:
        """Stop the server and start it again on the same port (without persistence it forgets
        every queued message and stored result, as a broker host that rebooted)."""
        self.stop()
        self.start()

    def stop(self) -> None:
        stop_process(self.proc)


class WorkerProcess:
    """``anonymizer worker`` in a subprocess; ``fault`` runs it through fault_worker.py."""

    def __init__(
        self, workdir: Path, broker: str, name: str, *, fault: bool = False, concurrency: int = 1, **config: Any
    ) -> None:
        self.workdir = workdir
        self.name = name
        self.config = workdir / f"worker-{name}.yaml"
        self.config.write_text(
            yaml.safe_dump({"broker": broker, "name": name, "concurrency": concurrency, **config}), encoding="utf-8"
        )
        self.log_path = workdir / f"worker-{name}.log"
        self.fault = fault
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        entry = [str(HERE / "fault_worker.py")] if self.fault else ["-m", "anonymizer", "worker"]
        env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=str(REPO))
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, *entry, "--config", str(self.config)], cwd=REPO, env=env, stdout=log, stderr=log
            )
        return self

    def children(self) -> list[int]:
        """Pids of the pool processes (where jobs run)."""
        assert self.proc is not None
        try:
            text = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        except OSError:
            return []
        return [int(p) for p in text.split()]

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """kill -9 of the whole worker: its main process and its pool processes, as a host that dies."""
        assert self.proc is not None
        children = self.children()
        self.proc.kill()
        self.proc.wait(10)
        for pid in children:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass

    def terminate(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        for pid in self.children():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def wait_for_workers(broker: str, names: list[str], timeout_s: float = 90) -> None:
    """Wait until every named worker answers a Celery ping (so jobs spread over all of them)."""
    from anonymizer.scaleout.app import make_app

    app = make_app(broker)

    def answered() -> bool:
        replies = app.control.ping(timeout=0.5) or []
        seen = {name.split("@", 1)[1] for reply in replies for name in reply}
        return set(names) <= seen

    wait_for(answered, timeout_s, f"workers {names} to answer a ping", interval_s=0.5)


def backend_info(broker: str, task_id: str) -> Any:
    from anonymizer.scaleout.app import make_app

    return make_app(broker).AsyncResult(task_id).info
