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

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anonymizer.config import Checker, Profile, load_profile, read_yaml
from anonymizer.errors import ConfigError

# SQLite's WAL needs shared memory and POSIX locks that network filesystems do not provide
# reliably: a journal on a share can corrupt silently, so it is refused up front.
NETWORK_FS_TYPES = frozenset({"nfs", "nfs4", "cifs", "smb3", "smbfs", "fuse.sshfs", "9p", "ceph", "glusterfs"})

TOP_KEYS = {"state_dir", "audit_dir", "audit_key", "metrics", "folders", "retry", "api", "buckets"}
FOLDER_KEYS = {
    "name",
    "input",
    "output",
    "quarantine",
    "profile",
    "poll_interval_s",
    "settle_s",
    "done_marker",
    "rescan_interval_s",
}
RETRY_KEYS = {"max_attempts", "base_s", "max_s"}
# Scale-out (docs/scale-out.md): with ``broker`` the daemon enqueues jobs for `anonymizer worker`.
BROKER_KEYS = {"broker", "result_backend", "broker_in_flight", "visibility_timeout_s"}
TOP_KEYS |= BROKER_KEYS


@dataclass(frozen=True)
class RetryPolicy:
    """Transient failures (disk full, share gone) are retried with exponential backoff + jitter."""

    max_attempts: int = 5
    base_s: float = 30.0
    max_s: float = 3600.0


@dataclass(frozen=True)
class BrokerConfig:
    """Where jobs are enqueued for remote workers, and how many may be out at once."""

    url: str
    result_backend: str | None = None
    in_flight: int = 8
    visibility_timeout_s: float = 8 * 3600.0


@dataclass(frozen=True)
class FolderConfig:
    """One watched input folder and where its results, rejects and policy live."""

    name: str
    input: Path
    output: Path
    quarantine: Path
    profile_path: Path
    profile: Profile
    poll_interval_s: float = 10.0
    settle_s: float = 30.0
    done_marker: bool = False
    rescan_interval_s: float = 600.0

    @property
    def retention_move_to(self) -> Path | None:
        """The profile's ``retention.move_to``, resolved against the profile file's folder."""
        return _move_to(self.profile, self.profile_path)


@dataclass(frozen=True)
class DaemonConfig:
    """The whole daemon configuration; replaced as one object on SIGHUP."""

    state_dir: Path
    audit_dir: Path
    metrics: tuple[str, int] | None
    folders: tuple[FolderConfig, ...]
    retry: RetryPolicy
    source_path: Path
    # The audit chain's HMAC key file; None: ``state_dir/audit-chain.key``. Kept out of audit_dir,
    # so that write access to the audit folder is not enough to rewrite the chain.
    audit_key: Path | None = None
    # ``anonymizer api`` (anonymizer/api/settings.py) and the S3 sources and sinks
    # (anonymizer/buckets/settings.py): both feed folders of ``folders``, named there.
    api: Any = None
    buckets: tuple[Any, ...] = ()
    broker: BrokerConfig | None = None  # None: every job runs in the daemon's own process

    @property
    def audit_key_path(self) -> Path:
        """The chain key file the daemon signs with and ``audit verify`` checks with."""
        from anonymizer.audit.log import CHAIN_KEY_FILE

        return self.audit_key if self.audit_key is not None else self.state_dir / CHAIN_KEY_FILE

    def folder(self, name: str) -> FolderConfig | None:
        """Return the folder called ``name``, or None if the config no longer has it."""
        return next((f for f in self.folders if f.name == name), None)


def load_daemon_config(path: str | Path) -> DaemonConfig:
    """Load and validate a daemon config. Raise ConfigError listing every problem found.

    Each folder's profile is loaded too, so a reload with a broken profile is refused as a whole.
    """
    path = Path(path).expanduser().resolve()
    data = read_yaml(path, "daemon config")
    return daemon_config_from_dict(data, path)


def daemon_config_from_dict(data: Any, path: Path) -> DaemonConfig:
    """Given parsed YAML and the file it came from, return a DaemonConfig or raise ConfigError."""
    c = Checker(str(path))
    base = path.parent
    top = c.section(data, "", TOP_KEYS)
    for key in ("state_dir", "audit_dir", "folders"):
        if key not in top:
            c.error(key, "required key is missing")
    state_dir = _dir(c, top, "", "state_dir", base)
    audit_dir = _dir(c, top, "", "audit_dir", base)
    audit_key = _dir(c, top, "", "audit_key", base)
    if audit_key is not None and audit_dir is not None and (audit_key == audit_dir or audit_dir in audit_key.parents):
        c.error("audit_key", f"{audit_key} lies inside audit_dir; keep the chain key apart from the audit folder")
    metrics = _metrics(c, top.get("metrics"))

    ret = c.section(top.get("retry"), "retry", RETRY_KEYS)
    dflt = RetryPolicy()
    retry = RetryPolicy(
        max_attempts=c.get(ret, "retry", "max_attempts", dflt.max_attempts, int, minimum=1, maximum=100),
        base_s=float(c.get(ret, "retry", "base_s", dflt.base_s, (int, float), minimum=0.01)),
        max_s=float(c.get(ret, "retry", "max_s", dflt.max_s, (int, float), minimum=0.01)),
    )

    folders: list[FolderConfig] = []
    raw_folders = top.get("folders")
    if "folders" in top and (not isinstance(raw_folders, list) or not raw_folders):
        c.error("folders", "expected a non-empty list of folders")
        raw_folders = []
    layouts: list[_Layout] = []
    for i, raw in enumerate(raw_folders or []):
        folder, layout = _folder(c, raw, f"folders[{i}]", base)
        if folder is not None:
            folders.append(folder)
        layouts.append(layout)
    # The layout is checked on every folder, also those with other errors (a broken profile, a
    # missing key): otherwise a duplicate name or overlapping input surfaces only in a second round.
    _check_folder_layout(c, layouts, state_dir, audit_dir)
    from anonymizer.api.settings import api_config_from_dict
    from anonymizer.buckets.settings import buckets_from_list

    folder_names = {f.name for f in folders}
    api = api_config_from_dict(c, top.get("api"), base, folder_names)
    buckets = buckets_from_list(c, top.get("buckets"), folder_names)
    if state_dir is not None and _is_network_fs(state_dir):
        c.error("state_dir", f"{state_dir} is on a network filesystem; the SQLite journal needs local disk")
    broker = _broker(c, top)
    c.raise_if_errors()
    assert state_dir is not None and audit_dir is not None  # guaranteed by raise_if_errors
    return DaemonConfig(state_dir, audit_dir, metrics, tuple(folders), retry, path, audit_key, api, buckets, broker)


def _broker(c: Checker, top: dict[str, Any]) -> BrokerConfig | None:
    from anonymizer.dist.config import BACKEND_SCHEMES, BROKER_SCHEMES, check_backend_pair, check_url

    url = check_url(c, "broker", top.get("broker"), BROKER_SCHEMES)
    backend = check_url(c, "result_backend", top.get("result_backend"), BACKEND_SCHEMES)
    dflt = BrokerConfig("")
    in_flight = c.get(top, "", "broker_in_flight", dflt.in_flight, int, minimum=1, maximum=10000)
    timeout = float(
        c.get(top, "", "visibility_timeout_s", dflt.visibility_timeout_s, (int, float), minimum=10, maximum=7 * 86400)
    )
    if url is None:
        for key in sorted(BROKER_KEYS - {"broker"}):
            if key in top:
                c.error(key, "only meaningful with a broker (set broker: URL or remove this key)")
        return None
    check_backend_pair(c, url, backend)
    import importlib.util

    if importlib.util.find_spec("celery") is None or importlib.util.find_spec("redis") is None:
        c.error("broker", "needs the dist extra (celery, redis-py): ANONYMIZER_EXTRAS=dist ./scripts/install.sh")
    return BrokerConfig(url, backend, in_flight, timeout)


def _dir(c: Checker, data: dict[str, Any], path: str, key: str, base: Path) -> Path | None:
    value = c.get(data, path, key, None, str)
    if value is None:
        return None
    if not value.strip():
        c.error(f"{path}.{key}" if path else key, "expected a folder path, got an empty string")
        return None
    p = Path(value).expanduser()
    return (p if p.is_absolute() else base / p).resolve()


def _metrics(c: Checker, value: Any) -> tuple[str, int] | None:
    if value is None or value is False:
        return None
    if not isinstance(value, str) or ":" not in value:
        c.error("metrics", f"expected HOST:PORT such as 127.0.0.1:9808, got {value!r}")
        return None
    host, _, port = value.rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65536 or not host:
        c.error("metrics", f"expected HOST:PORT with a port 1-65535, got {value!r}")
        return None
    return host.strip("[]"), int(port)


@dataclass(frozen=True)
class _Layout:
    """What the layout checks need of one folder, known even when the folder has other errors."""

    where: str
    name: str | None
    input: Path | None
    others: dict[str, Path]


def _folder(c: Checker, raw: Any, path: str, base: Path) -> tuple[FolderConfig | None, _Layout]:
    d = c.section(raw, path, FOLDER_KEYS)
    if not d:
        if raw is None or isinstance(raw, dict):
            c.error(path, "expected a folder mapping with name, input, output, quarantine, profile")
        return None, _Layout(path, None, None, {})
    missing = [k for k in ("name", "input", "output", "quarantine", "profile") if k not in d]
    for key in missing:
        c.error(f"{path}.{key}", "required key is missing")
    name = c.get(d, path, "name", None, str)
    dirs = {k: _dir(c, d, path, k, base) for k in ("input", "output", "quarantine", "profile")}
    poll = float(c.get(d, path, "poll_interval_s", 10.0, (int, float), minimum=0.05, maximum=3600))
    settle = float(c.get(d, path, "settle_s", 30.0, (int, float), minimum=0, maximum=86400))
    done_marker = c.get(d, path, "done_marker", False, bool)
    rescan = float(c.get(d, path, "rescan_interval_s", 600.0, (int, float), minimum=1, maximum=86400))
    profile = None
    if dirs["profile"] is not None:
        try:
            profile = load_profile(dirs["profile"])
        except ConfigError as exc:
            c.errors.append(f"{c.source}: at '{path}.profile': {exc}")
    if dirs["input"] is not None and not dirs["input"].is_dir():
        c.error(f"{path}.input", f"{dirs['input']} is not an existing folder")
    others = {k: dirs[k] for k in ("output", "quarantine") if dirs[k] is not None}
    move_to = _move_to(profile, dirs["profile"]) if profile is not None and dirs["profile"] is not None else None
    if move_to is not None:
        others["profile retention.move_to"] = move_to
    layout = _Layout(path, name, dirs["input"], others)
    if missing or name is None or profile is None or None in dirs.values():
        return None, layout
    return FolderConfig(
        name=name,
        input=dirs["input"],  # type: ignore[arg-type]
        output=dirs["output"],  # type: ignore[arg-type]
        quarantine=dirs["quarantine"],  # type: ignore[arg-type]
        profile_path=dirs["profile"],  # type: ignore[arg-type]
        profile=profile,
        poll_interval_s=poll,
        settle_s=settle,
        done_marker=done_marker,
        rescan_interval_s=rescan,
    ), layout


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
