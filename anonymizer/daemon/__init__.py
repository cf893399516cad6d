"""The watched-folder daemon: scan input shares, journal jobs, anonymize, publish, audit, retire.

Module map (producer, queue and handler kept apart, as in watchdog):

- ``config``: daemon YAML -> frozen ``DaemonConfig``.
- ``scanner``: polling ``scandir`` scanner with settle tracking; ``scanloop`` runs it on its own
  thread, ``wakeup`` pokes it when a local folder changes.
- ``journal``: SQLite job journal; it *is* the queue between scanner and worker.
- ``worker``: one job at a time: hash, run the engine, verify, publish, audit, schedule retention.
- ``quarantine`` / ``retention``: the only places that move or delete an input.
- ``fsutil``: durable, never-overwriting publish / move / hash helpers they share.
- ``service``: signals, start-up, recovery; ``coordinator``: the one loop (claim → executor →
  lifecycle), reload and the status line; ``executors``: where the engine call runs, in this
  process (``InProcess``) or on Celery workers (``Celery``, its wire side in ``remote``);
  ``engines``: warm engines per profile; ``notify``: sd_notify; ``heartbeat``: the watchdog feed and status file; ``metrics``
  and ``logging`` support them.
- ``commands``: the ``daemon``, ``status``, ``audit verify`` and ``demo`` sub-commands.
"""
