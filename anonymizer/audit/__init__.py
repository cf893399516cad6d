"""Audit trail: one keyed, hash-chained JSON line per job, verifiable with ``anonymizer audit verify``."""

from anonymizer.audit.log import (
    AuditLog,
    VerifyResult,
    head_line,
    key_id,
    load_or_create_key,
    load_or_create_key_file,
    parse_head,
    path_hmac,
    verify,
)
from anonymizer.audit.records import job_record, retention_record

__all__ = [
    "AuditLog",
    "VerifyResult",
    "head_line",
    "job_record",
    "key_id",
    "load_or_create_key",
    "load_or_create_key_file",
    "parse_head",
    "path_hmac",
    "retention_record",
    "verify",
]
