"""The store: the only code that opens the daemon's SQLite file (``journal.sqlite3``).

- ``db``: the file's name, connection and pragmas, schema and migrations (the only ``sqlite3.connect``);
- ``rows``: job states and the frozen ``Job``/``FileStat``;
- ``names``: names at rest (encoding, display, erasing them when no longer needed);
- ``queries``: read-only job queries (``JobReader``), ``anonymizer status``'s counts, the API's job view;
- ``journal``: ``Journal``, the only writer of job rows;
- ``reviews``: the ``reviews`` table of the review hold;
- ``inbox``: the one door of the API and the buckets (submit, read results, audit).

The store sits below the daemon, the API, the buckets, the review CLI and the scale-out
package and imports none of them.
"""

from anonymizer.store.db import JOURNAL_FILE, SCHEMA_VERSION, journal_path
from anonymizer.store.journal import AUDIT_HEAD, Journal, append_audit, job_key, new_job_id
from anonymizer.store.names import decode_rel, display_rel, encode_rel, find_output_rel
from anonymizer.store.queries import FINISHED, OUTPUT_OUTCOMES, JobReader, JobView, Status, job_view, read_status
from anonymizer.store.reviews import REVIEW_DIR, Review, ReviewStore
from anonymizer.store.rows import RETENTION_HELD, STATES, FileStat, Job

__all__ = [
    "FINISHED",
    "JOURNAL_FILE",
    "OUTPUT_OUTCOMES",
    "RETENTION_HELD",
    "REVIEW_DIR",
    "SCHEMA_VERSION",
    "STATES",
    "FileStat",
    "Job",
    "JobReader",
    "JobView",
    "AUDIT_HEAD",
    "Journal",
    "append_audit",
    "Review",
    "ReviewStore",
    "Status",
    "decode_rel",
    "display_rel",
    "encode_rel",
    "find_output_rel",
    "job_key",
    "job_view",
    "journal_path",
    "new_job_id",
    "read_status",
]
