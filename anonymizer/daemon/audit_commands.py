"""The ``audit verify`` and ``audit head`` sub-commands: check the hash chain of the audit log."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from anonymizer.audit.log import AUDIT_FILE, head_line, key_id, load_key_file, parse_head, verify
from anonymizer.daemon.status import open_journal
from anonymizer.errors import ConfigError
from anonymizer.store import AUDIT_HEAD


def _verify_chain(args: argparse.Namespace, exported: tuple[int, str] | None = None) -> tuple[Any, Any, Any]:
    """Verify the config's audit chain with its key, against the journal's head (and ``exported``).

    Return (config, VerifyResult, chain key or None when the key file does not exist).
    """

    cfg, journal = open_journal(args)
    expected_lines = expected_head = None
    if journal is not None:
        try:
            head = journal.get_meta(AUDIT_HEAD)
        finally:
            journal.close()
        if head:
            lines, _, expected_head = head.partition(":")
            expected_lines = int(lines)
    try:
        key = load_key_file(cfg.audit_key_path)
    except FileNotFoundError:
        key = None  # keyed lines then fail, naming the missing key
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else str(exc)
        raise ConfigError(f"{cfg.audit_key_path}: cannot read the audit chain key ({reason}); run as root") from exc
    result = verify(
        cfg.audit_dir / AUDIT_FILE,
        key=key,
        expected_lines=expected_lines,
        expected_head=expected_head,
        exported=exported,
    )
    return cfg, result, key


def cmd_audit_verify(args: argparse.Namespace) -> int:

    exported = None
    if args.head is not None:
        try:
            exported = parse_head(args.head)
        except ValueError as exc:
            raise ConfigError(f"--head: {exc}") from exc
    cfg, result, key = _verify_chain(args, exported)
    if not result.ok:
        print(f"audit chain BROKEN: {result.problem} (first {result.lines} lines are intact)")
        return 1
    against = f", consistent with the exported head (line {exported[0]})" if exported else ""
    print(f"audit chain intact: {result.lines} lines, head {result.head}{against}")
    if result.unkeyed:
        print(
            f"note: lines 1-{result.unkeyed} predate the keyed chain (plain SHA-256): they show order, "
            "but whoever could write the audit folder could have rewritten them"
        )
    if key is None:
        print(f"note: no chain key at {cfg.audit_key_path}; only unkeyed lines could be checked")
    return 0


def cmd_audit_head(args: argparse.Namespace) -> int:

    _cfg, result, key = _verify_chain(args)
    if not result.ok:
        print(f"audit chain BROKEN: {result.problem}; no head exported", file=sys.stderr)
        return 1
    print(head_line(result, key_id_=None if key is None else key_id(key)))
    return 0
