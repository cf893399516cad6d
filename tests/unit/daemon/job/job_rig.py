"""A rig that drives the job lifecycle in pieces: a real ``Journal`` on a temporary SQLite file, a
fake engine that writes a small JPEG (no model, no decode), temporary folders and a fake clock.

Nothing here replaces the lifecycle's own parts: only the engine (``engine_for``) and time.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from PIL import Image

from anonymizer.audit.log import AuditLog
from anonymizer.config import profile_from_dict
from anonymizer.daemon.job import Lifecycle, Outcome
from anonymizer.durable import sha256_file
from anonymizer.logs import get_logger
from anonymizer.settings.daemon import FolderConfig, RetryPolicy
from anonymizer.store import FileStat, Job, Journal


def jpeg(shade: int, size: tuple[int, int] = (32, 24)) -> bytes:
    """A small real JPEG of one grey ``shade`` (different shades: different content and hash)."""
    buf = io.BytesIO()
    Image.new("RGB", size, (shade, shade, shade)).save(buf, "JPEG")
    return buf.getvalue()


ANONYMIZED = jpeg(7)


@dataclass
class FakeResult:
    """What ``Engine.process`` returns, as far as ``run_job`` reads it."""

    output_path: Path
    output_sha256: str
    output_size: int
    counts: dict[str, int]
    manual: int | None = None  # regions from sidecar masks, when the job had some

    def summary(self) -> dict[str, Any]:
        counts = {name: {"regions": n, "masked_frames": min(n, 1), "tracks": 0} for name, n in self.counts.items()}
        summary: dict[str, Any] = {"kind": "image", "counts": counts, "frames": 1}
        if self.manual is not None:
            summary["manual"] = {"regions": self.manual, "frames": 1}
        return summary


@dataclass
class FakeEngine:
    """Writes ``ANONYMIZED`` to the temporary name and reports it verified; or raises ``error``.

    ``during(src)`` runs while "processing" (to change the source, request a stop...).
    """

    models: list[dict[str, Any]] = field(default_factory=lambda: [{"name": "fake", "sha256": "f" * 64}])
    error: BaseException | None = None
    during: Callable[[Path], None] | None = None
    calls: list[Path] = field(default_factory=list)
    masks_seen: list[Any] = field(default_factory=list)
    added_suffix: str = ""  # as the real engine adds one when the content does not fit the name

    def process(self, src: Path, dst: Path, progress: Any = None, masks: Any = None) -> FakeResult:
        self.calls.append(src)
        self.masks_seen.append(masks)
        if progress is not None:
            progress("detect", 1, 1)
        if self.during is not None:
            self.during(src)
        if self.error is not None:
            raise self.error
        dst = dst.with_name(dst.name + self.added_suffix)
        dst.write_bytes(ANONYMIZED)
        sha, size = sha256_file(dst)
        return FakeResult(dst, sha, size, {"face": 1, "plate": 0}, len(masks.regions) if masks else None)


class Rig:
    """One watched folder ``cam`` with a journal, an audit log and a lifecycle over them."""

    def __init__(self, root: Path, **profile: Any) -> None:
        self.root = root
        self.input, self.output, self.quarantine = root / "in", root / "out", root / "quarantine"
        for folder in (self.input, self.output, self.quarantine):
            folder.mkdir(parents=True)
        (root / "state").mkdir()
        profile_path = root / "profile.yaml"
        profile_path.write_text(yaml.safe_dump(profile))
        self.folder = FolderConfig(
            name="cam",
            input=self.input,
            output=self.output,
            quarantine=self.quarantine,
            profile_path=profile_path,
            profile=profile_from_dict(profile, str(profile_path), root),
        )
        self.now = 1_000_000.0
        self.journal = Journal(root / "state" / "journal.db", clock=lambda: self.now, hmac_key=b"k" * 32)
        self.audit = AuditLog(root / "audit", key=b"c" * 32)
        self.engine = FakeEngine()
        self.stop = False
        self.lifecycle = Lifecycle(
            journal=self.journal,
            audit=self.audit,
            hmac_key=b"k" * 32,
            engine_for=lambda profile: self.engine,
            retry=RetryPolicy(max_attempts=3, base_s=10.0, max_s=60.0),
            log=get_logger(),
            should_stop=lambda: self.stop,
            clock=lambda: self.now,
            output_mode=0o640,
        )
        self.lifecycle.note_mounts([self.folder])

    @property
    def folders(self) -> dict[str, FolderConfig]:
        return {"cam": self.folder}

    def drop(self, rel: str, data: bytes) -> str:
        """Write a source and offer it to the journal as the scanner would; return its job id."""
        path = self.input / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        st = os.lstat(path)
        job_id = self.journal.offer("cam", rel, FileStat(st.st_size, st.st_mtime_ns, st.st_ino))
        assert job_id is not None
        return job_id

    def claim(self) -> Job:
        job = self.journal.claim(["cam"])
        assert job is not None, "no job is due"
        return job

    def run(self) -> Outcome:
        """Claim the next due job and run it in this process."""
        return self.lifecycle.run(self.claim(), self.folder)

    def job(self, job_id: str) -> Job:
        job = self.journal.get(job_id)
        assert job is not None
        return job

    def audit_events(self) -> list[dict[str, Any]]:
        import json

        if not self.audit.path.exists():
            return []
        return [json.loads(line) for line in self.audit.path.read_text().splitlines()]

    def leftovers(self) -> list[str]:
        """Temporary outputs left in the output folder (there must never be any)."""
        return sorted(p.name for p in self.output.rglob(".anonymizer-tmp-*"))
