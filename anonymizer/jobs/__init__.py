"""The part of a job any worker runs, in the daemon's process or on a remote host.

``run_job(engine, source, temp_output)`` anonymizes one source into a temporary name in the
output folder and returns the summary. Everything around it (hashing, dedup, verification,
publishing, audit, retention, quarantine) is the coordinator's: ``anonymizer.daemon``.
"""

from anonymizer.jobs.run import TMP_PREFIX, JobOutput, run_job, temp_output_for

__all__ = ["TMP_PREFIX", "JobOutput", "run_job", "temp_output_for"]
