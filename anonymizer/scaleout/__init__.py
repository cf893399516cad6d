"""Scale-out on Celery: the daemon stays the coordinator, ``anonymizer worker`` runs the engine.

- ``app``: the Celery application and the settings that keep long jobs safe (late acks, no
  prefetch, a visibility timeout above the longest job).
- ``payload``: what travels with a job: paths on the shared folders, the validated profile by
  content with its hash, the model SHA-256s the coordinator journals.
- ``task``: the task a worker runs: ``anonymizer.jobs.run_job`` on the payload.
- ``client``: the coordinator's side: submit a job, read its state and result.
- ``worker``: ``anonymizer worker --config FILE``.

This package imports ``anonymizer.jobs`` and never ``anonymizer.daemon``: a worker host needs
no journal, no audit key and no state folder.
"""
