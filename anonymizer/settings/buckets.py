"""The daemon config's ``buckets:`` section, validated into frozen ``BucketConfig`` entries.

Example (every key in docs/buckets.md)::

    buckets:
      - name: archive
        folder: s3-scratch              # a folder of `folders:`: local scratch, profile, retention
        source: {bucket: raw-media, prefix: incoming/}
        sink: {bucket: anonymized-media, prefix: anonymized/}
        retention: delete               # keep | delete (the source object, after verification)
        endpoint_url: https://minio.internal:9000
        region: eu-central-1
        sse: {mode: aws:kms, kms_key_id: alias/anonymizer}
        poll_interval_s: 30
        settle_s: 60

Credentials are never part of the config: boto3 reads them from the standard AWS chain
(environment, shared credentials file, instance or container role).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from anonymizer.config import Checker, parse_duration
from anonymizer.settings.api import missing_modules

BUCKET_KEYS = {
    "name",
    "folder",
    "source",
    "sink",
    "retention",
    "endpoint_url",
    "region",
    "sse",
    "poll_interval_s",
    "settle_s",
    "multipart_threshold_bytes",
    "max_attempts",
}
LOCATION_KEYS = {"bucket", "prefix"}
SSE_KEYS = {"mode", "kms_key_id"}
SSE_MODES = ("AES256", "aws:kms")
RETENTION = ("keep", "delete")


@dataclass(frozen=True)
class BucketConfig:
    """One source prefix, the sink it is anonymized into, and the daemon folder that does the work."""

    name: str
    folder: str
    source_bucket: str
    source_prefix: str
    sink_bucket: str
    sink_prefix: str
    retention: str = "keep"
    endpoint_url: str | None = None
    region: str | None = None
    sse_mode: str | None = None
    sse_kms_key_id: str | None = None
    poll_interval_s: float = 30.0
    settle_s: float = 60.0
    multipart_threshold_bytes: int = 64 * 1024**2
    max_attempts: int = 5

    def upload_args(self) -> dict[str, str]:
        """ExtraArgs for the sink upload: server-side encryption as configured."""
        args: dict[str, str] = {}
        if self.sse_mode is not None:
            args["ServerSideEncryption"] = self.sse_mode
        if self.sse_kms_key_id is not None:
            args["SSEKMSKeyId"] = self.sse_kms_key_id
        return args


def _location(c: Checker, raw: Any, path: str) -> tuple[str, str] | None:
    d = c.section(raw, path, LOCATION_KEYS)
    bucket = c.get(d, path, "bucket", None, str)
    prefix = c.get(d, path, "prefix", "", str)
    if bucket is None or not bucket.strip():
        c.error(f"{path}.bucket", "required: the bucket name")
        return None
    if prefix.startswith("/"):
        c.error(f"{path}.prefix", f"a key prefix never starts with '/', got {prefix!r}")
        return None
    return bucket, prefix


def buckets_from_list(c: Checker, raw: Any, folder_names: set[str]) -> tuple[BucketConfig, ...]:
    """Given the raw ``buckets:`` list, return its entries (errors recorded in ``c``)."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        c.error("buckets", "expected a list of bucket entries")
        return ()

    if raw and missing_modules("boto3"):
        c.error("buckets", "needs boto3: install the s3 extra (pip install 'anonymizer[s3]')")
    out: list[BucketConfig] = []
    names: set[str] = set()
    sources: dict[tuple[str, str], str] = {}
    for i, item in enumerate(raw):
        path = f"buckets[{i}]"
        before = len(c.errors)
        d = c.section(item, path, BUCKET_KEYS)
        for key in ("name", "folder", "source", "sink"):
            if key not in d:
                c.error(f"{path}.{key}", "required key is missing")
        name = c.get(d, path, "name", None, str)
        if name is not None and name in names:
            c.error(f"{path}.name", f"{name!r} is used twice; names must be unique")
        folder = c.get(d, path, "folder", None, str)
        if folder is not None and folder not in folder_names:
            allowed = ", ".join(sorted(folder_names)) or "(none)"
            c.error(f"{path}.folder", f"{folder!r} is not a folder of this config; allowed: {allowed}")
        source = _location(c, d.get("source"), f"{path}.source") if "source" in d else None
        sink = _location(c, d.get("sink"), f"{path}.sink") if "sink" in d else None
        if source is not None and sink is not None and source[0] == sink[0]:
            a, b = source[1], sink[1]
            if a.startswith(b) or b.startswith(a):
                # The sink would be listed as new source objects and anonymized forever.
                c.error(f"{path}.sink", "source and sink prefixes of one bucket must not contain each other")
        if source is not None:
            if source in sources:
                c.error(f"{path}.source", f"the same bucket and prefix as {sources[source]}")
            sources[source] = path
        sse = c.section(d.get("sse"), f"{path}.sse", SSE_KEYS)
        sse_mode = c.get(sse, f"{path}.sse", "mode", None, str, choices=SSE_MODES)
        kms = c.get(sse, f"{path}.sse", "kms_key_id", None, str)
        if kms is not None and sse_mode != "aws:kms":
            c.error(f"{path}.sse.kms_key_id", "only with mode: aws:kms")
        dflt = BucketConfig("", "", "", "", "", "")
        entry: dict[str, Any] = {
            "retention": c.get(d, path, "retention", dflt.retention, str, choices=RETENTION),
            "endpoint_url": c.get(d, path, "endpoint_url", None, str),
            "region": c.get(d, path, "region", None, str),
            # Durations as everywhere (anonymizer.schema): 30, "30s", "5m", "2h", "1d".
            "poll_interval_s": c.get(
                d, path, "poll_interval_s", 30.0, float, convert=parse_duration, minimum=0.05, maximum=86400
            ),
            "settle_s": c.get(d, path, "settle_s", 60.0, float, convert=parse_duration, minimum=0, maximum=86400),
            # S3 refuses multipart parts under 5 MiB (except the last).
            "multipart_threshold_bytes": c.get(
                d, path, "multipart_threshold_bytes", dflt.multipart_threshold_bytes, int, minimum=5 * 1024**2
            ),
            "max_attempts": c.get(d, path, "max_attempts", dflt.max_attempts, int, minimum=1, maximum=100),
        }
        if len(c.errors) > before or None in (name, folder, source, sink):
            continue
        assert name is not None and folder is not None and source is not None and sink is not None
        names.add(name)
        out.append(
            BucketConfig(
                name=name,
                folder=folder,
                source_bucket=source[0],
                source_prefix=source[1],
                sink_bucket=sink[0],
                sink_prefix=sink[1],
                sse_mode=sse_mode,
                sse_kms_key_id=kms,
                **entry,
            )
        )
    return tuple(out)
