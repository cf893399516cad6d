"""Audit trail: one hash-chained JSON line per job, verifiable with ``anonymizer audit verify``."""

from anonymizer.audit.log import AuditLog, VerifyResult, load_or_create_key, path_hmac, verify
from anonymizer.audit.records import job_record, retention_record

__all__ = ["AuditLog", "VerifyResult", "job_record", "load_or_create_key", "path_hmac", "retention_record", "verify"]
