"""One S3 source prefix anonymized into a sink: list, settle, download, process, upload, verify,
and only then retire the source object.

Each ``tick()``::

    list source/prefix ─▶ settled? (same ETag and size over two listings, settle_s apart)
      ─▶ GET (If-Match the settled ETag) into the daemon folder's input, hashed on the way,
         under a name made of the content hash (never the object key)
      ─▶ journal offer: the daemon's worker anonymizes, verifies, publishes and audits it
    journal job done ─▶ source still that version? (HEAD: ETag, version id) ─▶ PUT the verified
      output to sink/prefix with input/output SHA-256 in its metadata (multipart when large)
      ─▶ HEAD the sink object: size and SHA-256 metadata match ─▶ audit ─▶ retention: delete
         the source object (its exact version in a versioned bucket) or keep it

A source replaced while it was processed is "superseded": nothing is uploaded or deleted for the
old version, and the new version settles and runs on its own. A failed upload or delete is
retried with backoff (the source stays) and held after ``max_attempts``.

Per-object state is a small JSON file in ``state_dir/buckets/<name>/`` (``objects.py``), named by
the HMAC of the key. It holds the key only while the object is being handled (to upload and retire
it); once settled it keeps the HMAC, ETag and outcome, so a kept source is not processed twice.
Logs and audit name objects by that HMAC, never by key. Credentials come from boto3's standard
chain and are never read by this code.
"""

from __future__ import annotations

import base64
import time
from dataclasses import replace
from pathlib import PurePosixPath
from typing import Any

from anonymizer.audit.records import utc_iso
from anonymizer.buckets.objects import ACTIVE, ObjectState, ObjectStates
from anonymizer.errors import MediaError
from anonymizer.fsutil import is_ignored_name, make_private_dir
from anonymizer.jobs.backoff import backoff_s
from anonymizer.jobs.run import output_name
from anonymizer.jobs.settle import Settling
from anonymizer.media.sniff import sniff
from anonymizer.settings.buckets import BucketConfig
from anonymizer.store.inbox import FINISHED, OUTPUT_OUTCOMES, Inbox, Output, Staged

META_INPUT = "anonymizer-input-sha256"
META_OUTPUT = "anonymizer-output-sha256"
META_JOB = "anonymizer-job-id"
CHUNK = 1 << 20


class TransientError(Exception):
    """A step that may succeed later (S3 or disk refused); retried with backoff."""


def make_client(bucket: BucketConfig) -> Any:
    """An S3 client for ``bucket`` (credentials: boto3's standard chain)."""
    import boto3
    from botocore.config import Config

    config = Config(
        retries={"max_attempts": 3, "mode": "standard"},
        connect_timeout=10,
        read_timeout=60,
        s3={"addressing_style": "path"} if bucket.endpoint_url else {},
    )
    return boto3.session.Session().client(
        "s3", endpoint_url=bucket.endpoint_url, region_name=bucket.region, config=config
    )


def upload_verified(client: Any, bucket: BucketConfig, output: Output, key: str, metadata: dict[str, str]) -> None:
    """Upload ``output`` to ``key`` in the sink (multipart above the threshold), then check it.

    Raise TransientError unless a HEAD of the new object shows the output's size and SHA-256.
    """
    from boto3.s3.transfer import TransferConfig

    # ChecksumAlgorithm: S3 hashes what it received and refuses a body that does not match what
    # boto3 sent; the HEAD below then compares S3's own SHA-256 with the verified output's.
    extra: dict[str, Any] = {
        "Metadata": {**metadata, META_OUTPUT: output.sha256},
        "ChecksumAlgorithm": "SHA256",
        **bucket.upload_args(),
    }
    transfer = TransferConfig(
        multipart_threshold=bucket.multipart_threshold_bytes,
        # 10,000 parts at most (S3): half the threshold allows outputs of 5,000 thresholds.
        multipart_chunksize=max(5 * 1024**2, bucket.multipart_threshold_bytes // 2),
        use_threads=False,
    )
    client.upload_file(str(output.path), bucket.sink_bucket, key, ExtraArgs=extra, Config=transfer)
    head = client.head_object(Bucket=bucket.sink_bucket, Key=key, ChecksumMode="ENABLED")
    if head.get("ContentLength") != output.size or head.get("Metadata", {}).get(META_OUTPUT) != output.sha256:
        raise TransientError("the sink object does not show the output's size and SHA-256")
    stored = head.get("ChecksumSHA256")
    # A multipart object's checksum is one of its parts' checksums (S3 checked each part as it
    # arrived): size and metadata are what can be compared there. A single-part object's is the
    # SHA-256 of its bytes.
    single_part = output.size < bucket.multipart_threshold_bytes
    if single_part and stored and base64.b64decode(stored).hex() != output.sha256:
        raise TransientError("the sink object's SHA-256 (computed by S3) is not the output's")


class BucketSync:
    """Moves one ``BucketConfig``'s objects through its daemon folder. Not thread-safe: one thread."""

    def __init__(self, bucket: BucketConfig, inbox: Inbox, log: Any, *, client: Any = None, clock=time.time) -> None:
        self.bucket = bucket
        self.inbox = inbox
        self.folder = inbox.folder(bucket.folder)
        self.log = log.bind(bucket=bucket.name)
        self.client = client or make_client(bucket)
        self.clock = clock
        self.state_dir = make_private_dir(inbox.cfg.state_dir / "buckets" / bucket.name)
        self.objects = ObjectStates(self.state_dir)
        # key -> (ETag, size) across listings: the daemon scanner's settling rule (anonymizer.jobs.settle).
        self._settling: Settling[str, tuple[str, int]] = Settling(bucket.settle_s)
        self._known: dict[str, str] = {}  # key -> ETag of the version already handled (saves a file read)
        removed = inbox.remove_partials(self.folder.input / "s3" / bucket.name)
        if removed:
            self.log.warning("bucket.partial_downloads_removed", count=removed)

    # ------------------------------------------------------------------ state files

    def load(self, key_hmac: str) -> ObjectState | None:
        return self.objects.load(key_hmac)

    def states(self) -> list[ObjectState]:
        """Every object in progress (stage ``processing``)."""
        return self.objects.active()

    def key_hmac(self, key: str) -> str:
        return self.inbox.name_hmac(f"s3:{self.bucket.source_bucket}", key)

    # ------------------------------------------------------------------ one round

    def tick(self) -> None:
        """List once, start settled objects, advance every object in progress."""
        for key, etag, size in self._list():
            if self._settled(key, etag, size):
                self._maybe_start(key, etag, size)
        now = self.clock()
        for state in self.states():
            if state.stage in ACTIVE and state.next_try_at <= now:
                self._advance(state)

    def _list(self) -> list[tuple[str, str, int]]:
        found = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket.source_bucket, Prefix=self.bucket.source_prefix):
            for obj in page.get("Contents", []):
                key = obj["Key"]
                name = PurePosixPath(key).name
                if key.endswith("/") or not name or is_ignored_name(name):
                    continue  # folder markers, and names writers use while incomplete
                found.append((key, obj["ETag"], int(obj["Size"])))
        keys = {k for k, _, _ in found}
        self._settling.keep_only(keys)
        for gone in set(self._known) - keys:
            del self._known[gone]
        return found

    def _settled(self, key: str, etag: str, size: int) -> bool:
        now = time.monotonic()
        return self._settling.settled(self._settling.look(key, (etag, size), now), now)

    def _maybe_start(self, key: str, etag: str, size: int) -> None:
        if self._known.get(key) == etag:
            return
        key_hmac = self.key_hmac(key)
        state = self.load(key_hmac)
        if state is not None and state.etag == etag:
            self._known[key] = etag
            return  # this version is handled (or being handled) already
        if state is not None and state.stage in ACTIVE:
            self._supersede(state, "the source object was replaced before its output was uploaded")
        try:
            self._download(key, etag, size, key_hmac)
        except TransientError as exc:
            self._settling.forget(key)  # settle again before the next try
            self.log.warning("bucket.download_failed", object=key_hmac[:16], reason=str(exc))

    # ------------------------------------------------------------------ steps

    def _download(self, key: str, etag: str, size: int, key_hmac: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError


        staged = Staged(self.folder.input / "s3" / self.bucket.name)
        try:
            # If-Match: what is downloaded is the version that settled, or nothing.
            resp = self.client.get_object(Bucket=self.bucket.source_bucket, Key=key, IfMatch=etag)
            body = resp["Body"]
            while chunk := body.read(CHUNK):
                staged.write(chunk)
            sha = staged.finish()
            if staged.size != size:
                raise TransientError("the object's size changed during the download")
            try:
                suffix = sniff(staged.path).suffix
            except (MediaError, OSError):
                suffix = ".bin"  # the daemon quarantines it with its reason; the source stays
            rel_path = f"s3/{self.bucket.name}/{sha}{suffix}"
            journal_id = self.inbox.place(self.folder, staged, rel_path)
        except (ClientError, BotoCoreError, OSError) as exc:
            raise TransientError(_reason(exc)) from None
        finally:
            staged.discard()
        state = ObjectState(
            key_hmac=key_hmac,
            etag=etag,
            size=size,
            stage="processing",
            key=key,
            version_id=resp.get("VersionId"),
            rel_path=rel_path,
            journal_id=journal_id,
            input_sha256=sha,
        )
        self.objects.save(state)
        self.log.info("bucket.downloaded", object=key_hmac[:16], job_id=journal_id, sha256=sha, size=size)

    def _advance(self, state: ObjectState) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        job = self.inbox.job(state.journal_id or "")
        if job is None:
            return self._finish(state, "failed", "the journal has no job for the object")
        if job.state in ("queued", "running", "review"):  # review: held until a reviewer decides
            return None
        if state.uploaded:
            return self._drop_local_output(state, job)
        if job.state not in FINISHED or job.outcome not in OUTPUT_OUTCOMES:
            # Quarantined (bad media, retries exhausted) or vanished: the daemon said why; the
            # source stays in the bucket.
            return self._finish(state, "failed", job.error or job.outcome or job.state)
        try:
            output = self.inbox.find_output(self.folder, job, state.rel_path or "")
            if output is None:
                raise TransientError("the output is not in place with its recorded SHA-256")
            if not self._source_unchanged(state):
                return self._supersede(state, "the source object was replaced while it was processed")
            sink_key = self._sink_key(state.key or "", output)
            upload_verified(
                self.client,
                self.bucket,
                output,
                sink_key,
                {META_INPUT: state.input_sha256 or "", META_JOB: job.id},
            )
            self._audit("bucket.upload", state, job_id=job.id, output={"sha256": output.sha256, "size": output.size})
            self.log.info("bucket.uploaded", object=state.key_hmac[:16], job_id=job.id, output_sha256=output.sha256)
            action = "kept"
            if self.bucket.retention == "delete":
                if not self._source_unchanged(state):
                    action = "source-changed"  # replaced since: new evidence, not ours to delete
                else:
                    args: dict[str, Any] = {"Bucket": self.bucket.source_bucket, "Key": state.key}
                    if state.version_id:
                        args["VersionId"] = state.version_id  # this version only, not a delete marker
                    self.client.delete_object(**args)
                    action = "deleted"
            self._audit("bucket.retention", state, action=action)
            # The key is no longer needed; the local copy of the output goes once the daemon has
            # retired the local source (its retention checks that output is still in place).
            state = replace(state, uploaded=True, key=None, attempts=0, error=None, source_action=action)
            self.objects.save(state)
            return self._drop_local_output(state, job)
        except (TransientError, ClientError, BotoCoreError, OSError) as exc:
            return self._retry(state, _reason(exc))

    def _drop_local_output(self, state: ObjectState, job: Any) -> None:
        """Once the journal has retired the local job, remove its local output: the sink has it."""
        if job.state != "retired":
            return None  # retention of the local copy still due (or held: ``anonymizer status``)
        output = self.inbox.find_output(self.folder, job, state.rel_path or "")
        if output is not None:
            output.path.unlink(missing_ok=True)
        return self._finish(state, "done", None)

    def _source_unchanged(self, state: ObjectState) -> bool:
        """True while the source key still holds the version that was downloaded."""
        from botocore.exceptions import ClientError

        try:
            head = self.client.head_object(Bucket=self.bucket.source_bucket, Key=state.key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return head.get("ETag") == state.etag and (
            state.version_id is None or head.get("VersionId") == state.version_id
        )

    def _sink_key(self, key: str, output: Output) -> str:
        rel = key[len(self.bucket.source_prefix) :]
        # The engine's rule (anonymizer.jobs.run.output_name): the name tells the output's format.
        return self.bucket.sink_prefix + output_name(rel, (output.path.suffix.lower(),), output.path.suffix)

    def _retry(self, state: ObjectState, reason: str) -> None:
        attempts = state.attempts + 1
        if attempts >= self.bucket.max_attempts:
            self.objects.save(replace(state, attempts=attempts, error=reason, stage="held"))
            self.log.error("bucket.held", object=state.key_hmac[:16], reason=reason, source="left in place")
            return
        # The daemon's retry delay, from one poll interval doubling per attempt, at most an hour.
        delay = backoff_s(attempts + 1, self.bucket.poll_interval_s, 3600.0)
        self.objects.save(replace(state, attempts=attempts, error=reason, next_try_at=self.clock() + delay))
        self.log.warning("bucket.retry", object=state.key_hmac[:16], reason=reason, attempt=attempts)

    def _supersede(self, state: ObjectState, reason: str) -> None:
        self._finish(state, "superseded", reason)

    def _finish(self, state: ObjectState, stage: str, reason: str | None, *, action: str | None = None) -> None:
        # The key is forgotten: the state keeps its HMAC and ETag, which is all a kept source needs.
        self.objects.save(replace(state, stage=stage, error=reason, key=None))
        if action is not None:
            self._audit("bucket.retention", state, action=action)
        log = self.log.warning if stage in ("failed", "superseded") else self.log.info
        # 'done' comes after the local copy is retired, long after the source's retention ran
        # at upload: the action recorded then (issue 25 found "action": null on a deleted source).
        action = action if action is not None else state.source_action
        log(f"bucket.{stage}", object=state.key_hmac[:16], job_id=state.journal_id, reason=reason, action=action)

    def _audit(self, event: str, state: ObjectState, **fields: Any) -> None:
        self.inbox.audit(
            {
                "event": event,
                "time": utc_iso(self.clock()),
                "bucket": self.bucket.name,
                "object_hmac": state.key_hmac,
                "etag": state.etag,
                "version_id": state.version_id,
                "job_id": state.journal_id,
                "input": {"sha256": state.input_sha256, "size": state.size},
                **fields,
            }
        )


def _reason(exc: BaseException) -> str:
    """A one-line reason naming no key, bucket path or file (S3 error codes, OS error strings)."""
    from botocore.exceptions import ClientError

    if isinstance(exc, ClientError):
        return f"S3 {exc.response.get('Error', {}).get('Code', 'error')}"
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    if isinstance(exc, TransientError):
        return str(exc)
    return type(exc).__name__
