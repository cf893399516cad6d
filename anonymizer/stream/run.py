"""Run a chain of stages: sequentially (tests, debugging) or each on its own thread (production).

A stage is a callable from an iterator of items to an iterator of items (beets' pipeline, in
generator form). Threaded, every stage runs on its own thread with a bounded queue after it, so
decoding, inference and masking overlap and memory stays bounded by the queue depths; an
exception in any stage is re-raised in the consumer, and abandoning the result stops them all.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")
Stage = Callable[[Iterator[Any]], Iterator[Any]]


def prefetch(items: Iterable[T], depth: int = 8, name: str = "stage") -> Iterator[T]:
    """Run an iterator on its own thread, ``depth`` items ahead of the consumer.

    An exception in the producer is re-raised in the consumer; abandoning the generator stops it.
    """
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    end = object()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put((item, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put((end, None))
        except BaseException as exc:  # handed to the consumer, which re-raises it
            q.put((end, exc))

    thread = threading.Thread(target=produce, name=name, daemon=True)
    thread.start()
    try:
        while True:
            item, exc = q.get()
            if item is end:
                if exc is not None:
                    raise exc
                return
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            try:
                q.get_nowait()
            except queue.Empty:
                thread.join(0.05)


def run(source: Iterable[Any], stages: list[Stage], *, threaded: bool, depth: int = 4) -> Iterator[Any]:
    """The items ``source`` yields, passed through every stage in order."""
    items: Iterator[Any] = iter(source)
    if threaded:
        items = prefetch(items, depth, "source")
    for stage in stages:
        items = stage(items)
        if threaded:
            items = prefetch(items, depth, type(stage).__name__.lower())
    return items
