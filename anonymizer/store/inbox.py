"""The one door of the API and the buckets into the store: place a file, offer it, read its job back.

The REST API and the S3 buckets have no job machinery of their own. A file they receive is
written into the input folder of a configured daemon folder under a name derived from its
content (never the client's or the object's name), then offered to the same journal the scanner
feeds. The daemon's worker hashes, anonymizes, verifies, publishes, audits and retires it as any
dropped file; the caller reads the outcome back from the journal and serves or uploads the
verified output. So `anonymizer status`, metrics, `audit verify` and retention cover these jobs
with no special case.

Uploads are written as dot-names (which the scanner never offers) in the folder they end in, so
the final rename is atomic and a half-written file is never seen as complete. Neither the API
nor the buckets open the journal file: they submit, read and retire jobs through ``Inbox``.
"""

from __future__ import annotations

import errno
import hashlib
import hmac
import json
import os
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from anonymizer.audit.log import AuditLog, load_or_create_key, load_or_create_key_file
from anonymizer.durable import fsync_dir, is_recorded_file, remove_leftovers
from anonymizer.fsutil import make_private_dir
from anonymizer.store.db import journal_path
from anonymizer.store.journal import Journal, append_audit
from anonymizer.store.names import find_output_rel
from anonymizer.store.queries import FINISHED, OUTPUT_OUTCOMES
from anonymizer.store.reviews import ReviewStore
from anonymizer.store.rows import FileStat, Job

if TYPE_CHECKING:
    # Types only: the store sits below the daemon and never imports it at run time.
    from anonymizer.settings.daemon import DaemonConfig, FolderConfig


def write_private_json(path: Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` (0600) through a temporary name: readers see old or new."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


PARTIAL_PREFIX = ".incoming-"
PARTIAL_SUFFIX = ".part"


def is_partial_name(name: str) -> bool:
    """True for the dot-name of a file ``Staged`` is receiving (a crash leaves it half written)."""
    return name.startswith(PARTIAL_PREFIX) and name.endswith(PARTIAL_SUFFIX)


class Staged:
    """A file being received into a folder's input under a dot-name; hashed as it is written."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"{PARTIAL_PREFIX}{secrets.token_hex(8)}{PARTIAL_SUFFIX}"
        self._fh = open(self.path, "xb")  # noqa: SIM115 - closed by finish() or discard()
        self._sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        self._fh.write(data)
        self._sha.update(data)
        self.size += len(data)

    def finish(self) -> str:
        """Flush to disk; return the SHA-256 of what was written."""
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        return self._sha.hexdigest()

    def discard(self) -> None:
        if not self._fh.closed:
            self._fh.close()
        self.path.unlink(missing_ok=True)


@dataclass(frozen=True)
class Output:
    """A verified output on disk: the file and its recorded SHA-256 and size."""

    path: Path
    sha256: str
    size: int


class Inbox:
    """The daemon state an API or bucket process shares: journal (one connection per thread),
    audit chain, the path HMAC key. Opened by ``anonymizer api`` and by the daemon's bucket loop.
    """

    def __init__(self, cfg: DaemonConfig) -> None:
        self.cfg = cfg
        make_private_dir(cfg.state_dir)
        self.hmac_key = load_or_create_key(cfg.state_dir)
        self._local = threading.local()
        self._audit: AuditLog | None = None
        self._audit_lock = threading.Lock()

    @property
    def journal(self) -> Journal:
        """This thread's journal connection (SQLite connections stay on the thread that made them)."""
        journal = getattr(self._local, "journal", None)
        if journal is None:
            journal = self._local.journal = Journal(journal_path(self.cfg.state_dir), hmac_key=self.hmac_key)
        return journal

    def job(self, job_id: str) -> Job | None:
        """The journal's job ``job_id`` as it is now, or None."""
        return self.journal.get(job_id)

    def retire(self, job_id: str, action: str) -> None:
        """Record that the caller settled the job's source itself (``action``: deleted, source-gone)."""
        self.journal.mark_retired(job_id, action)

    def open_reviews(self) -> ReviewStore:
        """A new connection to the review table for this thread; the caller closes it."""
        return ReviewStore(journal_path(self.cfg.state_dir))

    def folder(self, name: str) -> FolderConfig:
        folder = self.cfg.folder(name)
        if folder is None:
            raise KeyError(name)
        return folder

    def name_hmac(self, purpose: str, value: str) -> str:
        """HMAC of a client id or object key: names it in folders, logs and state without revealing it."""
        return hmac.new(self.hmac_key, f"{purpose}\n{value}".encode(), hashlib.sha256).hexdigest()

    # ------------------------------------------------------------------ submit

    def place(self, folder: FolderConfig, staged: Staged, rel_path: str) -> str:
        """Move a finished ``staged`` file to ``folder.input/rel_path`` and offer it to the journal.

        ``rel_path`` is derived from the content, so a file already there is the same content:
        the staged copy is dropped and the existing one is offered. Return the journal job id
        (new, or the one that already covers the file).
        """
        final = folder.input / rel_path
        if final.parent != staged.path.parent:
            raise ValueError("staged file and final name must share a folder (atomic rename)")
        try:
            os.link(staged.path, final)  # never replaces a file that is already there
        except FileExistsError:
            pass
        staged.discard()
        fsync_dir(final.parent)
        st = os.lstat(final)
        journal = self.journal
        job_id = journal.offer(folder.name, rel_path, FileStat(st.st_size, st.st_mtime_ns, st.st_ino))
        if job_id is None:
            known = journal.latest_job_for(folder.name, rel_path)
            if known is None:
                raise OSError(errno.EAGAIN, "the journal knows the file but has no job for it")
            job_id = known.id
        return job_id

    @staticmethod
    def remove_partials(root: Path) -> int:
        """Remove files a crash left half-received under ``root`` (only our own dot-names); return how many.

        Call it before receiving into ``root``: a process that receives there is the only writer.
        """
        return remove_leftovers(root, is_partial_name, skip_dot_dirs=False)

    # ------------------------------------------------------------------ results

    def find_output(self, folder: FolderConfig, job: Job, rel_path: str) -> Output | None:
        """Return the job's published output if it is in place with its recorded SHA-256, else None.

        The journal forgets the output's name once the job is retired and keeps its HMAC; the
        output then lies beside where ``rel_path`` would put it (same folder, a suffix the engine
        may have added), which is the only folder searched.
        """
        if job.state not in FINISHED or job.outcome not in OUTPUT_OUTCOMES or not job.output_sha256:
            return None
        parent = Path(rel_path).parent.as_posix()
        under = "" if parent == "." else parent
        out_rel = find_output_rel(job, folder.output, self.hmac_key, under=under, recursive=False)
        if out_rel is None or job.output_size is None:
            return None
        path = folder.output / out_rel
        if not is_recorded_file(path, job.output_size, job.output_sha256):
            return None
        return Output(path, job.output_sha256, job.output_size)

    # ------------------------------------------------------------------ audit

    def open_audit(self) -> AuditLog:
        """The audit chain with its key; call at start-up so that an unreadable key fails there."""
        with self._audit_lock:
            if self._audit is None:
                self._audit = AuditLog(self.cfg.audit_dir, key=load_or_create_key_file(self.cfg.audit_key_path))
            return self._audit

    def audit(self, record: dict[str, Any]) -> None:
        """Append ``record`` to the daemon's keyed audit chain (flock-serialised with the daemon)."""
        audit = self.open_audit()
        with self._audit_lock:
            append_audit(self.journal, audit, record)

    def close(self) -> None:
        journal = getattr(self._local, "journal", None)
        if journal is not None:
            journal.close()
            self._local.journal = None
