"""The hash-chained audit log and its records: chain, tamper detection, path HMAC, no names."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from anonymizer.audit import log as module
from anonymizer.audit.records import job_record


def write_lines(tmp_path: Path, n: int) -> module.AuditLog:
    audit = module.AuditLog(tmp_path)
    for i in range(n):
        audit.append({"event": "job", "job_id": f"j-{i}", "outcome": "anonymized"})
    return audit


def rewrite(path: Path, fn) -> None:
    lines = path.read_text().splitlines()
    path.write_text("\n".join(fn(lines)) + "\n")


def test_each_line_carries_the_previous_lines_hash_and_the_chain_verifies(tmp_path: Path) -> None:
    audit = write_lines(tmp_path, 3)
    lines = [json.loads(l) for l in audit.path.read_text().splitlines()]
    assert lines[0]["prev"] == module.GENESIS
    assert [l["prev"] for l in lines[1:]] == [l["hash"] for l in lines[:-1]]
    result = module.verify(audit.path)
    assert result.ok and result.lines == 3 and result.head == lines[-1]["hash"]


def test_an_edited_line_breaks_the_chain_at_that_line(tmp_path: Path) -> None:
    audit = write_lines(tmp_path, 3)

    def edit(lines: list[str]) -> list[str]:
        rec = json.loads(lines[1])
        rec["outcome"] = "quarantined"
        lines[1] = json.dumps(rec)
        return lines

    rewrite(audit.path, edit)
    result = module.verify(audit.path)
    assert not result.ok and result.problem.startswith("line 2:") and result.lines == 1


def test_a_deleted_line_breaks_the_chain(tmp_path: Path) -> None:
    audit = write_lines(tmp_path, 3)
    rewrite(audit.path, lambda lines: [lines[0], lines[2]])
    result = module.verify(audit.path)
    assert not result.ok and "line 2" in result.problem


def test_a_truncated_tail_is_caught_by_comparing_with_the_head_the_journal_recorded(tmp_path: Path) -> None:
    audit = write_lines(tmp_path, 3)
    head = json.loads(audit.path.read_text().splitlines()[-1])["hash"]
    rewrite(audit.path, lambda lines: lines[:2])
    assert module.verify(audit.path).ok  # the chain alone cannot see it
    result = module.verify(audit.path, expected_lines=3, expected_head=head)
    assert not result.ok and "journal records 3" in result.problem


def test_appending_after_someone_else_wrote_still_chains_to_the_real_last_line(tmp_path: Path) -> None:
    first = write_lines(tmp_path, 2)
    other = module.AuditLog(tmp_path)
    other.append({"event": "job", "job_id": "j-other"})
    first.append({"event": "job", "job_id": "j-last"})  # its cached head is stale now
    assert module.verify(first.path).ok and module.verify(first.path).lines == 4


def test_the_hmac_key_is_created_once_private_and_reused(tmp_path: Path) -> None:
    key = module.load_or_create_key(tmp_path)
    assert len(key) == 32
    assert stat.S_IMODE((tmp_path / module.KEY_FILE).stat().st_mode) == 0o600
    assert module.load_or_create_key(tmp_path) == key
    assert module.path_hmac(key, "f", "a/b.jpg") == module.path_hmac(key, "f", "a/b.jpg")
    assert module.path_hmac(key, "f", "a/b.jpg") != module.path_hmac(b"k" * 32, "f", "a/b.jpg")


def test_a_job_record_names_the_file_only_by_hmac_unless_given_a_path(tmp_path: Path) -> None:
    summary = {
        "kind": "image",
        "frames": 1,
        "counts": {"face": {"regions": 3}},
        "timings": {"total_s": 0.1},
        "models": [{"id": "centerface", "sha256": "m" * 64, "license": "MIT"}],
        "profile_sha256": "p" * 64,
    }
    rec = job_record(
        job_id="j-1",
        folder="f",
        path_ref={"path_hmac": "h" * 64},
        outcome="anonymized",
        time_s=0,
        input_sha256="i" * 64,
        input_size=10,
        output_sha256="o" * 64,
        output_size=9,
        summary=summary,
    )
    text = json.dumps(rec)
    assert "path" not in rec and rec["path_hmac"] == "h" * 64
    assert rec["models"] == [{"id": "centerface", "sha256": "m" * 64}]
    assert rec["profile_sha256"] == "p" * 64 and rec["counts"] == {"face": {"regions": 3}}
    assert rec["input"] == {"sha256": "i" * 64, "size": 10} and rec["output"] == {"sha256": "o" * 64, "size": 9}
    assert "xyxy" not in text and "box" not in text
