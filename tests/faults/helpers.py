"""Fault-injection helpers: a rig around the real daemon, kill -9, mounts, and the invariant checks.

Builds on ``tests/daemon_helpers.py`` (the daemon in a subprocess with a real ``NOTIFY_SOCKET``).
Adds what attacking it needs:

* ``Rig``: one watched folder (in/out/quarantine), state and audit dirs, a fast faces-only
  profile, quick polling and retries, and the daemon runs started on it;
* ``FaultDaemon``: the daemon in its own session, so that ``kill9`` takes out the daemon (and a
  tracer wrapped around it) at once; optionally under ``strace`` with a delay injected after one
  system call, which holds the daemon in a precise state (output renamed, output published) long
  enough for the test to kill it there;
* ``check_nothing_lost``: the promise, checked from the journal (read-only), the folders, the
  audit chain and the real SHA-256 of every file;
* ``scan_for_private_data``: file names, plate texts and coordinates in logs and metrics.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import daemon_helpers as dh
import numpy as np
import support
import yaml
from support import sha256

try:
    from anonymizer.daemon.journal import decode_rel
except ImportError:  # an older journal stored every name as plain TEXT

    def decode_rel(stored: str) -> str:
        return stored


REPO = dh.REPO
JOURNAL_FILE = "journal.sqlite3"
FINAL_STATES = ("done", "retired", "quarantined", "vanished")
FOLDER = "cam"  # the rig's one watched folder
TEMP_MARKERS = (".anonymizer-", ".partial")
STRACE = shutil.which("strace")


def strace_usable() -> bool:
    """True when strace is installed and allowed to trace (ptrace may be blocked in containers)."""
    if STRACE is None:
        return False
    probe = subprocess.run([STRACE, "-f", "-qq", "-o", "/dev/null", "true"], check=False, capture_output=True)
    return probe.returncode == 0


# --------------------------------------------------------------------------- the rig


def write_profile(path: Path, *, retention: dict[str, Any] | None = None, plates: bool = False, **extra: Any) -> Path:
    """A quick profile: faces at one scale (plates optional), ultrafast encoding."""
    data: dict[str, Any] = {
        "name": "faults",
        "detect": {"device": "cpu", "faces": {"scales": [1.0]}, "plates": {"enabled": plates}},
        "output": {"preset": "ultrafast"},
        "retention": retention or {"source": "keep"},
    }
    data.update(extra)
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


@dataclass
class Rig:
    """One daemon config on temporary folders; ``daemon()`` starts a run on it."""

    root: Path
    config: Path
    inp: Path
    out: Path
    quarantine: Path
    state: Path
    audit: Path
    runs: list[FaultDaemon] = field(default_factory=list)

    def daemon(self, *, strace_args: list[str] | None = None, wait_ready: bool = True) -> FaultDaemon:
        run = FaultDaemon(self.config, self.root, strace_args=strace_args)
        self.runs.append(run)
        return run.start(wait_ready=wait_ready)

    def close(self) -> None:
        for run in self.runs:
            run.close()

    def logs(self) -> str:
        return dh.all_daemon_logs(self.root)

    def jobs(self) -> list[dict[str, Any]]:
        return journal_rows(self.state)


def make_rig(
    root: Path,
    *,
    retention: dict[str, Any] | None = None,
    settle_s: float = 0.5,
    poll_s: float = 0.1,
    retry: dict[str, Any] | None = None,
    plates: bool = False,
    log_file_names: bool = False,
    metrics: str | None = None,
    limits: dict[str, Any] | None = None,
    **folder_extra: Any,
) -> Rig:
    """Create folders, profile and daemon config under ``root``; return the Rig."""
    extra: dict[str, Any] = {"privacy": {"log_file_names": log_file_names}}
    if limits:
        extra["limits"] = limits
    profile = write_profile(root / "profile.yaml", retention=retention, plates=plates, **extra)
    entry = dh.folder_entry(root, FOLDER, profile, poll_interval_s=poll_s, settle_s=settle_s, **folder_extra)
    top: dict[str, Any] = {"retry": retry or {"max_attempts": 5, "base_s": 0.5, "max_s": 2.0}}
    if metrics:
        top["metrics"] = metrics
    config = dh.write_daemon_config(root / "daemon.yaml", [entry], **top)
    base = root / FOLDER
    return Rig(root, config, base / "in", base / "out", base / "quarantine", root / "state", root / "audit")


@contextlib.contextmanager
def rig_at(root: Path, **kwargs: Any) -> Iterator[Rig]:
    rig = make_rig(root, **kwargs)
    try:
        yield rig
    finally:
        rig.close()


class FaultDaemon(dh.DaemonProcess):
    """The daemon in its own session, optionally under strace; ``kill9`` kills it mid-step."""

    def __init__(self, config: Path, workdir: Path, *, strace_args: list[str] | None = None) -> None:
        super().__init__(config, workdir)
        self.strace_args = strace_args

    def start(self, *, wait_ready: bool = True) -> FaultDaemon:
        env = dict(os.environ, NOTIFY_SOCKET=str(self.notify_path), PYTHONUNBUFFERED="1", YOLO_OFFLINE="1")
        # No byte-code writes: they rename files, which would trip a rename-triggered fault.
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        argv = [sys.executable, "-m", "anonymizer", "daemon", "--config", str(self.config)]
        if self.strace_args is not None:
            assert STRACE, "strace is not installed"
            argv = [STRACE, "-f", "-qq", "-o", str(self.workdir / f"strace-{self.index}.log"), *self.strace_args, *argv]
        self.proc = subprocess.Popen(
            argv,
            cwd=REPO,
            env=env,
            stdout=open(self.stdout_path, "wb"),  # noqa: SIM115 - closed by the child's exit
            stderr=open(self.stderr_path, "wb"),  # noqa: SIM115
            start_new_session=True,
        )
        if wait_ready:
            dh.wait_for(lambda: self.saw("READY=1") or self._died(), dh.START_TIMEOUT_S, "READY=1 from the daemon")
            assert self.proc.poll() is None, f"daemon exited early:\n{self.logs()}"
        return self

    @property
    def pid(self) -> int:
        """The daemon's own pid (MAINPID from sd_notify; strace's child when traced)."""
        for message in self.read_notify():
            if message.startswith("MAINPID="):
                return int(message.split("=", 1)[1])
        assert self.proc is not None
        return self.proc.pid

    def kill9(self) -> None:
        """SIGKILL the daemon's whole session (daemon and tracer) at once, and reap it."""
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)
        # A SIGKILLed child may outlive its tracer by a moment; wait until the session is empty.
        dh.wait_for(lambda: not _session_alive(self.proc.pid), 10, "killed session to disappear", interval_s=0.02)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.kill9()


def _session_alive(sid: int) -> bool:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getsid(int(entry.name)) == sid:
                    stat = (entry / "stat").read_text()
                    if stat.rsplit(")", 1)[1].split()[0] != "Z":
                        return True
            except (ProcessLookupError, FileNotFoundError, PermissionError):
                continue
    return False


# --------------------------------------------------------------------------- the journal, read-only


def journal_rows(state_dir: Path) -> list[dict[str, Any]]:
    """Every job row, read through a read-only SQLite connection (never blocks the daemon's writes).

    Paths come back as ``os`` functions expect them (the journal stores names that are not valid
    UTF-8 in an encoded form).
    """
    path = Path(state_dir) / JOURNAL_FILE
    if not path.exists():
        return []
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        db.row_factory = sqlite3.Row
        rows = [dict(r) for r in db.execute("SELECT * FROM jobs ORDER BY created_at")]
        for row in rows:
            for key in ("rel_path", "output_rel"):
                if row[key] is not None:
                    row[key] = decode_rel(row[key])
        return rows
    except sqlite3.OperationalError:
        return []  # schema not created yet
    finally:
        db.close()


def rel_hmac(rig: Rig, rel_path: str) -> str | None:
    """The path HMAC the journal keeps for ``rel_path`` once it has erased the name (None before
    the daemon created its key)."""
    from anonymizer.audit.log import KEY_FILE, path_hmac

    key_file = rig.state / KEY_FILE
    return path_hmac(key_file.read_bytes(), FOLDER, rel_path) if key_file.exists() else None


def job_for(rig: Rig, rel_path: str) -> dict[str, Any] | None:
    # A retired job has no name in the journal any more, only its path HMAC.
    hmac_ = rel_hmac(rig, rel_path)
    rows = [r for r in rig.jobs() if r["rel_path"] == rel_path or (hmac_ and r.get("path_hmac") == hmac_)]
    return rows[-1] if rows else None


def all_final(rig: Rig, expected_jobs: int) -> bool:
    """True once at least ``expected_jobs`` jobs exist and none is queued or running."""
    rows = rig.jobs()
    return len(rows) >= expected_jobs and all(r["state"] in FINAL_STATES for r in rows)


def temp_files(*folders: Path) -> list[Path]:
    """Our temporaries (``.anonymizer-*``, ``*.partial*``) under the given folders."""
    found = []
    for folder in folders:
        if folder.exists():
            found += [p for p in folder.rglob("*") if any(m in p.name for m in TEMP_MARKERS)]
    return found


# --------------------------------------------------------------------------- the promise


@dataclass
class Ledger:
    """What happened to each dropped input, by its content hash."""

    outputs: dict[str, list[Path]] = field(default_factory=dict)
    quarantined: dict[str, list[Path]] = field(default_factory=dict)
    retired: dict[str, str] = field(default_factory=dict)

    def lost(self, sha: str) -> bool:
        return not self.outputs.get(sha) and not self.quarantined.get(sha)


def check_nothing_lost(rig: Rig, dropped: dict[str, str], *, expect_quarantined: set[str] = frozenset()) -> Ledger:
    """Assert the daemon's promise for every dropped input and return the ledger.

    Args:
        dropped: relative input path -> SHA-256 of the bytes dropped there.
        expect_quarantined: relative paths that must end in quarantine; all others need an output.

    Checked: each input has exactly one verified output (its bytes match the journal's
    output_sha256) or is in quarantine with a reason file; a source is gone from the input only if
    its job is retired after a verified output (or it was quarantined); no content was anonymized
    twice; no temporary file remains; the audit chain verifies and has one job line per job.
    """
    rows = rig.jobs()
    ledger = Ledger()
    by_sha: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if row["input_sha256"]:
            by_sha.setdefault(row["input_sha256"], []).append(row)
    quarantine_files = {
        sha256(p): p for p in rig.quarantine.rglob("*") if p.is_file() and not p.name.endswith(".reason.json")
    }
    # Outputs are found by their bytes: the journal erases a job's output name once it is retired.
    outputs_on_disk = [p for p in rig.out.rglob("*") if p.is_file()]
    outputs_by_sha: dict[str, list[Path]] = {}
    for p in outputs_on_disk:
        outputs_by_sha.setdefault(sha256(p), []).append(p)
    for rel, sha in dropped.items():
        jobs = by_sha.get(sha, [])
        anonymized = [j for j in jobs if j["outcome"] == "anonymized"]
        assert len(anonymized) <= 1, f"{rel}: anonymized {len(anonymized)} times"
        if rel in expect_quarantined:
            assert sha in quarantine_files, f"{rel}: expected in quarantine; jobs: {_brief(jobs)}"
            qpath = quarantine_files[sha]
            reason = qpath.with_name(qpath.name + ".reason.json")
            assert reason.is_file() and json.loads(reason.read_text())["reason"], f"{rel}: no reason file"
            ledger.quarantined.setdefault(sha, []).append(qpath)
            assert not (rig.inp / rel).exists() or sha256(rig.inp / rel) != sha, f"{rel}: still in the input"
            continue
        assert len(anonymized) == 1, f"{rel}: no anonymized output; jobs: {_brief(jobs)}\n{rig.logs()[-3000:]}"
        job = anonymized[0]
        found = outputs_by_sha.get(job["output_sha256"], [])
        if job["output_rel"] is not None:
            output = rig.out / job["output_rel"]
            assert output.is_file(), f"{rel}: journal names an output that does not exist"
            assert sha256(output) == job["output_sha256"], f"{rel}: output bytes differ from the verified hash"
        assert found, f"{rel}: no output with the verified hash in the output folder"
        # One output per dropped file: the one at its own path when there is one.
        own = [p for p in found if p.relative_to(rig.out).as_posix().startswith(rel)]
        ledger.outputs.setdefault(sha, []).append((own or found)[0])
        source = rig.inp / rel
        if not source.exists():
            retired = [j for j in jobs if j["state"] == "retired" and j["retention"] in ("deleted", "moved")]
            assert retired, f"{rel}: source gone but no job retired it"
            ledger.retired[sha] = retired[0]["retention"]
    recorded = {j["output_sha256"] for j in rows if j["outcome"] == "anonymized" and j["output_sha256"]}
    stray = [p for sha, paths in outputs_by_sha.items() if sha not in recorded for p in paths]
    assert stray == [], f"outputs not in the journal: {stray}"
    assert temp_files(rig.out, rig.quarantine, rig.inp) == [], "temporary files left behind"
    audit = dh.audit_lines(rig.audit)
    job_lines = [a["job_id"] for a in audit if a.get("event") == "job"]
    assert len(job_lines) == len(set(job_lines)), "a job has two audit lines"
    dropped_hmacs = {rel_hmac(rig, rel) for rel in dropped}
    final = {
        r["id"]
        for r in rows
        if r["state"] in ("done", "retired", "quarantined")
        and (r["rel_path"] in dropped or r.get("path_hmac") in dropped_hmacs)
    }
    assert final <= set(job_lines), f"finished jobs without an audit line: {final - set(job_lines)}"
    verify = dh.run_cli("audit", "verify", "--config", str(rig.config))
    assert verify.returncode == 0, verify.stdout + verify.stderr
    # Privacy, after every scenario: no log line or audit line names a dropped file.
    audit_text = (rig.audit / "audit.jsonl").read_text() if (rig.audit / "audit.jsonl").exists() else ""
    names = private_names([Path(rel) for rel in dropped])
    problems = scan_for_private_data(rig.logs() + audit_text, names=names)
    assert problems == [], f"private data in logs or audit: {problems}"
    return ledger


def _brief(jobs: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(j["id"], j["state"], j["outcome"], j["attempts"], j["error"]) for j in jobs]


# --------------------------------------------------------------------------- privacy


# Numbers in a JSON list of four: what a bounding box looks like in a log line.
_BOX = re.compile(r"\[\s*-?\d+(?:\.\d+)?(?:\s*,\s*-?\d+(?:\.\d+)?){3}\s*\]")
_BOX_KEYS = re.compile(r'"(?:xyxy|bbox|box|boxes|coords?|x1|y1|x2|y2|region|regions_xyxy)"\s*:')


def scan_for_private_data(text: str, *, names: set[str], plate_texts: set[str] = frozenset()) -> list[str]:
    """Return every problem found in ``text`` (logs, metrics): names, plate texts, coordinates."""
    problems = []
    for name in sorted(names):
        if name and name in text:
            problems.append(f"file name {name!r}")
    for plate in sorted(plate_texts):
        if plate in text or plate.lower() in text.lower():
            problems.append(f"plate text {plate!r}")
    for match in _BOX.finditer(text):
        problems.append(f"coordinates {match.group(0)!r}")
    for match in _BOX_KEYS.finditer(text):
        problems.append(f"coordinate key {match.group(0)!r}")
    return problems


def private_names(paths: list[Path]) -> set[str]:
    """The names and (longer) stems of the given inputs: what must not appear in logs."""
    out = set()
    for p in paths:
        out.add(p.name)
        if len(p.stem) > 3:
            out.add(p.stem)
    return out


def scrape_metrics(address: str) -> str:
    import urllib.request

    with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as resp:
        return resp.read().decode()


# --------------------------------------------------------------------------- process figures


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- load


def write_photos(folder: Path, count: int, *, size_wh: tuple[int, int] = (96, 72)) -> dict[str, str]:
    """Write ``count`` small, distinct JPEGs (each carries its index in its pixels); return rel -> sha."""
    width, height = size_wh
    rng = np.random.default_rng(7)
    base = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    staging = folder.parent / (folder.name + ".staging")
    staging.mkdir(exist_ok=True)
    dropped = {}
    for i in range(count):
        image = base.copy()
        image[0, :4] = [(i >> 16) & 255, (i >> 8) & 255, i & 255]
        ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 95])
        assert ok
        path = staging / f"img-{i:05d}.jpg"
        path.write_bytes(data.tobytes())
    # Then "dropped at once": renamed in as fast as the filesystem allows.
    for path in sorted(staging.iterdir()):
        dropped[path.name] = sha256(path)
        path.rename(folder / path.name)
    staging.rmdir()
    return dropped


class Sampler(threading.Thread):
    """Samples a process's resident memory (kB) and the time, every ``interval_s``."""

    def __init__(self, pid: int, interval_s: float = 0.25) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self.pid, self.interval_s = pid, interval_s
        self.samples: list[tuple[float, int]] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval_s):
            try:
                self.samples.append((time.monotonic(), rss_kb(self.pid)))
            except (FileNotFoundError, ProcessLookupError):
                return

    def stop(self) -> list[tuple[float, int]]:
        self.stopped.set()
        self.join(5)
        return self.samples


# --------------------------------------------------------------------------- mounts


def can_mount() -> bool:
    """True when this process may mount a tmpfs (root with CAP_SYS_ADMIN, as in CI here)."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    probe = Path(f"/tmp/anonymizer-mount-probe-{os.getpid()}")
    probe.mkdir(exist_ok=True)
    try:
        cmd = ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe)]
        ok = subprocess.run(cmd, check=False, capture_output=True)
        if ok.returncode != 0:
            return False
        subprocess.run(["umount", str(probe)], check=True)
        return True
    finally:
        probe.rmdir()


def mount_tmpfs(path: Path, size: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)


def remount(path: Path, mode: str) -> None:
    """Remount a mount point read-only ("ro") or read-write ("rw")."""
    subprocess.run(["mount", "-o", f"remount,{mode}", str(path)], check=True)


def bind_readonly(path: Path) -> None:
    """Make ``path`` a read-only bind mount of itself (chmod does not stop root; this does)."""
    subprocess.run(["mount", "--bind", str(path), str(path)], check=True)
    subprocess.run(["mount", "-o", "remount,bind,ro", str(path)], check=True)


def is_mount_point(path: Path) -> bool:
    """True if ``path`` is a mount point (bind mounts of the same filesystem included)."""
    target = str(Path(path).resolve())
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].encode().decode("unicode_escape")  # \040 for spaces etc.
        if point == target:
            return True
    return False


def umount(path: Path) -> None:
    """Unmount ``path`` until nothing is mounted there any more (mounts can be stacked)."""
    for _ in range(5):
        if not is_mount_point(path):
            return
        if subprocess.run(["umount", str(path)], check=False, capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)


@contextlib.contextmanager
def mounted(*paths: Path) -> Iterator[None]:
    """Unmount the given mount points on exit, whatever happened."""
    try:
        yield
    finally:
        for path in reversed(paths):
            umount(path)


# The fault tests poll twice as often as the others: they catch the daemon between two states.
wait_for = functools.partial(support.wait_for, interval_s=0.05)


def retired_all(rig: Rig) -> bool:
    """True when no job of the rig is left in state ``done`` (retention settled for every one)."""
    return all(r["state"] != "done" for r in rig.jobs())


def wait_serving(daemon: FaultDaemon, predicate: Any, timeout_s: float, what: str) -> None:
    """Wait for ``predicate``, failing at once (with the daemon's last log lines) if the daemon dies."""
    dh.wait_for(lambda: predicate() or daemon._died(), timeout_s, what)
    assert not daemon._died(), f"the daemon died while waiting for {what}:\n{daemon.logs()[-3000:]}"
