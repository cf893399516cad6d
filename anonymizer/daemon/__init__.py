"""The watched-folder daemon: scan input shares, journal jobs, anonymize, publish, audit, retire.

Module map (producer, queue and handler kept apart, as in watchdog):

- ``scanner``: polling ``scandir`` scanner with settle tracking; ``scanloop`` runs it on its own
  thread, ``wakeup`` pokes it when a local folder changes.
- The journal (``anonymizer.store``) *is* the queue between the scanner and the job lifecycle.
- ``service``: signals, start-up, recovery; ``coordinator``: the one loop (claim → executor →
  lifecycle), reload and the status line; ``executors``: where the engine call runs, in this
  process (``InProcess``) or on Celery workers (``Celery``, its wire side in ``remote``);
  ``engines``: warm engines per profile; ``notify``: sd_notify; ``heartbeat``: the watchdog feed
  and status file; ``metrics`` supports them.
- ``job``: the job lifecycle (``Lifecycle``): check, run the engine, verify, publish or hold,
  record (journal + audit + metrics), one module per step.
- ``review``: applying the reviewers' decisions; ``review_commands``: the ``review`` sub-commands;
  ``quarantine`` / ``retention``: the only places that move or delete an input.
- ``commands``: the ``daemon``, ``status``, ``audit verify`` and ``demo`` sub-commands.

The daemon's settings (``daemon.yaml``) are read by ``anonymizer.settings``; file helpers live in
``anonymizer.fsutil`` and the log setup in ``anonymizer.logs``, below every package that uses them.
"""
