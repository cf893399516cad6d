"""Daemon configuration: one YAML file validated at once into frozen dataclasses.

Example (every key documented in docs/daemon.md)::

    state_dir: /var/lib/anonymizer
    audit_dir: /var/log/anonymizer/audit
    metrics: 127.0.0.1:9808
    folders:
      - name: vms-exports
        input: /srv/share/in
        output: /srv/share/out
        quarantine: /srv/share/quarantine
        profile: /etc/anonymizer/profiles/cctv.yaml
        poll_interval_s: 10
        settle_s: 30

Relative paths are resolved against the folder holding the config file, so a config and its
folders can be moved together (the demo relies on this).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anonymizer.audit.log import CHAIN_KEY_FILE
from anonymizer.config import Checker, Profile, load_profile, read_yaml
from anonymizer.errors import ConfigError
from anonymizer.schema import Reader, section, setting, yaml_keys
from anonymizer.settings.api import api_config_from_dict
from anonymizer.settings.buckets import buckets_from_list
from anonymizer.settings.scaleout import (
    backend_setting,
    broker_setting,
    check_backend_pair,
    check_dist_extra,
    metrics_setting,
    timeout_setting,
)

# SQLite's WAL needs shared memory and POSIX locks that network filesystems do not provide
# reliably: a journal on a share can corrupt silently, so it is refused up front.
NETWORK_FS_TYPES = frozenset({"nfs", "nfs4", "cifs", "smb3", "smbfs", "fuse.sshfs", "9p", "ceph", "glusterfs"})


@dataclass(frozen=True)
class RetryPolicy:
    """Transient failures (disk full, share gone) are retried with exponential backoff + jitter."""

    max_attempts: int = setting(5, doc="attempts before a file is quarantined", minimum=1, maximum=100)
    base_s: float = setting(30.0, doc="backoff base, in seconds", minimum=0.01)
    max_s: float = setting(3600.0, doc="backoff cap, in seconds", minimum=0.01)


@dataclass(frozen=True)
class BrokerConfig:
    """Where jobs are enqueued for remote workers, and how many may be out at once.

    Its keys sit at the config's top level (docs/scale-out.md): with ``broker`` the daemon
    enqueues jobs for `anonymizer worker`; without it, every job runs in the daemon's own process.
    """

    url: str = broker_setting(key="broker", shown_default="off")
    result_backend: str | None = backend_setting()
    in_flight: int = setting(
        8,
        key="broker_in_flight",
        doc="jobs out on workers at once (about 2 per worker process)",
        minimum=1,
        maximum=10000,
    )
    visibility_timeout_s: float = timeout_setting()


@dataclass(frozen=True)
class FolderConfig:
    """One watched input folder and where its results, rejects and policy live."""

    name: str = setting(required=True, doc="unique; used in logs, metrics and the audit trail")
    input: Path = setting(required=True, doc="watched folder; must exist")
    output: Path = setting(required=True, doc="anonymized copies (sub-folders mirrored); created if missing")
    quarantine: Path = setting(required=True, doc="rejected inputs plus `.reason.json`; created if missing")
    profile_path: Path = setting(
        required=True, key="profile", doc="profile YAML (detection, masking, limits, retention, privacy)"
    )
    profile: Profile  # loaded from profile_path
    poll_interval_s: float = setting(10.0, doc="seconds between scans", minimum=0.05, maximum=3600)
    settle_s: float = setting(30.0, doc="seconds a file must stay unchanged", minimum=0, maximum=86400)
    done_marker: bool = setting(False, doc="wait for `<name>.done` instead of `settle_s`")
    rescan_interval_s: float = setting(
        600.0, doc="full reconciliation against the journal", minimum=1, maximum=86400
    )

    @property
    def retention_move_to(self) -> Path | None:
        """The profile's ``retention.move_to``, resolved against the profile file's folder."""
        return _move_to(self.profile, self.profile_path)


@dataclass(frozen=True)
class DaemonConfig:
    """The whole daemon configuration; replaced as one object on SIGHUP."""

    state_dir: Path = setting(
        required=True,
        doc="journal, keys, lock and heartbeat; local disk only",
        details="SQLite journal (`journal.sqlite3`), the path HMAC key (`audit-hmac.key`) and, unless "
        "`audit_key` names another file, the audit chain key (`audit-chain.key`); also `daemon.lock` and "
        "the heartbeat file `daemon.status.json` that `status` reads. Must be on local disk: a network "
        "filesystem is refused.",
    )
    audit_dir: Path = setting(required=True, doc="`audit.jsonl`, the keyed hash-chained audit log")
    folders: tuple[FolderConfig, ...] = setting(required=True, doc="one or more watched folders")
    source_path: Path  # the config file
    # The audit chain's HMAC key file; None: ``state_dir/audit-chain.key``. Kept out of audit_dir,
    # so that write access to the audit folder is not enough to rewrite the chain.
    audit_key: Path | None = setting(
        None,
        doc="the audit chain's HMAC key file",
        details="the audit chain's HMAC key file (32 random bytes, created on first start if absent). Must "
        "not lie inside `audit_dir`; best outside `state_dir` too, readable by the service and not writable "
        "by it (see Install). Changing it needs a restart",
        shown_default="`state_dir/audit-chain.key`",
    )
    metrics: tuple[str, int] | None = metrics_setting(
        "`HOST:PORT` for Prometheus `/metrics`; changing it needs a restart", "127.0.0.1:9808"
    )
    output_mode: int | None = setting(
        None,
        doc="file mode of every published output, in octal (e.g. '0640')",
        details="file mode of every published output, direct or approved after review (docs/review.md), "
        "in octal, quoted: `'0640'`. By default outputs get what new files get under the service's umask "
        "(0644 under umask 022, 0640 under the unit's `UMask=0027`). Read and write bits only",
        kind="custom",
        shown_default="by umask",
    )
    stall_timeout_s: float = setting(
        300.0,
        doc="a job with no progress for this long: logged, the daemon exits 7 and systemd restarts it",
        details="a running job that makes no progress for this long (no frame, inference pass or 64 MiB "
        "hashed; the slowest legitimate step, decoding a 24 MP photo on a busy 2-core host, takes about "
        "20 s) is logged as `daemon.stalled`; the daemon then exits with code 7 and systemd restarts it. "
        "The job counts an attempt. The systemd watchdog stops being fed at the same moment",
        minimum=10,
        maximum=86400,
    )
    retry: RetryPolicy = section(RetryPolicy)
    # ``anonymizer api`` (anonymizer/settings/api.py) and the S3 sources and sinks
    # (anonymizer/settings/buckets.py): both feed folders of ``folders``, named there.
    api: Any = setting(None, doc="the REST job API (docs/api.md)", kind="custom", shown_default="off")
    buckets: tuple[Any, ...] = setting(
        (), doc="S3 sources and sinks (docs/buckets.md)", kind="custom", shown_default="none"
    )
    broker: BrokerConfig | None = section(None, flatten=True)  # None: every job runs in the daemon's own process

    @property
    def audit_key_path(self) -> Path:
        """The chain key file the daemon signs with and ``audit verify`` checks with."""

        return self.audit_key if self.audit_key is not None else self.state_dir / CHAIN_KEY_FILE

    def folder(self, name: str) -> FolderConfig | None:
        """Return the folder called ``name``, or None if the config no longer has it."""
        return next((f for f in self.folders if f.name == name), None)


TOP_KEYS = yaml_keys(DaemonConfig)
BROKER_KEYS = yaml_keys(BrokerConfig)


def load_daemon_config(path: str | Path) -> DaemonConfig:
    """Load and validate a daemon config. Raise ConfigError listing every problem found.

    Each folder's profile is loaded too, so a reload with a broken profile is refused as a whole.
    """
    path = Path(path).expanduser().resolve()
    data = read_yaml(path, "daemon config")
    return daemon_config_from_dict(data, path)


def daemon_config_from_dict(data: Any, path: Path) -> DaemonConfig:
    """Given parsed YAML and the file it came from, return a DaemonConfig or raise ConfigError.

    The keys are read by anonymizer.schema; the rules between them follow, as small functions.
    """
    c = Checker(str(path))
    layouts: list[_Layout] = []

    def check_folder(c: Checker, d: dict[str, Any], where: str, values: dict[str, Any], _: Any) -> bool:
        return _check_folder(c, where, values, layouts)

    def check_top(c: Checker, top: dict[str, Any], _: str, values: dict[str, Any], __: Any) -> bool:
        values["source_path"] = path
        _check_top(c, top, values, layouts, path.parent)
        return True

    checks = {FolderConfig: check_folder, BrokerConfig: _check_broker, DaemonConfig: check_top}
    cfg = Reader(c, base_dir=path.parent, checks=checks).read(DaemonConfig, data)
    c.raise_if_errors()
    assert cfg is not None  # guaranteed by raise_if_errors: state_dir, audit_dir, folders are valid
    return cfg


def _check_top(c: Checker, top: dict[str, Any], values: dict[str, Any], layouts: list[_Layout], base: Path) -> None:
    state_dir, audit_dir, audit_key = values["state_dir"], values["audit_dir"], values["audit_key"]
    if audit_key is not None and audit_dir is not None and (audit_key == audit_dir or audit_dir in audit_key.parents):
        c.error("audit_key", f"{audit_key} lies inside audit_dir; keep the chain key apart from the audit folder")
    # The layout is checked on every folder, also those with other errors (a broken profile, a
    # missing key): otherwise a duplicate name or overlapping input surfaces only in a second round.
    _check_folder_layout(c, layouts, state_dir, audit_dir)

    values["output_mode"] = _output_mode(c, top.get("output_mode"))
    folder_names = {f.name for f in values["folders"]}
    values["api"] = api_config_from_dict(c, top.get("api"), base, folder_names)
    values["buckets"] = buckets_from_list(c, top.get("buckets"), folder_names)
    if state_dir is not None and _is_network_fs(state_dir):
        c.error("state_dir", f"{state_dir} is on a network filesystem; the SQLite journal needs local disk")


def _output_mode(c: Checker, raw: Any) -> int | None:
    """``output_mode``: None, or octal permission bits (a quoted '0640', or YAML's own octal)."""
    if raw is None:
        return None
    mode = None
    if isinstance(raw, str) and raw.strip().removeprefix("0o").isdigit():
        try:
            mode = int(raw.strip().removeprefix("0o"), 8)
        except ValueError:
            mode = None
    elif isinstance(raw, int) and not isinstance(raw, bool):
        mode = raw  # YAML 1.1 reads an unquoted 0640 as octal already
    if mode is None or mode & ~0o666 or not mode & 0o400:
        c.error(
            "output_mode",
            f"expected an octal file mode of read and write bits that the owner can read, quoted: '0640'; got {raw!r}",
        )
        return None
    return mode


def _check_broker(c: Checker, top: dict[str, Any], _: str, values: dict[str, Any], __: Any) -> bool:
    """Without ``broker`` there is no BrokerConfig, and its other keys are mistakes."""
    if values["url"] is None:
        for key in sorted(BROKER_KEYS - {"broker"}):
            if key in top:
                c.error(key, "only meaningful with a broker (set broker: URL or remove this key)")
        return False
    check_backend_pair(c, values["url"], values["result_backend"])
    check_dist_extra(c)
    return True


@dataclass(frozen=True)
class _Layout:
    """What the layout checks need of one folder, known even when the folder has other errors."""

    where: str
    name: str | None
    input: Path | None
    others: dict[str, Path] = field(default_factory=dict)


def _check_folder(c: Checker, where: str, values: dict[str, Any], layouts: list[_Layout]) -> bool:
    """Load the folder's profile (its errors under ``<folder>.profile``); note its layout."""
    profile = None
    profile_path = values["profile_path"]
    if profile_path is not None:
        try:
            profile = load_profile(profile_path)
        except ConfigError as exc:
            c.error(f"{where}.profile", str(exc))
    values["profile"] = profile
    if values["input"] is not None and not values["input"].is_dir():
        c.error(f"{where}.input", f"{values['input']} is not an existing folder")
    others = {k: values[k] for k in ("output", "quarantine") if values[k] is not None}
    move_to = _move_to(profile, profile_path) if profile is not None else None
    if move_to is not None:
        others["profile retention.move_to"] = move_to
    layouts.append(_Layout(where, values["name"], values["input"], others))
    return profile is not None


def _move_to(profile: Profile, profile_path: Path) -> Path | None:
    if profile.retention.move_to is None:
        return None
    target = Path(profile.retention.move_to).expanduser()
    return target if target.is_absolute() else (profile_path.parent / target).resolve()


def _nested(a: Path, b: Path) -> bool:
    return a == b or a in b.parents or b in a.parents


def _check_folder_layout(
    c: Checker, folders: list[_Layout], state_dir: Path | None, audit_dir: Path | None
) -> None:
    # An output or quarantine inside an input would be scanned and re-anonymized forever; two
    # folders sharing an input would race for the same files.
    names: dict[str, str] = {}
    for i, f in enumerate(folders):
        if f.name is not None:
            if f.name in names:
                c.error(f"{f.where}.name", f"{f.name!r} is used by {names[f.name]} too; names must be unique")
            else:
                names[f.name] = f.where
        if f.input is None:
            continue
        for key, other in f.others.items():
            if _nested(f.input, other):
                c.error(f"{f.where}.{key}", f"{other} must not be, contain or lie inside the input folder {f.input}")
        for key, other in (("state_dir", state_dir), ("audit_dir", audit_dir)):
            if other is not None and _nested(f.input, other):
                c.error(key, f"{other} must not be, contain or lie inside the input folder {f.input}")
        for g in folders[:i]:
            if g.input is not None and _nested(f.input, g.input):
                c.error(f"{f.where}.input", f"{f.input} overlaps the input of {g.where} ({g.input})")


def mount_of(path: Path) -> tuple[str, str]:
    """Return (mount point, filesystem type) of the mount holding ``path`` or its nearest parent.

    Read from /proc/self/mounts by longest matching prefix; ("", "") when that is unavailable.
    """
    try:
        mounts = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return "", ""
    probe = Path(path)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    text = str(probe.resolve())
    best, best_type = "", ""
    for line in mounts:
        parts = line.split()
        if len(parts) < 3:
            continue
        mount_point = parts[1].replace("\\040", " ")
        inside = text == mount_point or text.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) > len(best):
            best, best_type = mount_point, parts[2]
    return best, best_type


def _is_network_fs(path: Path) -> bool:
    """Return True if ``path`` (or its nearest existing parent) is on a network filesystem."""
    return mount_of(path)[1] in NETWORK_FS_TYPES
