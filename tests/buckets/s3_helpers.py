"""Helpers for the bucket tests: moto's standalone S3 server as a process on a free loopback port,
and a TCP proxy in front of it that can cut uploads to the sink off mid-body (a network failure
between the daemon and S3, not a stand-in for S3)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import daemon_helpers as dh
import pytest
from daemon_helpers import stop_process
from support import free_port

boto3 = pytest.importorskip("boto3", reason="the s3 extra is not installed (pip install -e '.[s3]')")
pytest.importorskip("moto", reason="moto[server] is not installed (pip install -e '.[test,api]')")

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing-secret-never-logged",
    "AWS_DEFAULT_REGION": "us-east-1",
}


class MotoServer:
    """``python -m moto.server`` on 127.0.0.1; ``start()`` skips the test run if it cannot start."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / "moto.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> MotoServer:
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=dict(os.environ, **CREDENTIALS),
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.skip(f"moto's S3 server exited at start: {self.log.read_text(errors='replace')[-500:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        pytest.skip("moto's S3 server did not start listening within 30 s")

    def stop(self) -> None:
        stop_process(self.proc)

    def client(self, url: str | None = None):
        from botocore.config import Config

        return boto3.session.Session(
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            region_name="us-east-1",
        ).client("s3", endpoint_url=url or self.url, config=Config(s3={"addressing_style": "path"}))


class CuttingProxy(threading.Thread):
    """Forwards loopback TCP to ``upstream``; while ``cut_puts_to`` names a bucket, a connection
    that starts sending a PUT into it is closed after part of the request went through."""

    def __init__(self, upstream_port: int) -> None:
        super().__init__(name="s3-cutting-proxy", daemon=True)
        self.upstream_port = upstream_port
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.cut_puts_to: str | None = None
        self.cuts = 0

    def run(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, outbound: bool) -> None:
        try:
            while data := src.recv(65536):
                target = self.cut_puts_to
                if outbound and target and f"PUT /{target}/".encode() in data:
                    dst.sendall(data[: len(data) // 2])  # the request head and part of the body
                    self.cuts += 1
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def close(self) -> None:
        self.sock.close()


def make_profile(root: Path) -> Path:
    # The local copy is scratch: deleted as soon as its output is recorded.
    return dh.write_fast_profile(root / "fast.yaml", retention={"source": "delete", "after": "0s"})


@dataclass
class Stack:
    root: Path
    moto: MotoServer
    proxy: CuttingProxy
    daemon: dh.DaemonProcess
    manual_config: Path
    s3: Any  # a boto3 client straight to moto

    def sync(self, name: str):
        """A BucketSync for one of the manual buckets, logging JSON lines to ``bucket-sync.log``."""
        import structlog

        from anonymizer.buckets.sync import BucketSync
        from anonymizer.settings.daemon import load_daemon_config
        from anonymizer.store.inbox import Inbox

        cfg = load_daemon_config(self.manual_config)
        bucket = next(b for b in cfg.buckets if b.name == name)
        fh = open(self.root / "bucket-sync.log", "a", encoding="utf-8")  # noqa: SIM115 - lives for the run
        log = structlog.wrap_logger(structlog.WriteLogger(fh), processors=[structlog.processors.JSONRenderer()])
        return BucketSync(bucket, Inbox(cfg), log)

    def logs(self) -> str:
        sync_log = self.root / "bucket-sync.log"
        return self.daemon.logs() + (sync_log.read_text(errors="replace") if sync_log.exists() else "")


def bucket_entry(name: str, url: str, **extra: Any) -> dict[str, Any]:
    entry = {
        "name": name,
        "folder": "s3-scratch",
        "source": {"bucket": f"{name}-src", "prefix": "in/"},
        "sink": {"bucket": f"{name}-sink", "prefix": "anon/"},
        "retention": "delete",
        "endpoint_url": url,
        "region": "us-east-1",
        "poll_interval_s": 0.1,
        "settle_s": 0.3,
    }
    entry.update(extra)
    return entry
