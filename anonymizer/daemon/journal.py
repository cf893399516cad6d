"""Where the job journal was: it is ``anonymizer.store`` now (issue 23).

Kept only so that modules not yet rewritten keep importing the old path; the merge rewrites
``anonymizer.daemon.journal`` imports to ``anonymizer.store`` and deletes this module.
"""

from anonymizer.store import (
    RETENTION_HELD,
    SCHEMA_VERSION,
    STATES,
    FileStat,
    Job,
    Journal,
    backoff_s,
    decode_rel,
    display_rel,
    encode_rel,
    job_key,
    new_job_id,
)

__all__ = [
    "RETENTION_HELD",
    "SCHEMA_VERSION",
    "STATES",
    "FileStat",
    "Job",
    "Journal",
    "backoff_s",
    "decode_rel",
    "display_rel",
    "encode_rel",
    "job_key",
    "new_job_id",
]
