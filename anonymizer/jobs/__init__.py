"""The part of a job any worker runs, in the daemon's process or on a remote host.

``run_job(engine, source, temp_output)`` anonymizes one source into a temporary name in the
output folder, verified, and returns its summary and SHA-256. Everything around it (hashing,
dedup, publishing, audit, retention, quarantine) is the coordinator's: ``anonymizer.daemon``.
Temporary names, fsync and publishing that never overwrites are ``anonymizer.durable``.
"""

from anonymizer.jobs.outcome import Outcome
from anonymizer.jobs.run import JobOutput, output_name, run_job

__all__ = ["JobOutput", "Outcome", "output_name", "run_job"]
