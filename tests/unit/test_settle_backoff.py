"""The one settling rule and the one retry delay, shared by the daemon scanner and the buckets."""

from __future__ import annotations

import random

from anonymizer.jobs.backoff import backoff_s
from anonymizer.jobs.settle import Settling


def test_a_key_settles_only_after_two_looks_and_settle_s_unchanged() -> None:
    settling: Settling[str, tuple[str, int]] = Settling(5.0)
    assert not settling.settled(settling.look("k", ("e1", 10), 100.0), 100.0)  # first look
    assert not settling.settled(settling.look("k", ("e1", 10), 104.0), 104.0)  # too soon
    assert settling.settled(settling.look("k", ("e1", 10), 105.0), 105.0)


def test_a_changed_fingerprint_restarts_the_clock_and_forget_starts_over() -> None:
    settling: Settling[str, int] = Settling(0.0)
    settling.look("k", 1, 0.0)
    assert not settling.settled(settling.look("k", 2, 10.0), 10.0)  # changed: a first look again
    assert settling.settled(settling.look("k", 2, 10.0), 10.0)
    settling.forget("k")
    assert not settling.settled(settling.look("k", 2, 11.0), 11.0)


def test_keep_only_drops_keys_that_are_gone_and_forget_reported_offers_again() -> None:
    settling: Settling[str, int] = Settling(0.0)
    settling.look("a", 1, 0.0).reported = True
    settling.look("b", 1, 0.0)
    settling.keep_only(["a"])
    assert settling.look("b", 1, 1.0).looks == 1  # b was forgotten
    settling.forget_reported()
    assert not settling.look("a", 1, 1.0).reported


def test_backoff_doubles_from_base_is_capped_and_jittered_by_half_either_way() -> None:
    rng = random.Random(7)
    for attempts, nominal in ((1, 2.0), (2, 4.0), (3, 8.0), (10, 60.0)):
        delays = [backoff_s(attempts, 2.0, 60.0, rng=rng) for _ in range(200)]
        assert nominal * 0.5 <= min(delays) and max(delays) <= nominal * 1.5
        assert max(delays) - min(delays) > nominal * 0.5  # jittered, not constant
