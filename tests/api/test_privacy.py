"""After the other API tests (this file runs last in the package): no token, upload name or
client id shows up in any log, and no token or upload name in the audit or the daemon's state."""

from __future__ import annotations

from pathlib import Path

import pytest
from api_helpers import Api


def test_no_token_or_upload_name_reaches_a_log_the_audit_or_the_state(api: Api) -> None:
    if not api.tokens or not api.names:
        pytest.skip("scans what the other API tests did: run it with them (pytest tests/api)")
    logs = api.logs() + api.daemon.logs()
    audit = (api.root / "audit" / "audit.jsonl").read_text(errors="replace")
    # The journal, job records and keys: read as bytes, so a name in a SQLite page is found too.
    state = b"".join(p.read_bytes() for p in Path(api.root / "state").rglob("*") if p.is_file())
    needles = set(api.tokens)
    for name in api.names:
        needles |= {name, Path(name).name, Path(name).stem}
    for needle in sorted(n for n in needles if len(n) >= 5):  # every name sent has a long stem
        assert needle not in logs, f"in a log: {needle[:40]}"
        assert needle not in audit, f"in the audit: {needle[:40]}"
        assert needle.encode() not in state, f"in the state folder: {needle[:40]}"
    for signature in {t.rsplit(".", 1)[-1] for t in api.tokens}:
        assert signature not in logs and signature not in audit
    # Logs name clients by an HMAC tag; the audit carries the client id (who submitted, who deleted).
    assert "dam-happy" not in logs and "dam-happy" in audit
