"""The daemon's bucket thread: every configured bucket's ``BucketSync.tick()`` on its poll interval.

S3 calls (listing, multi-GB downloads and uploads) run here, beside the main thread's jobs, so a
slow bucket never holds up the watched folders, and a job never holds up a listing. Expected
failures (S3 unreachable, refused, disk full) are logged per bucket and retried next round; any
other exception is a bug and ends this thread (logged), leaving the folders running.

The daemon imports this module only when a bucket is configured: boto3 is an optional extra.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from anonymizer.buckets.sync import BucketSync, TransientError
from anonymizer.store.inbox import Inbox


class BucketLoop(threading.Thread):
    """Ticks each configured bucket on its poll interval until ``stop()``."""

    def __init__(self, cfg: Any, log: Any) -> None:
        super().__init__(name="anonymizer-buckets", daemon=True)
        self._cfg = cfg
        self._log = log
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self.error: BaseException | None = None

    def set_config(self, cfg: Any) -> None:
        """Use ``cfg``'s buckets from the next round on (after a reload)."""
        with self._lock:
            self._cfg = cfg

    def stop(self) -> None:
        self._stopped.set()

    def run(self) -> None:
        syncs: dict[str, tuple[Any, BucketSync]] = {}
        due: dict[str, float] = {}
        inbox = None
        try:
            while not self._stopped.is_set():
                with self._lock:
                    cfg = self._cfg
                if inbox is None or inbox.cfg is not cfg:
                    if inbox is not None:
                        inbox.close()
                    inbox = Inbox(cfg)
                    syncs = {}
                waits = [5.0]
                for bucket in cfg.buckets:
                    if self._stopped.is_set():
                        break
                    if bucket.name not in syncs:
                        syncs[bucket.name] = (bucket, BucketSync(bucket, inbox, self._log))
                    if time.monotonic() >= due.get(bucket.name, 0.0):
                        try:
                            syncs[bucket.name][1].tick()
                        except (ClientError, BotoCoreError, OSError, TransientError) as exc:
                            reason = type(exc).__name__ if not isinstance(exc, ClientError) else "S3 error"
                            self._log.warning("bucket.round_failed", bucket=bucket.name, reason=reason)
                        due[bucket.name] = time.monotonic() + bucket.poll_interval_s
                    waits.append(due[bucket.name] - time.monotonic())
                self._stopped.wait(max(0.05, min(waits)))
        except BaseException as exc:  # noqa: BLE001 - a bug: logged, the folders keep running
            self.error = exc
            self._log.error("buckets.crashed", error=type(exc).__name__)
        finally:
            if inbox is not None:
                inbox.close()
