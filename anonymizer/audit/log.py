"""Append-only, hash-chained audit log (``audit.jsonl``).

Each line is a JSON object carrying ``prev`` (the previous line's ``hash``; 64 zeros for the
first line) and ``hash``: SHA-256 of the line's canonical JSON without the ``hash`` key. Editing,
reordering or deleting a line breaks the chain from there on; ``verify`` names the first bad line.
Truncating the tail leaves a valid chain, so the daemon also records the head (line count and
hash) in its journal and ``verify`` can compare against it.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GENESIS = "0" * 64
AUDIT_FILE = "audit.jsonl"
KEY_FILE = "audit-hmac.key"


def canonical(record: dict[str, Any]) -> bytes:
    """Return the bytes that are hashed: sorted keys, no spaces, UTF-8."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def line_hash(record: dict[str, Any]) -> str:
    body = {k: v for k, v in record.items() if k != "hash"}
    return hashlib.sha256(canonical(body)).hexdigest()


def load_or_create_key(state_dir: Path) -> bytes:
    """Return the HMAC key kept in ``state_dir``, creating it (mode 0600) on first use."""
    path = Path(state_dir) / KEY_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = path.read_bytes()
        if len(key) < 32:
            raise ValueError(f"{path}: HMAC key is shorter than 32 bytes; refusing to use it") from None
        return key
    key = secrets.token_bytes(32)
    try:
        os.write(fd, key)
        os.fsync(fd)
    finally:
        os.close(fd)
    return key


def path_hmac(key: bytes, folder: str, rel_path: str) -> str:
    """Return HMAC-SHA256 of ``folder/rel_path``: names a file in the audit without revealing it."""
    # surrogateescape: a name that is not valid UTF-8 is hashed as its raw bytes.
    return hmac.new(key, f"{folder}/{rel_path}".encode("utf-8", "surrogateescape"), hashlib.sha256).hexdigest()


class AuditLog:
    """Appends chained lines to ``audit_dir/audit.jsonl``; each append is fsynced before returning."""

    def __init__(self, audit_dir: Path) -> None:
        self.path = Path(audit_dir) / AUDIT_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # (file size, head hash, line count) after our last append: lets append() skip re-reading
        # a file that can grow to millions of lines, while still noticing anyone else's writes.
        self._cache: tuple[int, str, int] | None = None

    def _tail(self) -> tuple[str, int]:
        """Return (hash of the last line, number of lines). Reads backwards from the end."""
        if not self.path.exists():
            return GENESIS, 0
        count = 0
        last = b""
        with self.path.open("rb") as fh:
            for raw in fh:
                if raw.strip():
                    count += 1
                    last = raw
        if not last:
            return GENESIS, 0
        return json.loads(last)["hash"], count

    def append(self, record: dict[str, Any]) -> tuple[str, int]:
        """Chain ``record`` to the last line, append it durably and return (hash, line count)."""
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            # The lock keeps a second daemon (or a misconfigured second unit) from interleaving
            # lines and forking the chain.
            fcntl.flock(fd, fcntl.LOCK_EX)
            size = os.fstat(fd).st_size
            if self._cache is not None and self._cache[0] == size:
                prev, count = self._cache[1], self._cache[2]
            else:
                prev, count = self._tail()
            body = {k: v for k, v in record.items() if k not in ("prev", "hash")}
            body["prev"] = prev
            body["hash"] = line_hash(body)
            data = canonical(body) + b"\n"
            os.write(fd, data)
            os.fsync(fd)
            self._cache = (size + len(data), body["hash"], count + 1)
            return body["hash"], count + 1
        finally:
            os.close(fd)

    def job_ids(self) -> set[str]:
        """Return the ids of jobs that already have a ``job`` line (used after a crash)."""
        ids: set[str] = set()
        if self.path.exists():
            with self.path.open("rb") as fh:
                for raw in fh:
                    if raw.strip():
                        rec = json.loads(raw)
                        if rec.get("event") == "job":
                            ids.add(rec.get("job_id"))
        return ids


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of ``verify``: ``ok`` with the line count and head hash, or the first problem."""

    ok: bool
    lines: int
    head: str
    problem: str | None = None


def verify(path: Path, *, expected_lines: int | None = None, expected_head: str | None = None) -> VerifyResult:
    """Check the chain of an audit file. Return a VerifyResult naming the first broken line.

    Args:
        expected_lines / expected_head: what the daemon's journal recorded as the head; a file
            with fewer lines, or whose line at that position has another hash, was truncated or
            rewritten.
    """
    path = Path(path)
    if not path.exists():
        if expected_lines:
            return VerifyResult(False, 0, GENESIS, f"{path} is missing but the journal records {expected_lines} lines")
        return VerifyResult(True, 0, GENESIS)
    prev = GENESIS
    hashes: list[str] = []
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if not raw.strip():
                return VerifyResult(False, len(hashes), prev, f"line {number}: empty line")
            try:
                rec = json.loads(raw)
            except json.JSONDecodeError as exc:
                return VerifyResult(False, len(hashes), prev, f"line {number}: not valid JSON ({exc.msg})")
            if not isinstance(rec, dict) or "hash" not in rec or "prev" not in rec:
                return VerifyResult(False, len(hashes), prev, f"line {number}: missing 'prev' or 'hash'")
            if rec["prev"] != prev:
                return VerifyResult(False, len(hashes), prev, f"line {number}: 'prev' does not match line {number - 1}")
            if line_hash(rec) != rec["hash"]:
                return VerifyResult(False, len(hashes), prev, f"line {number}: content does not match its hash")
            prev = rec["hash"]
            hashes.append(prev)
    if expected_lines is not None:
        if len(hashes) < expected_lines:
            return VerifyResult(
                False, len(hashes), prev, f"file has {len(hashes)} lines but the journal records {expected_lines}"
            )
        if expected_lines and expected_head is not None and hashes[expected_lines - 1] != expected_head:
            return VerifyResult(
                False, len(hashes), prev, f"line {expected_lines}: hash differs from the journal's record"
            )
    return VerifyResult(True, len(hashes), prev)
