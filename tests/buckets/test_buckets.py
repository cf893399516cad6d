"""S3 source and sink against moto's real S3 server process: the daemon's bucket thread end to
end, and single buckets driven tick by tick for the faults (an upload cut off mid-way, a source
replaced while processed, a versioned bucket)."""

from __future__ import annotations

import hashlib
import os
from typing import Any

import daemon_helpers as dh
import pytest
from s3_helpers import Stack

PHOTOS = [p.read_bytes() for p in dh.FACE_SAMPLES]
pytestmark = pytest.mark.skipif(len(PHOTOS) < 2, reason="sample photos are missing")
KEY = "in/camera 7/Jane Doe 2024-06-01.jpg"  # a name that is personal data: never in a log


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def keys(stack: Stack, bucket: str) -> list[str]:
    return [o["Key"] for o in stack.s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


def drive(sync: Any, until: Any, what: str, timeout_s: float = 60) -> Any:
    """Tick ``sync`` until ``until()`` is truthy."""

    def step() -> Any:
        sync.tick()
        return until()

    return dh.wait_for(step, timeout_s, what, interval_s=0.1)


def state_of(sync: Any) -> Any:
    """The object state of KEY (in progress or settled), or None."""
    return sync.load(sync.key_hmac(KEY))


def stage_of(sync: Any) -> str | None:
    state = state_of(sync)
    return None if state is None else state.stage


def test_the_daemon_anonymizes_an_object_into_the_sink_and_only_then_deletes_the_source(stack: Stack) -> None:
    stack.s3.put_object(Bucket="auto-src", Key=KEY, Body=PHOTOS[0])
    dh.wait_for(lambda: keys(stack, "auto-sink"), 60, "the anonymized object in the sink")
    sink_key = "anon/camera 7/Jane Doe 2024-06-01.jpg"
    assert keys(stack, "auto-sink") == [sink_key]
    obj = stack.s3.get_object(Bucket="auto-sink", Key=sink_key)
    body = obj["Body"].read()
    assert obj["Metadata"]["anonymizer-input-sha256"] == sha(PHOTOS[0])
    assert obj["Metadata"]["anonymizer-output-sha256"] == sha(body)
    assert body != PHOTOS[0] and body[:2] == b"\xff\xd8"
    dh.wait_for(lambda: not keys(stack, "auto-src"), 30, "retention to delete the source object")

    audit = dh.audit_lines(stack.root / "audit")
    upload = [a for a in audit if a.get("event") == "bucket.upload" and a["bucket"] == "auto"]
    retention = [a for a in audit if a.get("event") == "bucket.retention" and a["bucket"] == "auto"]
    assert len(upload) == 1 and upload[0]["output"]["sha256"] == sha(body)
    assert [r["action"] for r in retention] == ["deleted"]
    assert audit.index(upload[0]) < audit.index(retention[0])  # deleted only after the upload was verified
    job = [a for a in audit if a.get("event") == "job" and a["job_id"] == upload[0]["job_id"]]
    assert job and job[0]["outcome"] == "anonymized"  # the daemon's own job line, as for any folder
    # The closing log line says what became of the source (issue 25: "action": null).
    done = dh.wait_for(
        lambda: [e for e in stack.daemon.events() if e.get("event") == "bucket.done"], 60, "the bucket.done line"
    )
    assert [e["action"] for e in done] == ["deleted"]


def test_an_upload_cut_off_midway_is_retried_and_the_source_stays_until_it_succeeds(stack: Stack) -> None:
    sync = stack.sync("cut")
    stack.s3.put_object(Bucket="cut-src", Key=KEY, Body=PHOTOS[1])
    stack.proxy.cut_puts_to = "cut-sink"
    try:
        drive(sync, lambda: state_of(sync) and state_of(sync).attempts >= 2, "two failed upload attempts")
    finally:
        stack.proxy.cut_puts_to = None
    assert stack.proxy.cuts >= 2
    state = state_of(sync)
    assert state.stage == "processing" and state.error
    assert keys(stack, "cut-src") == [KEY]  # nothing deleted while the output is not in the sink
    assert keys(stack, "cut-sink") == []  # and no partial object either
    drive(sync, lambda: stage_of(sync) == "done", "the retried upload", timeout_s=30)
    assert keys(stack, "cut-sink") == ["anon/camera 7/Jane Doe 2024-06-01.jpg"]
    assert keys(stack, "cut-src") == []
    assert sync.states() == [] and state_of(sync).key is None  # the key is forgotten once the object is settled


def test_a_source_replaced_while_processed_is_neither_uploaded_nor_deleted_for_the_old_version(stack: Stack) -> None:
    sync = stack.sync("replace")
    stack.s3.put_object(Bucket="replace-src", Key=KEY, Body=PHOTOS[0])
    drive(sync, lambda: stage_of(sync) == "processing", "the download of the first version")
    first = state_of(sync)
    new_photo = PHOTOS[1]
    stack.s3.put_object(Bucket="replace-src", Key=KEY, Body=new_photo)  # replaced before the upload

    def old_job_finished() -> bool:
        job = sync.inbox.journal.get(first.journal_id)
        return job is not None and job.state in ("done", "retired")

    dh.wait_for(old_job_finished, 60, "the daemon to finish the first version's job")
    drive(sync, lambda: stage_of(sync) == "done", "the second version to be processed")
    audit = dh.audit_lines(stack.root / "audit")
    uploads = [a for a in audit if a.get("event") == "bucket.upload" and a["bucket"] == "replace"]
    assert [u["input"]["sha256"] for u in uploads] == [sha(new_photo)]  # the old version was never uploaded
    obj = stack.s3.head_object(Bucket="replace-sink", Key="anon/camera 7/Jane Doe 2024-06-01.jpg")
    assert obj["Metadata"]["anonymizer-input-sha256"] == sha(new_photo)
    assert keys(stack, "replace-src") == []  # deleted after the new version's output was verified


def test_a_versioned_bucket_loses_exactly_the_processed_version(stack: Stack) -> None:
    sync = stack.sync("versioned")
    put = stack.s3.put_object(Bucket="versioned-src", Key=KEY, Body=PHOTOS[0])
    drive(sync, lambda: stage_of(sync) == "done", "the versioned object to be processed")
    assert state_of(sync).version_id == put["VersionId"]
    versions = stack.s3.list_object_versions(Bucket="versioned-src")
    assert not versions.get("Versions") and not versions.get("DeleteMarkers")  # gone, not hidden
    head = stack.s3.head_object(Bucket="versioned-sink", Key="anon/camera 7/Jane Doe 2024-06-01.jpg")
    assert head["ServerSideEncryption"] == "AES256"
    # The local scratch copies are gone too: the source by the folder's retention, the output
    # once the sink held it verified.
    scratch = stack.root / "s3-scratch"
    assert not [p for p in (scratch / "in" / "s3" / "versioned").rglob("*") if p.is_file()]
    assert not [p for p in (scratch / "out" / "s3" / "versioned").rglob("*") if p.is_file()]


def test_an_object_that_is_no_photo_is_quarantined_and_its_source_kept(stack: Stack) -> None:
    sync = stack.sync("junk")
    stack.s3.put_object(Bucket="junk-src", Key=KEY, Body=b"%PDF-1.7 not a photo at all\n" * 50)
    drive(sync, lambda: stage_of(sync) == "failed", "the daemon to refuse the object")
    assert "not" in (state_of(sync).error or "")  # the daemon's reason, e.g. "... not a photo or video"
    assert keys(stack, "junk-src") == [KEY]  # bad input is never deleted
    assert keys(stack, "junk-sink") == []
    quarantined = [p for p in (stack.root / "s3-scratch" / "quarantine").rglob("*") if p.is_file()]
    assert any(p.name.endswith(".reason.json") for p in quarantined)
    for _ in range(3):  # the same version is not downloaded again
        sync.tick()
    assert stage_of(sync) == "failed"


def test_a_large_output_goes_up_in_parts_and_is_verified(stack: Stack, tmp_path) -> None:
    from anonymizer.buckets.sync import TransientError, make_client, upload_verified
    from anonymizer.store.inbox import Output

    sync = stack.sync("replace")
    data = os.urandom(6 * 1024**2)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    out = Output(path, sha(data), len(data))
    client = make_client(sync.bucket)
    upload_verified(client, sync.bucket, out, "anon/big.bin", {"anonymizer-input-sha256": "x"})
    head = stack.s3.head_object(Bucket="replace-sink", Key="anon/big.bin")
    assert "-" in head["ETag"]  # a multipart ETag (threshold 5 MiB)
    # A single-part upload is checked against the SHA-256 S3 computed of what it stored.
    small = tmp_path / "small.bin"
    small.write_bytes(data[:1000])
    upload_verified(client, sync.bucket, Output(small, sha(data[:1000]), 1000), "anon/small.bin", {})
    with pytest.raises(TransientError):
        upload_verified(client, sync.bucket, Output(small, sha(b"something else"), 1000), "anon/small2.bin", {})


def test_no_object_key_or_credential_in_any_log(stack: Stack) -> None:
    logs = stack.logs()
    assert "bucket.uploaded" in logs  # the scan below read real logs
    for needle in ("Jane Doe", "Jane", "camera 7", "2024-06-01", "testing-secret-never-logged", "big.bin"):
        assert needle not in logs, needle
    audit = (stack.root / "audit" / "audit.jsonl").read_text()
    assert "Jane" not in audit and "camera 7" not in audit
