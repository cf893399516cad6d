"""Inbox.place: a file already in the folder (same content, so the same name) is offered again
and resolves to the journal job that already covers it, whoever offered it first."""

from __future__ import annotations

from pathlib import Path

import daemon_helpers as dh

from anonymizer.settings.daemon import load_daemon_config
from anonymizer.store.inbox import Inbox, Staged


def test_placing_the_same_content_twice_gives_the_same_journal_job(tmp_path: Path) -> None:
    profile = dh.write_fast_profile(tmp_path / "fast.yaml")
    config = dh.write_daemon_config(tmp_path / "daemon.yaml", [dh.folder_entry(tmp_path, "inbox", profile)])
    cfg = load_daemon_config(config)
    inbox = Inbox(cfg)
    folder = inbox.folder("inbox")
    ids = []
    for _ in range(2):
        staged = Staged(folder.input / "api" / "tag")
        staged.write(b"same bytes")
        sha = staged.finish()
        ids.append(inbox.place(folder, staged, f"api/tag/{sha}.jpg"))
    assert ids[0] == ids[1]
    assert [p.name for p in (folder.input / "api" / "tag").iterdir()] == [f"{sha}.jpg"]  # no partial left
    job = inbox.journal.get(ids[0])
    assert job is not None and job.state == "queued" and job.rel_path == f"api/tag/{sha}.jpg"
    inbox.close()
