"""One bucket's per-object state: a small JSON file per object in ``state_dir/buckets/<name>/``,
named by the HMAC of the object's key (never the key itself).

Objects in progress live in ``active/``, settled ones in ``settled/``: each round reads only the
few active files, however many objects a kept archive has seen.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from anonymizer.fsutil import make_private_dir
from anonymizer.store.inbox import write_private_json

# Stages of an object: processing -> done | superseded | failed | held
ACTIVE = ("processing",)


@dataclass(frozen=True)
class ObjectState:
    """Where one object version stands; saved after every step, so a restart resumes it."""

    key_hmac: str
    etag: str
    size: int
    stage: str
    key: str | None = None  # only while the object is being handled
    version_id: str | None = None
    rel_path: str | None = None
    journal_id: str | None = None
    input_sha256: str | None = None
    uploaded: bool = False  # the sink has the verified output; the source's retention is done
    source_action: str | None = None  # what that retention did (kept, deleted, source-changed)
    attempts: int = 0
    next_try_at: float = 0.0
    error: str | None = None


class ObjectStates:
    """The state files of one bucket under ``state_dir``. Not thread-safe: the bucket's one thread."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir

    def _state_path(self, key_hmac: str, stage: str) -> Path:
        return self.state_dir / ("active" if stage in ACTIVE else "settled") / f"{key_hmac}.json"

    def load(self, key_hmac: str) -> ObjectState | None:
        for stage in ("processing", "done"):
            try:
                path = self._state_path(key_hmac, stage)
                return ObjectState(**json.loads(path.read_text(encoding="utf-8")))
            except FileNotFoundError:
                continue
        return None

    def save(self, state: ObjectState) -> None:
        path = self._state_path(state.key_hmac, state.stage)
        make_private_dir(path.parent)
        write_private_json(path, asdict(state))
        other = self._state_path(state.key_hmac, "done" if state.stage in ACTIVE else "processing")
        other.unlink(missing_ok=True)

    def active(self) -> list[ObjectState]:
        """Every object in progress (stage ``processing``)."""
        out = []
        try:
            names = sorted(os.listdir(self.state_dir / "active"))
        except FileNotFoundError:
            return []
        for name in names:
            if name.endswith(".json") and not name.startswith("."):
                state = self.load(name[: -len(".json")])
                if state is not None:
                    out.append(state)
        return out
