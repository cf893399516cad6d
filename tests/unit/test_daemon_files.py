"""Publishing, quarantine and retention on real files: nothing overwritten, nothing lost."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import pytest

from anonymizer import durable
from anonymizer.config import Profile, RetentionSpec
from anonymizer.daemon import quarantine, retention
from anonymizer.settings.daemon import FolderConfig
from anonymizer.store import FileStat, Journal


def test_placing_a_file_never_overwrites_an_existing_one(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(b"existing")
    (tmp_path / "a-1.jpg").write_bytes(b"existing too")
    tmp = tmp_path / ".anonymizer-tmp-j-1.jpg"
    tmp.write_bytes(b"new")
    placed = durable.place_no_overwrite(tmp, tmp_path / "a.jpg")
    assert placed == tmp_path / "a-2.jpg" and placed.read_bytes() == b"new" and not tmp.exists()
    assert (tmp_path / "a.jpg").read_bytes() == b"existing"


def test_start_up_removes_our_temporaries_and_leaves_workers_folders_and_other_files(tmp_path: Path) -> None:
    # What the daemon's recovery runs on each output folder (anonymizer.daemon.service).
    engine_partial = durable.temp_path_for(tmp_path / "cam1" / "a.mp4")
    job_temp = durable.temp_output_for(tmp_path / "a.jpg", "j-1", ".jpg")
    work = durable.work_dir_for(tmp_path, "j-2")
    in_work = durable.temp_output_for(work / "b.jpg", "j-2", ".jpg")
    kept = [tmp_path / "a.jpg", tmp_path / "cam1" / ".hidden", tmp_path / ".anonymizer-stage-like", in_work]
    for path in [engine_partial, job_temp, *kept]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    assert durable.remove_leftovers(tmp_path, durable.is_temp_name, skip_dot_dirs=True) == 2
    assert sorted(p for p in tmp_path.rglob("*") if p.is_file()) == sorted(kept)
    # Into hidden folders too when asked: the work folder's temporary goes.
    assert durable.remove_leftovers(tmp_path, durable.is_temp_name, skip_dot_dirs=False) == 1
    assert not in_work.exists() and work.is_dir()


def test_quarantine_moves_the_file_keeps_its_name_and_writes_a_reason_beside_it(tmp_path: Path) -> None:
    src_dir, q = tmp_path / "in" / "cam1", tmp_path / "q"
    src_dir.mkdir(parents=True)
    (src_dir / "x.mp4").write_bytes(b"broken")
    (q / "cam1").mkdir(parents=True)
    (q / "cam1" / "x.mp4").write_bytes(b"an earlier reject with the same name")
    final = quarantine.quarantine_file(
        src_dir / "x.mp4",
        q,
        "cam1/x.mp4",
        reason="truncated",
        job_id="j-1",
        input_sha256=durable.sha256_file(src_dir / "x.mp4")[0],
        error_type="MediaError",
    )
    assert final == q / "cam1" / "x-1.mp4" and final.read_bytes() == b"broken"
    assert not (src_dir / "x.mp4").exists()
    assert (q / "cam1" / "x.mp4").read_bytes() == b"an earlier reject with the same name"
    info = json.loads((q / "cam1" / "x-1.mp4.reason.json").read_text())
    assert info["reason"] == "truncated" and info["job_id"] == "j-1" and len(info["input_sha256"]) == 64


def make_folder(tmp_path: Path, policy: RetentionSpec) -> FolderConfig:
    (tmp_path / "in").mkdir(exist_ok=True)
    (tmp_path / "profile.yaml").write_text("")
    return FolderConfig(
        name="f",
        input=tmp_path / "in",
        output=tmp_path / "out",
        quarantine=tmp_path / "q",
        profile_path=tmp_path / "profile.yaml",
        profile=replace(Profile(), retention=policy),
    )


def done_job(tmp_path: Path, rel: str) -> tuple[Journal, str]:
    src = tmp_path / "in" / rel
    src.parent.mkdir(parents=True, exist_ok=True)
    src.write_bytes(b"evidence")
    st = src.stat()
    journal = Journal(tmp_path / "journal.sqlite3")
    job_id = journal.offer("f", rel, FileStat(st.st_size, st.st_mtime_ns, st.st_ino))
    journal.claim(["f"])
    journal.set_hash(job_id, durable.sha256_file(src)[0], "k")
    journal.mark_done(
        job_id, outcome="anonymized", output_rel=rel, output_sha256="o" * 64, output_size=1, summary={}, retain_after=0
    )
    return journal, job_id


def test_retention_refuses_to_touch_a_source_before_its_job_is_audited(tmp_path: Path) -> None:
    folder = make_folder(tmp_path, RetentionSpec(source="delete"))
    journal, job_id = done_job(tmp_path, "a.jpg")
    with pytest.raises(ValueError):
        retention.apply_retention(journal.get(job_id), folder, original_verified=True)
    journal.mark_audited(job_id)
    with pytest.raises(ValueError):
        retention.apply_retention(journal.get(job_id), folder, original_verified=False)
    assert (tmp_path / "in" / "a.jpg").exists()
    assert retention.apply_retention(journal.get(job_id), folder, original_verified=True).action == "deleted"
    assert not (tmp_path / "in" / "a.jpg").exists()


def test_retention_leaves_a_source_that_changed_after_it_was_hashed(tmp_path: Path) -> None:
    folder = make_folder(tmp_path, RetentionSpec(source="delete"))
    journal, job_id = done_job(tmp_path, "a.jpg")
    journal.mark_audited(job_id)
    with open(tmp_path / "in" / "a.jpg", "ab") as fh:
        fh.write(b" and a new recording")
    assert retention.apply_retention(journal.get(job_id), folder, original_verified=True).action == "source-changed"
    assert (tmp_path / "in" / "a.jpg").exists()


def test_retention_move_mirrors_subfolders_and_removes_the_done_marker(tmp_path: Path) -> None:
    folder = make_folder(tmp_path, RetentionSpec(source="move", move_to="archive"))
    journal, job_id = done_job(tmp_path, "cam1/a.jpg")
    (tmp_path / "in" / "cam1" / "a.jpg.done").write_bytes(b"")
    journal.mark_audited(job_id)
    assert retention.apply_retention(journal.get(job_id), folder, original_verified=True).action == "moved"
    assert (tmp_path / "archive" / "cam1" / "a.jpg").read_bytes() == b"evidence"
    assert not (tmp_path / "in" / "cam1" / "a.jpg").exists()
    assert not (tmp_path / "in" / "cam1" / "a.jpg.done").exists()


def test_keep_retention_never_touches_the_source(tmp_path: Path) -> None:
    folder = make_folder(tmp_path, RetentionSpec(source="keep"))
    journal, job_id = done_job(tmp_path, "a.jpg")
    journal.mark_audited(job_id)
    before = os.stat(tmp_path / "in" / "a.jpg")
    assert retention.apply_retention(journal.get(job_id), folder, original_verified=True).action == "kept"
    assert os.stat(tmp_path / "in" / "a.jpg").st_mtime_ns == before.st_mtime_ns
