"""Fixtures for the scale-out tests: a real redis-server and two real `anonymizer worker`s.

The broker and the workers are started once per module (a worker takes seconds to start and
warm its engine); each test runs its own coordinator daemon on its own folders.
"""

from __future__ import annotations

import importlib.util

import pytest
from scaleout_helpers import RedisServer, WorkerProcess, redis_server_binary, wait_for_workers


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/scaleout/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.scaleout)


@pytest.fixture(scope="module")
def scaleout_parts() -> None:
    """Skip, saying what is missing, unless Celery, redis-py and a redis-server binary are here."""
    if importlib.util.find_spec("celery") is None or importlib.util.find_spec("redis") is None:
        pytest.skip("the scaleout extra is not installed (celery, redis-py): ANONYMIZER_EXTRAS=scaleout ./scripts/install.sh")
    if redis_server_binary() is None:
        pytest.skip("redis-server not found: install Debian's redis-server (scripts/test.sh does, as root)")


@pytest.fixture(scope="module")
def broker(scaleout_parts, tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def workers(broker, tmp_path_factory):
    """Two worker processes, through fault_worker.py: a source named *poison* kills its process."""
    workdir = tmp_path_factory.mktemp("workers")
    procs = [WorkerProcess(workdir, broker.url, name, fault=True).start() for name in ("w1", "w2")]
    try:
        wait_for_workers(broker.url, ["w1", "w2"])
    except AssertionError:
        logs = "\n".join(p.logs()[-3000:] for p in procs)
        for p in procs:
            p.stop()
        raise AssertionError(f"workers did not start:\n{logs}") from None
    yield procs
    for p in procs:
        p.terminate()  # both at once: a warm shutdown takes seconds each
    for p in procs:
        p.stop()
