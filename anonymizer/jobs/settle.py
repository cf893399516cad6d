"""The one settling rule: a thing is complete once it looked the same for ``settle_s`` and across
at least two looks. Shared by the daemon's folder scanner (size, mtime, inode) and the buckets
(ETag, size), which see writers they cannot ask: an SMB client still copying, an S3 multipart
upload being replaced.

Two looks, not one: a writer that pauses longer than one poll interval shows the same fingerprint
twice only if it really stopped; a fingerprint that changes restarts the clock.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
F = TypeVar("F", bound=Hashable)

MIN_LOOKS = 2


@dataclass
class Sighting(Generic[F]):
    """What one key last looked like, since when, how often in a row, and whether it was offered."""

    fingerprint: F
    since: float
    looks: int = 1
    reported: bool = False

    @property
    def seen_twice(self) -> bool:
        return self.looks >= MIN_LOOKS


class Settling(Generic[K, F]):
    """Tracks keys across looks; ``settled()`` says which ones stopped changing for ``settle_s``."""

    def __init__(self, settle_s: float) -> None:
        self.settle_s = settle_s
        self._seen: dict[K, Sighting[F]] = {}

    def look(self, key: K, fingerprint: F, now: float) -> Sighting[F]:
        """Record one look at ``key`` (monotonic ``now``); a new fingerprint restarts its clock."""
        seen = self._seen.get(key)
        if seen is None or seen.fingerprint != fingerprint:
            seen = self._seen[key] = Sighting(fingerprint, now)
        else:
            seen.looks += 1
        return seen

    def settled(self, seen: Sighting[F], now: float) -> bool:
        """True once ``seen`` stayed the same across two looks and for ``settle_s``."""
        return seen.seen_twice and now - seen.since >= self.settle_s

    def keep_only(self, keys: Iterable[K]) -> None:
        """Forget every key not in ``keys`` (gone from the folder or the listing)."""
        present = set(keys)
        for gone in set(self._seen) - present:
            del self._seen[gone]

    def forget(self, key: K) -> None:
        """Start ``key`` over: it must settle again before it is offered."""
        self._seen.pop(key, None)

    def forget_reported(self) -> None:
        """Offer every settled key again (a periodic full reconciliation)."""
        for seen in self._seen.values():
            seen.reported = False
