"""Run a chain of stages: sequentially (tests, debugging) or each on its own thread (production).

A stage is a callable from an iterator of items to an iterator of items (beets' pipeline, in
generator form). Threaded, every stage runs on its own thread with a bounded queue after it, so
decoding, inference and masking overlap and memory stays bounded by the queue depths; an
exception in any stage is re-raised in the consumer.

Stopping is prompt (issue 25: SIGTERM during a 4K clip took 132 s): the threads of one chain
share a ``cancel`` event, set as soon as the consumer abandons the chain. A stage thread waiting
for its input notices it within ``WAIT_S`` and ends; a stage at work (``Detect``) checks it
between its passes. Without it, closing the chain waited for the tracker to release a frame,
which it does only once its look-ahead window is full: minutes of 4K inference.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")
Stage = Callable[[Iterator[Any]], Iterator[Any]]
# How often a consumer waiting for an item checks the chain's cancel event and calls ``idle``.
WAIT_S = 0.1
# How long an abandoned chain waits for a stage thread stuck in one long call (an inference pass
# on a 4K tile: one layer can take seconds on a busy CPU). It is a daemon thread, it ends at its
# next check of ``cancel``, and a stopped job must not wait for it.
CANCEL_JOIN_S = 2.0
# Names of the stage threads start with this (``stage_threads_alive``).
STAGE_THREAD_PREFIX = "stage-"


def stage_threads_alive() -> bool:
    """True while a stage thread lives on, e.g. one an abandoned chain gave up waiting for, still
    inside an inference call: a process must not finalize the interpreter under it (the C++
    runtime aborts it), see ``anonymizer.daemon.service.run_daemon``."""
    return any(t.name.startswith(STAGE_THREAD_PREFIX) and t.is_alive() for t in threading.enumerate())


class Cancelled(BaseException):
    """Raised in a stage's thread when its chain was abandoned: the stage stops where it is.

    A BaseException, so that no stage's ``except Exception`` turns it into a job failure.
    """


def prefetch(
    items: Iterable[T],
    depth: int = 8,
    name: str = "stage",
    *,
    cancel: threading.Event | None = None,
    idle: Callable[[], None] | None = None,
) -> Iterator[T]:
    """Run an iterator on its own thread, ``depth`` items ahead of the consumer.

    An exception in the producer is re-raised in the consumer; abandoning the generator stops it.
    ``cancel``: set when this consumer is abandoned; while it is set, waiting raises Cancelled
    (the whole chain stops). ``idle``: called on the consumer's thread every ``WAIT_S`` it waits,
    so a caller can report and check for a stop request while the stages work; what it raises
    abandons the chain.
    """
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    end = object()

    def stopped() -> bool:
        # The chain's cancel counts too: a consumer that died with an exception is closed only
        # when its traceback lets go of it, and this thread must not wait for that.
        return stop.is_set() or (cancel is not None and cancel.is_set())

    def produce() -> None:
        try:
            for item in items:
                while not stopped():
                    try:
                        q.put((item, None), timeout=WAIT_S)
                        break
                    except queue.Full:
                        continue
                if stopped():
                    return
            q.put((end, None))
        except BaseException as exc:  # handed to the consumer, which re-raises it
            q.put((end, exc))

    thread = threading.Thread(target=produce, name=STAGE_THREAD_PREFIX + name, daemon=True)
    thread.start()
    finished = False
    try:
        while True:
            try:
                item, exc = q.get(timeout=WAIT_S)
            except queue.Empty:
                if cancel is not None and cancel.is_set():
                    raise Cancelled() from None
                if idle is not None:
                    idle()
                continue
            if item is end:
                if exc is not None:
                    raise exc
                finished = True
                return
            yield item
    finally:
        stop.set()
        if cancel is not None and not finished:
            cancel.set()  # abandoned (an error, a stop): every thread of the chain ends
        deadline = time.monotonic() + CANCEL_JOIN_S
        while thread.is_alive():
            try:
                q.get_nowait()
            except queue.Empty:
                if cancel is not None and cancel.is_set() and time.monotonic() > deadline:
                    break
                thread.join(0.05)


def run(
    source: Iterable[Any],
    stages: list[Stage],
    *,
    threaded: bool,
    depth: int = 4,
    cancel: threading.Event | None = None,
    idle: Callable[[], None] | None = None,
) -> Iterator[Any]:
    """The items ``source`` yields, passed through every stage in order.

    ``cancel`` (threaded): the chain's event, set when its result is abandoned; stages that work
    long on one item check it. ``idle`` (threaded): called on the consumer's thread while it waits
    for the next result (see ``prefetch``).
    """
    items: Iterator[Any] = iter(source)
    if not threaded:
        for stage in stages:
            items = stage(items)
        return items
    cancel = cancel if cancel is not None else threading.Event()
    items = prefetch(items, depth, "source", cancel=cancel)
    for i, stage in enumerate(stages):
        last = i == len(stages) - 1
        items = prefetch(stage(items), depth, type(stage).__name__.lower(), cancel=cancel, idle=idle if last else None)
    return items
