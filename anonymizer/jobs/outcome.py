"""How a job ended: the one name for each outcome, shared by the coordinator, the store and the API.

A ``StrEnum`` with the strings the journal has always stored, so ``outcome == "done"``-style
comparisons, journal rows and metric labels keep working unchanged.
"""

from __future__ import annotations

import enum


class Outcome(enum.StrEnum):
    """The outcome of one attempt at a job (sorted by value)."""

    ANONYMIZED = "anonymized"  # published under its own name, recorded, audited
    DEFERRED = "deferred"  # queued again later without counting an attempt (a share away, no worker)
    DUPLICATE = "duplicate"  # an earlier output of the same content reused, recorded, audited
    HELD = "held"  # verified and kept for review (profile ``review: required``), not published
    QUARANTINED = "quarantined"  # the source moved aside with its reason
    REJECTED = "rejected"  # a reviewer rejected the held output: nothing published, source kept
    RETRY = "retry"  # a possibly transient error: tried again after a backoff
    VANISHED = "vanished"  # the source changed or disappeared: offered again if it comes back
