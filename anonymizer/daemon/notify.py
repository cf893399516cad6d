"""sd_notify(3) spoken by hand over ``$NOTIFY_SOCKET`` (a unix datagram socket): READY=1 after
warm-up, WATCHDOG=1 (sent by the heartbeat, ``anonymizer.daemon.heartbeat``), STATUS= with the
queue depth, RELOADING=1 / READY=1 around a reload, STOPPING=1 on shutdown.
"""

from __future__ import annotations

import os
import socket
import threading
import time


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
