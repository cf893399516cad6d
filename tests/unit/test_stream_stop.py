"""Abandoning a threaded stage chain stops every thread at once, also behind a look-ahead.

Issue 25: a SIGTERM during a 4K clip took 132.6 s, because closing the chain waited until the
tracker released a frame (once its look-ahead window filled, minutes of inference later), and
the caller heard nothing until then. The real ``stream.run`` runs here with stages like the
video path's: a slow source, a stage that holds every item back, and one that works long.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator

import pytest

from anonymizer.stream.run import Cancelled, run


class Stop(BaseException):
    """What the daemon's progress callback raises on SIGTERM (worker.StopRequested)."""


def slow(items: Iterator[int]) -> Iterator[int]:
    for item in items:
        time.sleep(0.01)
        yield item


def hold_back(items: Iterator[int]) -> Iterator[int]:
    """Like the tracker with a look-ahead longer than the clip: releases nothing until the end."""
    held = list(items)
    yield from held


def chain_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("stage-")]


def test_the_caller_hears_from_the_chain_while_it_waits_and_a_raise_there_stops_every_thread() -> None:
    calls = []

    def idle() -> None:
        calls.append(time.monotonic())
        if len(calls) >= 5:
            raise Stop()

    started = time.monotonic()
    with pytest.raises(Stop):
        for _ in run(itertools.count(), [slow, hold_back, slow], threaded=True, depth=2, idle=idle):
            pytest.fail("nothing can come out: the middle stage holds everything back")
    stopped_s = time.monotonic() - started
    assert len(calls) == 5 and stopped_s < 3.0, stopped_s
    deadline = time.monotonic() + 2.0
    while chain_threads() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert chain_threads() == [], "stage threads outlived the abandoned chain"
    from anonymizer.stream.run import stage_threads_alive

    assert not stage_threads_alive()


def test_a_stage_at_work_sees_the_chain_cancelled_and_ends_its_item_early() -> None:
    cancel = threading.Event()
    stopped: list[int] = []

    def long_work(items: Iterator[int]) -> Iterator[int]:
        for item in items:
            for _ in range(1000):  # one 4K frame's inference passes (10 s), each checking the event
                time.sleep(0.01)
                if cancel.is_set():
                    stopped.append(item)
                    raise Cancelled()
            yield item

    started = time.monotonic()

    def idle() -> None:
        if time.monotonic() - started > 0.3:
            raise Stop()

    with pytest.raises(Stop):
        list(run(iter(range(3)), [long_work], threaded=True, cancel=cancel, idle=idle))
    # Closing the chain waited for the stage's thread, which left its first item unfinished.
    assert stopped == [0] and time.monotonic() - started < 2.0
    assert cancel.is_set()


def test_a_chain_that_ends_normally_is_not_cancelled() -> None:
    cancel = threading.Event()
    assert list(run(iter(range(50)), [slow, hold_back, slow], threaded=True, cancel=cancel)) == list(range(50))
    assert not cancel.is_set()
