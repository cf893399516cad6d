"""The service's one loop (claim → executor → lifecycle) turned by hand, with a fake executor.

The journal is the real one on a temporary SQLite file, the lifecycle the real ``Lifecycle`` (its
audit log in a temporary folder), the scanner thread and the heartbeat the real ones; only the
executor is an in-memory class implementing the ``Executor`` protocol, and the engines are cheap
stand-ins built by ``EngineCache`` (the detectors are not what these tests are about).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import daemon_helpers as dh
import pytest
import yaml

from anonymizer.audit.log import AuditLog
from anonymizer.daemon import coordinator as module
from anonymizer.daemon.engines import EngineCache
from anonymizer.daemon.executors import Executor, InProcess
from anonymizer.daemon.heartbeat import Heartbeat
from anonymizer.daemon.job import Lifecycle, StopRequested
from anonymizer.daemon.metrics import Metrics
from anonymizer.daemon.notify import Notifier
from anonymizer.daemon.scanloop import ScanLoop
from anonymizer.errors import ModelError
from anonymizer.logs import get_logger
from anonymizer.settings.daemon import FolderConfig, load_daemon_config
from anonymizer.store import FileStat, Job, Journal


class FakeExecutor:
    """Holds submitted jobs until the test finishes them; ends them in the journal as the
    lifecycle would (vanished: the one outcome that needs no engine and no output)."""

    wait_s = 0.01

    def __init__(self, journal: Journal, slots: int) -> None:
        self.journal = journal
        self.slots = slots
        self.running: dict[str, Job] = {}
        self.submitted: list[str] = []
        self.most_at_once = 0
        self.stopped = False
        self.fail_with: BaseException | None = None
        self._ended: list[str] = []

    def capacity(self) -> int:
        return self.slots - len(self.running)

    def submit(self, job: Job, folder: FolderConfig) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        assert job.state == "running" and folder.name == job.folder
        self.running[job.id] = job
        self.submitted.append(job.id)
        self.most_at_once = max(self.most_at_once, len(self.running))

    def finish(self, job_id: str) -> None:
        self.running.pop(job_id)
        self.journal.mark_vanished(job_id, "finished by the fake executor")
        self._ended.append("vanished")

    def poll(self, folders: dict[str, FolderConfig]) -> list[str]:
        ended, self._ended = self._ended, []
        return ended

    def unavailable_errors(self) -> tuple[type[BaseException], ...]:
        return (ConnectionError,)

    def still_out(self) -> set[str]:
        return set()

    def reattach(self, folders: dict[str, FolderConfig]) -> int:
        return 0

    def stop(self) -> None:
        self.stopped = True


class FakeEngine:
    """What ``EngineCache`` builds: remembers its profile; never runs (the fake executor doesn't)."""

    models: list[dict[str, Any]] = []

    def __init__(self, profile: Any) -> None:
        self.profile = profile

    def process(self, src: Path, dst: Path, progress: Any = None) -> Any:
        raise AssertionError("the loop must not run an engine itself")


class Rig:
    """A coordinator on temporary folders, with the pieces a test pokes at."""

    def __init__(self, root: Path, executor_for: Any) -> None:
        self.root = root
        profile = dh.write_fast_profile(root / "p1.yaml")
        self.config_path = dh.write_daemon_config(root / "daemon.yaml", [dh.folder_entry(root, "cam", profile)])
        self.cfg = load_daemon_config(self.config_path)
        self.cfg.state_dir.mkdir(parents=True, exist_ok=True)
        self.journal = Journal(self.cfg.state_dir / "journal.sqlite3")
        self.engines = EngineCache(build=FakeEngine)
        self.engines.replace(self.engines.prepare([f.profile for f in self.cfg.folders]))
        self.heartbeat = Heartbeat(Notifier({}), None, stall_s=60)
        self.signals = module.Signals()
        self.lifecycle = Lifecycle(
            journal=self.journal,
            audit=AuditLog(root / "audit", key=b"k" * 32),
            hmac_key=b"h" * 32,
            engine_for=self.engines,
            retry=self.cfg.retry,
            log=get_logger(),
            should_stop=self.signals.stop.is_set,
        )
        self.executor = executor_for(self)
        self.scan = ScanLoop(self.cfg.state_dir / "journal.sqlite3", get_logger(), self.signals.wake)
        self.scan.set_folders(self.cfg.folders)
        self.scan.start()
        self.loop = module.Coordinator(
            config_path=self.config_path,
            cfg=self.cfg,
            journal=self.journal,
            lifecycle=self.lifecycle,
            executor=self.executor,
            engines=self.engines,
            scan=self.scan,
            heartbeat=self.heartbeat,
            status=module.StatusLine(self.journal, Metrics(), Notifier({}), self.cfg.folders),
            signals=self.signals,
            log=get_logger(),
        )

    def offer(self, n: int) -> list[str]:
        """Queue ``n`` jobs as the scanner would (the files need not exist for a fake executor)."""
        ids = [self.journal.offer("cam", f"clip-{i}.mp4", FileStat(10 + i, 1_000 + i, 100 + i)) for i in range(n)]
        assert all(ids)
        return [str(i) for i in ids]

    def state(self, job_id: str) -> str:
        job = self.journal.get(job_id)
        assert job is not None
        return job.state

    def close(self) -> None:
        self.scan.stop()
        self.scan.join(timeout=10)
        self.journal.close()


def write_other_profile(root: Path) -> Path:
    """The fast profile with one more face scale: another settings hash, so another engine."""
    path = root / "p2.yaml"
    data = yaml.safe_load((root / "p1.yaml").read_text())
    data["name"] = "test-other"
    data["detect"]["faces"]["scales"] = [1.0, 0.5]
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path, lambda rig: FakeExecutor(rig.journal, slots=2))
    yield r
    r.close()


def test_a_claimed_job_goes_to_the_executor_and_its_end_frees_the_slot_for_the_next(rig: Rig) -> None:
    first, second, third = rig.offer(3)
    assert rig.loop.turn()
    fake: FakeExecutor = rig.executor
    assert fake.submitted == [first, second]  # two slots: the third waits in the journal
    assert [rig.state(j) for j in (first, second, third)] == ["running", "running", "queued"]
    fake.finish(first)
    assert rig.loop.turn()
    assert fake.submitted == [first, second, third] and rig.state(first) == "vanished"
    fake.finish(second)
    fake.finish(third)
    assert rig.loop.turn()
    assert rig.journal.queue_depth() == 0 and fake.running == {}


def test_the_loop_never_gives_the_executor_more_jobs_than_it_has_room_for(rig: Rig) -> None:
    fake: FakeExecutor = rig.executor
    jobs = rig.offer(7)
    for _ in range(12):
        assert rig.loop.turn()
        assert len(fake.running) <= fake.slots
        if fake.running:
            fake.finish(next(iter(fake.running)))
    assert fake.most_at_once == 2 and sorted(fake.submitted) == sorted(jobs)
    assert len(set(fake.submitted)) == len(fake.submitted)  # each job submitted once


def test_a_stop_ends_the_loop_claims_nothing_more_and_stops_the_executor(rig: Rig) -> None:
    fake: FakeExecutor = rig.executor
    jobs = rig.offer(3)
    assert rig.loop.turn()
    rig.signals.stop.set()
    cfg = rig.loop.run()
    assert cfg is rig.cfg and fake.stopped
    assert fake.submitted == jobs[:2] and rig.state(jobs[2]) == "queued"  # left for the next start


def test_a_job_abandoned_on_stop_ends_the_loop_with_the_job_requeued(rig: Rig) -> None:
    fake: FakeExecutor = rig.executor
    (job,) = rig.offer(1)

    def submit(j: Job, folder: FolderConfig) -> None:
        # What the lifecycle does when SIGTERM arrives mid-job: requeue it, raise StopRequested.
        rig.signals.stop.set()
        rig.journal.requeue(j.id)
        raise StopRequested

    fake.submit = submit  # type: ignore[method-assign]
    assert rig.loop.turn() is False
    assert rig.state(job) == "queued"
    rig.loop.run()
    assert fake.stopped


def test_an_executor_that_is_away_is_waited_for_and_its_jobs_stay_in_the_journal(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(module, "UNAVAILABLE_WAIT_S", 0.01)
    fake: FakeExecutor = rig.executor
    (job,) = rig.offer(1)
    fake.fail_with = ConnectionError("broker away")
    assert rig.loop.turn()  # logged, waited, the loop goes on
    assert rig.state(job) == "running"  # claimed: the journal keeps it (a restart requeues it)
    fake.fail_with = None
    assert rig.loop.turn()


def test_a_reload_swaps_in_engines_for_the_new_profiles_and_drops_the_old(rig: Rig) -> None:
    old = rig.cfg.folders[0].profile
    assert isinstance(rig.engines(old), FakeEngine)
    p2 = write_other_profile(rig.root)
    dh.write_daemon_config(
        rig.config_path, [dh.folder_entry(rig.root, "cam", p2), dh.folder_entry(rig.root, "gate", p2)]
    )
    rig.signals.reload.set()
    assert rig.loop.turn()
    new = rig.loop.cfg
    assert [f.name for f in new.folders] == ["cam", "gate"] and new.folders[0].profile.sha256 != old.sha256
    assert rig.engines(new.folders[0].profile).profile.sha256 == new.folders[0].profile.sha256
    with pytest.raises(ModelError):
        rig.engines(old)  # the old profile's engine is gone
    assert rig.loop.status.folders == new.folders


def test_a_reload_whose_engines_fail_keeps_the_running_configuration(rig: Rig) -> None:
    old_cfg = rig.cfg
    p2 = write_other_profile(rig.root)
    dh.write_daemon_config(rig.config_path, [dh.folder_entry(rig.root, "cam", p2)])

    def broken(profile: Any) -> Any:
        raise ModelError("the new profile's weights are missing")

    rig.engines._build = broken  # the next build fails, as a missing model file would
    rig.signals.reload.set()
    assert rig.loop.turn()
    assert rig.loop.cfg is old_cfg and isinstance(rig.engines(old_cfg.folders[0].profile), FakeEngine)


def test_in_process_runs_one_job_per_turn_and_its_outcome_is_taken_in_that_turn(tmp_path: Path) -> None:
    seen: list[str] = []
    rig = Rig(tmp_path, lambda r: InProcess(r.lifecycle, started=lambda job: seen.append(job.id)))
    try:
        executor: Executor = rig.executor
        first, second = rig.offer(2)  # no such files: the real lifecycle ends them as vanished
        assert rig.loop.turn()
        assert seen == [first] and rig.state(first) == "vanished" and rig.state(second) == "queued"
        assert executor.capacity() == 1 and executor.poll({}) == []  # collected in the same turn
        assert rig.loop.turn()
        assert seen == [first, second] and rig.state(second) == "vanished"
    finally:
        rig.close()


def test_a_job_that_ends_inside_submit_is_collected_before_the_turn_ends(rig: Rig) -> None:
    fake: FakeExecutor = rig.executor
    calls: list[str] = []
    submit, poll = fake.submit, fake.poll

    def submit_and_finish(job: Job, folder: FolderConfig) -> None:
        calls.append("submit")
        submit(job, folder)
        fake.finish(job.id)  # as InProcess: the job ran to its end inside submit

    def logged_poll(folders: dict[str, FolderConfig]) -> list[str]:
        ended = poll(folders)
        calls.append(f"poll:{len(ended)}")
        return ended

    fake.submit = submit_and_finish  # type: ignore[method-assign]
    fake.poll = logged_poll  # type: ignore[method-assign]
    (job,) = rig.offer(1)
    assert rig.loop.turn()
    # Taken (retired, status refreshed) in the same turn: a stop before the next turn loses nothing.
    assert calls == ["poll:0", "submit", "poll:1"] and rig.state(job) == "vanished"
    rig.signals.stop.set()
    assert rig.loop.turn() is False and calls == ["poll:0", "submit", "poll:1"]


def test_the_loop_ends_without_claiming_when_the_scanner_thread_died(rig: Rig) -> None:
    (job,) = rig.offer(1)
    rig.scan.stop()
    rig.scan.join(timeout=10)
    assert rig.loop.turn() is False
    assert rig.state(job) == "queued" and rig.executor.submitted == []
