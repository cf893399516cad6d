"""Append-only, keyed hash chain (``audit.jsonl``).

Each line is a JSON object carrying ``prev`` (the previous line's ``hash``; 64 zeros for the
first line), ``key_id`` and ``hash``: HMAC-SHA256, with the chain key, of the line's canonical JSON
without the ``hash`` key. Editing, reordering or deleting a line breaks the chain from there on;
``verify`` names the first bad line. The key lives apart from the audit folder (``audit_key`` in
the daemon config), so whoever can write the audit folder and the journal still cannot rewrite
the chain consistently: recomputed hashes do not match without the key.

Truncating the tail leaves a valid chain. The daemon records the head (line count and hash) in
its journal, and ``head_line`` prints it as an RFC 5424 syslog line for an external log; ``verify``
checks the file against either, so a tail cut after a head was exported is caught.

Lines written before the chain was keyed (no ``key_id``; ``hash`` is a plain SHA-256) still
verify, but only at the start of the file, and ``verify`` counts them: they prove order, not
authorship. An unkeyed line after a keyed one is reported as tampering.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from anonymizer.fsutil import PRIVATE_FILE_MODE, make_private_dir, make_private_file

GENESIS = "0" * 64
AUDIT_FILE = "audit.jsonl"
# The path key (``path_hmac``) stays in state_dir: the journal uses it too.
KEY_FILE = "audit-hmac.key"
# The chain key's default place when the config names none (``audit_key``).
CHAIN_KEY_FILE = "audit-chain.key"
# syslog facility 13 ("log audit", RFC 5424 table 1), severity 6 (informational).
SYSLOG_PRI = 13 * 8 + 6


def canonical(record: dict[str, Any]) -> bytes:
    """Return the bytes that are hashed: sorted keys, no spaces, UTF-8."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def line_hash(record: dict[str, Any], key: bytes | None = None) -> str:
    """Return a line's ``hash``: HMAC-SHA256 with ``key`` if given, else plain SHA-256 (old lines)."""
    body = canonical({k: v for k, v in record.items() if k != "hash"})
    if key is None:
        return hashlib.sha256(body).hexdigest()
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def key_id(key: bytes) -> str:
    """Return a short public id of a chain key (names it in each line without revealing it)."""
    return hashlib.sha256(b"anonymizer audit chain key id\0" + key).hexdigest()[:16]


def load_key_file(path: Path) -> bytes:
    """Return the key stored in ``path``. Raise OSError if unreadable, ValueError if too short."""
    key = Path(path).read_bytes()
    if len(key) < 32:
        raise ValueError(f"{path}: HMAC key is shorter than 32 bytes; refusing to use it")
    return key


def load_or_create_key_file(path: Path) -> bytes:
    """Return the key in ``path``, creating it (32 random bytes, mode 0600) if it is absent.

    A missing parent folder is created 0700.
    """
    path = Path(path)
    make_private_dir(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, PRIVATE_FILE_MODE)
    except FileExistsError:
        return load_key_file(path)
    key = secrets.token_bytes(32)
    try:
        os.fchmod(fd, PRIVATE_FILE_MODE)  # exactly 0600, whatever the umask took away
        os.write(fd, key)
        os.fsync(fd)
    finally:
        os.close(fd)
    return key


def load_or_create_key(state_dir: Path) -> bytes:
    """Return the path HMAC key kept in ``state_dir``, creating it (mode 0600) on first use."""
    return load_or_create_key_file(Path(state_dir) / KEY_FILE)


def path_hmac(key: bytes, folder: str, rel_path: str) -> str:
    """Return HMAC-SHA256 of ``folder/rel_path``: names a file in the audit without revealing it."""
    # surrogateescape: a name that is not valid UTF-8 is hashed as its raw bytes.
    return hmac.new(key, f"{folder}/{rel_path}".encode("utf-8", "surrogateescape"), hashlib.sha256).hexdigest()


class AuditLog:
    """Appends chained lines to ``audit_dir/audit.jsonl``; each append is fsynced before returning.

    With ``key`` (the daemon always passes one) each line is HMAC-chained and names the key by
    ``key_id``; without, lines get a plain SHA-256 as before the chain was keyed.
    """

    def __init__(self, audit_dir: Path, *, key: bytes | None = None) -> None:
        self.path = Path(audit_dir) / AUDIT_FILE
        self._key = key
        self._key_id = None if key is None else key_id(key)
        make_private_dir(self.path.parent)
        if self.path.exists():
            make_private_file(self.path)  # an older version created it 0640
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
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, PRIVATE_FILE_MODE)
        try:
            # The lock keeps a second daemon (or a misconfigured second unit) from interleaving
            # lines and forking the chain.
            fcntl.flock(fd, fcntl.LOCK_EX)
            size = os.fstat(fd).st_size
            if self._cache is not None and self._cache[0] == size:
                prev, count = self._cache[1], self._cache[2]
            else:
                prev, count = self._tail()
            body = {k: v for k, v in record.items() if k not in ("prev", "hash", "key_id")}
            if self._key_id is not None:
                body["key_id"] = self._key_id
            body["prev"] = prev
            body["hash"] = line_hash(body, self._key)
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
    """Outcome of ``verify``: ``ok`` with the line count and head hash, or the first problem.

    ``unkeyed`` counts the lines at the start of the file written before the chain was keyed.
    """

    ok: bool
    lines: int
    head: str
    problem: str | None = None
    unkeyed: int = 0


_HEAD_FORMS = (
    re.compile(r"\blines=(\d+)\s+head=([0-9a-f]{64})\b"),  # the syslog line of ``head_line``
    re.compile(r"^\s*(\d+):([0-9a-f]{64})\s*$"),  # "<lines>:<hash>", as the journal keeps it
)


def parse_head(text: str) -> tuple[int, str]:
    """Return (lines, hash) from an exported head. Raise ValueError if ``text`` holds none.

    Accepts the whole RFC 5424 line printed by ``anonymizer audit head`` (as a syslog server or
    journald stored it) or the short form ``<lines>:<hash>``.
    """
    for form in _HEAD_FORMS:
        match = form.search(text)
        if match:
            return int(match.group(1)), match.group(2)
    raise ValueError("expected an exported audit head: the line 'anonymizer audit head' printed, or LINES:HASH")


def head_line(result: VerifyResult, *, key_id_: str | None, now: float | None = None) -> str:
    """Return the chain's head as one RFC 5424 syslog line, for journald or a remote syslog.

    ``<110>1 TIMESTAMP HOST anonymizer PID audit-head - audit head lines=N head=HASH key_id=ID``:
    facility 13 (log audit), severity informational; no structured data (NILVALUE), the values
    are in the message as key=value pairs that ``parse_head`` reads back.
    """
    when = datetime.now(tz=UTC) if now is None else datetime.fromtimestamp(now, tz=UTC)
    stamp = when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    host = socket.gethostname().split(".")[0] or "-"
    message = f"audit head lines={result.lines} head={result.head} key_id={key_id_ or '-'}"
    return f"<{SYSLOG_PRI}>1 {stamp} {host} anonymizer {os.getpid()} audit-head - {message}"


def verify(
    path: Path,
    *,
    key: bytes | None = None,
    expected_lines: int | None = None,
    expected_head: str | None = None,
    exported: tuple[int, str] | None = None,
) -> VerifyResult:
    """Check the chain of an audit file. Return a VerifyResult naming the first broken line.

    Args:
        key: the chain key. A keyed line is checked with it; without it, or with another key
            than the line names, the line fails.
        expected_lines / expected_head: what the daemon's journal recorded as the head; a file
            with fewer lines, or whose line at that position has another hash, was truncated or
            rewritten.
        exported: (lines, hash) of a head exported earlier (``parse_head``), checked the same way:
            the chain must still hold that line with that hash.
    """
    path = Path(path)
    wanted_id = None if key is None else key_id(key)
    if not path.exists():
        if expected_lines or (exported and exported[0]):
            return VerifyResult(False, 0, GENESIS, f"{path} is missing but a head of the chain was recorded")
        return VerifyResult(True, 0, GENESIS)
    prev = GENESIS
    hashes: list[str] = []
    unkeyed = 0

    def bad(problem: str) -> VerifyResult:
        return VerifyResult(False, len(hashes), prev, problem, unkeyed)

    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if not raw.strip():
                return bad(f"line {number}: empty line")
            try:
                rec = json.loads(raw)
            except json.JSONDecodeError as exc:
                return bad(f"line {number}: not valid JSON ({exc.msg})")
            if not isinstance(rec, dict) or "hash" not in rec or "prev" not in rec:
                return bad(f"line {number}: missing 'prev' or 'hash'")
            if rec["prev"] != prev:
                return bad(f"line {number}: 'prev' does not match line {number - 1}")
            if "key_id" in rec:
                if key is None:
                    return bad(f"line {number}: keyed with key {rec['key_id']}, but no chain key was given")
                if rec["key_id"] != wanted_id:
                    return bad(f"line {number}: keyed with key {rec['key_id']}, not the configured key {wanted_id}")
                if not hmac.compare_digest(line_hash(rec, key), str(rec["hash"])):
                    return bad(f"line {number}: content does not match its keyed hash")
            else:
                if unkeyed < len(hashes):
                    # Keyed lines came before: an unkeyed one now is a line written without the key.
                    return bad(f"line {number}: not keyed, after keyed lines (written without the chain key)")
                if line_hash(rec) != rec["hash"]:
                    return bad(f"line {number}: content does not match its hash")
                unkeyed += 1
            prev = rec["hash"]
            hashes.append(prev)
    for lines, head, source in (
        (expected_lines, expected_head, "the journal"),
        (*(exported or (None, None)), "the exported head"),
    ):
        if lines is None:
            continue
        if len(hashes) < lines:
            return bad(f"file has {len(hashes)} lines but {source} records {lines}: lines were cut off")
        if lines and head is not None and hashes[lines - 1] != head:
            return bad(f"line {lines}: hash differs from what {source} records")
    return VerifyResult(True, len(hashes), prev, None, unkeyed)
