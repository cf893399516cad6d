"""The watched-folder daemon: scan input shares, journal jobs, anonymize, publish, audit, retire.

Module map (producer, queue and handler kept apart, as in watchdog):

- ``config``: daemon YAML -> frozen ``DaemonConfig``.
- ``scanner``: polling ``scandir`` scanner with settle tracking (runs on its own thread).
- ``journal``: SQLite job journal; it *is* the queue between scanner and the job lifecycle.
- ``job``: the job lifecycle (``Lifecycle``): check, run the engine, verify, publish or hold,
  record (journal + audit + metrics), one module per step.
- ``review``: applying the reviewers' decisions; ``quarantine`` / ``retention``: the only places
  that move or delete an input.
- ``fsutil``: durable, never-overwriting publish / move / hash helpers they share.
- ``service``: main loop, signals, sd_notify; ``metrics`` and ``logging`` support it.
- ``commands``: the ``daemon``, ``status``, ``audit verify`` and ``demo`` sub-commands.
"""
