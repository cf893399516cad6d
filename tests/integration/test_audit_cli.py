"""``anonymizer audit verify`` and ``audit head`` on a real config, journal and keyed chain.

The chain is written the way the daemon's worker writes it (``AuditLog`` with the chain key from
the config's ``audit_key``, the head recorded in the journal after each line); the attacks are
what someone who can write the audit folder and state_dir, but cannot read the key, can do.
"""

from __future__ import annotations

import json
from pathlib import Path

import daemon_helpers as dh
import pytest

from anonymizer.audit.log import AUDIT_FILE, AuditLog, canonical, line_hash, load_or_create_key_file
from anonymizer.errors import ConfigError
from anonymizer.settings.daemon import load_daemon_config
from anonymizer.store import Journal


@pytest.fixture
def setup(tmp_path: Path):
    profile = dh.write_fast_profile(tmp_path / "profile.yaml")
    entry = dh.folder_entry(tmp_path, "cam", profile)
    config = dh.write_daemon_config(tmp_path / "daemon.yaml", [entry], audit_key=str(tmp_path / "keys" / "chain.key"))
    cfg = load_daemon_config(config)
    key = load_or_create_key_file(cfg.audit_key_path)
    audit = AuditLog(cfg.audit_dir, key=key)
    journal = Journal(cfg.state_dir / "journal.sqlite3")

    def append(n: int) -> None:
        for _ in range(n):
            count = len(dh.audit_lines(cfg.audit_dir))
            head, lines = audit.append({"event": "job", "job_id": f"j-{count}", "outcome": "anonymized"})
            journal.set_meta("audit_head", f"{lines}:{head}")  # as Recorder.append_audit does (anonymizer.daemon.job.record)

    append(3)
    yield config, cfg, journal, append
    journal.close()


def verify(config: Path, *extra: str):
    return dh.run_cli("audit", "verify", "--config", str(config), *extra)


def test_the_exported_head_is_printed_and_a_later_verify_checks_against_it(setup) -> None:
    config, _cfg, _journal, append = setup
    head = dh.run_cli("audit", "head", "--config", str(config))
    assert head.returncode == 0, head.stderr
    line = head.stdout.strip()
    assert line.startswith("<110>1 ") and " anonymizer " in line and " audit-head - audit head lines=3 head=" in line
    append(2)
    ok = verify(config, "--head", line)
    assert ok.returncode == 0, ok.stdout
    assert "5 lines" in ok.stdout and "consistent with the exported head (line 3)" in ok.stdout
    assert "predate" not in ok.stdout  # every line is keyed


def test_a_chain_rewritten_consistently_without_the_key_fails_audit_verify(setup) -> None:
    config, cfg, journal, _append = setup
    path = cfg.audit_dir / AUDIT_FILE
    records = [json.loads(x) for x in path.read_text().splitlines()]
    records[1]["outcome"] = "quarantined"
    prev = "0" * 64
    for rec in records:  # recompute every plain hash and link, as the unkeyed chain was made
        rec["prev"], rec["hash"] = prev, None
        rec["hash"] = prev = line_hash(rec)
    path.write_text("".join(canonical(r).decode() + "\n" for r in records))
    journal.set_meta("audit_head", f"{len(records)}:{prev}")  # and the journal's record of the head
    result = verify(config)
    assert result.returncode == 1
    assert "audit chain BROKEN: line 1: content does not match its keyed hash" in result.stdout


def test_a_tail_cut_after_an_exported_head_is_caught_though_the_journal_was_rewritten(setup) -> None:
    config, cfg, journal, append = setup
    exported = dh.run_cli("audit", "head", "--config", str(config)).stdout.strip()
    append(1)
    path = cfg.audit_dir / AUDIT_FILE
    kept = path.read_text().splitlines()[:2]
    path.write_text("\n".join(kept) + "\n")
    journal.set_meta("audit_head", f"2:{json.loads(kept[-1])['hash']}")
    assert verify(config).returncode == 0  # the chain and the journal alone cannot tell
    result = verify(config, "--head", exported)
    assert result.returncode == 1
    assert "file has 2 lines but the exported head records 3: lines were cut off" in result.stdout
    bad = verify(config, "--head", "not a head")
    assert bad.returncode == 2 and "--head" in bad.stderr


def test_without_the_key_keyed_lines_cannot_pass(setup) -> None:
    config, cfg, _journal, _append = setup
    cfg.audit_key_path.unlink()
    result = verify(config)
    assert result.returncode == 1 and "no chain key was given" in result.stdout
    assert dh.run_cli("audit", "head", "--config", str(config)).returncode == 1


def test_a_chain_key_inside_the_audit_folder_is_refused(tmp_path: Path) -> None:
    profile = dh.write_fast_profile(tmp_path / "profile.yaml")
    entry = dh.folder_entry(tmp_path, "cam", profile)
    config = dh.write_daemon_config(tmp_path / "daemon.yaml", [entry], audit_key=str(tmp_path / "audit" / "k.key"))
    with pytest.raises(ConfigError, match="audit_key.*apart from the audit folder"):
        load_daemon_config(config)
