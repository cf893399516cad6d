"""The hash-chained audit log and its records: chain, tamper detection, path HMAC, no names."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

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


# --------------------------------------------------------------------------- the keyed chain

KEY = bytes(range(32))


def keyed_lines(tmp_path: Path, n: int, key: bytes = KEY) -> module.AuditLog:
    audit = module.AuditLog(tmp_path, key=key)
    for i in range(n):
        audit.append({"event": "job", "job_id": f"j-{i}", "outcome": "anonymized"})
    return audit


def forge_with_plain_hashes(path: Path, edit) -> None:
    """What someone who can write the audit folder but lacks the key can do: edit a line, then
    recompute every hash and link as the unkeyed chain did, keeping each key_id."""
    records = [json.loads(line) for line in path.read_text().splitlines()]
    edit(records)
    prev = module.GENESIS
    for rec in records:
        rec["prev"] = prev
        rec["hash"] = module.line_hash(rec)
        prev = rec["hash"]
    path.write_text("".join(module.canonical(r).decode() + "\n" for r in records))


def test_a_keyed_line_names_its_key_and_verifies_only_with_that_key(tmp_path: Path) -> None:
    audit = keyed_lines(tmp_path, 3)
    lines = [json.loads(line) for line in audit.path.read_text().splitlines()]
    assert {line["key_id"] for line in lines} == {module.key_id(KEY)}
    assert module.key_id(KEY) not in KEY.hex()  # the id does not give the key away
    result = module.verify(audit.path, key=KEY)
    assert result.ok and result.lines == 3 and result.unkeyed == 0
    no_key = module.verify(audit.path)
    assert not no_key.ok and "no chain key" in no_key.problem
    other = module.verify(audit.path, key=b"x" * 32)
    assert not other.ok and "not the configured key" in other.problem


def test_a_chain_rewritten_consistently_without_the_key_fails_verification(tmp_path: Path) -> None:
    audit = keyed_lines(tmp_path, 3)

    def edit(records: list[dict]) -> None:
        records[1]["outcome"] = "quarantined"

    forge_with_plain_hashes(audit.path, edit)
    assert module.verify(audit.path).problem.startswith("line 1:")  # keyed lines need the key
    result = module.verify(audit.path, key=KEY)
    assert not result.ok and result.problem == "line 1: content does not match its keyed hash"

    # Passing every line off as one from before keying (key_id dropped, plain hashes) leaves a
    # chain that verifies only as unkeyed, and says so; a head exported earlier shows the rewrite.
    audit = keyed_lines(tmp_path / "b", 3)
    exported = (3, module.verify(audit.path, key=KEY).head)

    def downgrade(records: list[dict]) -> None:
        records[1]["outcome"] = "quarantined"
        for rec in records:
            rec.pop("key_id")

    forge_with_plain_hashes(audit.path, downgrade)
    result = module.verify(audit.path, key=KEY)
    assert result.ok and result.unkeyed == 3
    result = module.verify(audit.path, key=KEY, exported=exported)
    assert not result.ok and result.problem == "line 3: hash differs from what the exported head records"


def test_unkeyed_lines_from_before_keying_still_verify_and_are_counted(tmp_path: Path) -> None:
    write_lines(tmp_path, 2)  # an older version's lines
    keyed = keyed_lines(tmp_path, 2)
    result = module.verify(keyed.path, key=KEY)
    assert result.ok and result.lines == 4 and result.unkeyed == 2


def test_an_unkeyed_line_after_keyed_ones_is_reported(tmp_path: Path) -> None:
    keyed_lines(tmp_path, 2)
    module.AuditLog(tmp_path).append({"event": "job", "job_id": "j-forged"})  # written without the key
    result = module.verify(tmp_path / module.AUDIT_FILE, key=KEY)
    assert not result.ok and result.problem.startswith("line 3: not keyed, after keyed lines")


def test_the_exported_head_is_an_rfc5424_line_that_verify_reads_back(tmp_path: Path) -> None:
    audit = keyed_lines(tmp_path, 3)
    result = module.verify(audit.path, key=KEY)
    line = module.head_line(result, key_id_=module.key_id(KEY), now=0)
    # <PRI>VERSION TIMESTAMP HOSTNAME APP-NAME PROCID MSGID STRUCTURED-DATA MSG (RFC 5424 section 6)
    head, stamp, host, app, procid, msgid, sd, msg = line.split(" ", 7)
    assert (head, stamp) == ("<110>1", "1970-01-01T00:00:00.000Z")  # facility 13 (log audit), info
    assert (app, procid.isdigit(), msgid, sd) == ("anonymizer", True, "audit-head", "-")
    assert host and " " not in host
    assert msg == f"audit head lines=3 head={result.head} key_id={module.key_id(KEY)}"
    assert module.parse_head(line) == (3, result.head)
    assert module.parse_head(f"3:{result.head}") == (3, result.head)
    assert module.verify(audit.path, key=KEY, exported=(3, result.head)).ok


def test_a_tail_cut_after_an_exported_head_is_caught_even_with_the_journal_rewritten_too(tmp_path: Path) -> None:
    audit = keyed_lines(tmp_path, 3)
    exported = module.parse_head(module.head_line(module.verify(audit.path, key=KEY), key_id_=None))
    audit.append({"event": "job", "job_id": "j-3"})
    assert module.verify(audit.path, key=KEY, exported=exported).ok  # grown since: still consistent
    rewrite(audit.path, lambda lines: lines[:2])
    # The journal's head can be rewritten by whoever can write state_dir; the exported one cannot.
    assert module.verify(audit.path, key=KEY, expected_lines=2).ok
    result = module.verify(audit.path, key=KEY, expected_lines=2, exported=exported)
    assert not result.ok and result.problem == "file has 2 lines but the exported head records 3: lines were cut off"


def test_a_head_that_is_not_in_the_chain_any_more_is_caught(tmp_path: Path) -> None:
    audit = keyed_lines(tmp_path, 3)
    exported = (2, json.loads(audit.path.read_text().splitlines()[1])["hash"])
    # Rebuilt from line 2 on by someone holding the key (say, after stealing it): the chain is
    # valid, but line 2 is no longer the line that was exported.
    rewrite(audit.path, lambda lines: lines[:1])
    audit2 = module.AuditLog(tmp_path, key=KEY)
    audit2.append({"event": "job", "job_id": "j-other"})
    audit2.append({"event": "job", "job_id": "j-2"})
    result = module.verify(audit.path, key=KEY, exported=exported)
    assert not result.ok and result.problem == "line 2: hash differs from what the exported head records"
    with pytest.raises(ValueError):
        module.parse_head("nothing here")


def test_audit_files_are_0600_and_new_folders_0700_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        audit = keyed_lines(tmp_path / "log" / "audit", 1)
        key = module.load_or_create_key_file(tmp_path / "etc" / "chain.key")
    finally:
        os.umask(old)
    assert stat.S_IMODE(audit.path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "etc" / "chain.key").stat().st_mode) == 0o600
    for folder in (audit.path.parent, audit.path.parent.parent, tmp_path / "etc"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    assert module.load_or_create_key_file(tmp_path / "etc" / "chain.key") == key and len(key) == 32


def test_an_audit_file_an_older_version_made_0640_is_tightened(tmp_path: Path) -> None:
    audit = keyed_lines(tmp_path, 1)
    audit.path.chmod(0o640)
    module.AuditLog(tmp_path, key=KEY)
    assert stat.S_IMODE(audit.path.stat().st_mode) == 0o600
