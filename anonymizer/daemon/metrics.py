"""Prometheus metrics for the daemon (prometheus-client, own registry, no default collectors)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from anonymizer.jobs.durations import JOB_SECONDS_BUCKETS  # shared with the workers' metrics


@dataclass
class Metrics:
    """All daemon metrics; names are documented in docs/daemon.md."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.queue_depth = Gauge("anonymizer_queue_depth", "Jobs queued or running", ["folder"], registry=r)
        self.jobs = Counter("anonymizer_jobs_total", "Finished jobs by outcome", ["folder", "outcome"], registry=r)
        self.failures = Counter(
            "anonymizer_failures_total", "Failed attempts by kind (media, io, job)", ["folder", "kind"], registry=r
        )
        self.footage_seconds = Counter(
            "anonymizer_footage_seconds_total", "Seconds of video anonymized", ["folder"], registry=r
        )
        self.frames = Counter("anonymizer_frames_total", "Frames (and photos) anonymized", ["folder"], registry=r)
        self.job_seconds = Histogram(
            "anonymizer_job_duration_seconds", "Wall time per job", ["folder"], buckets=JOB_SECONDS_BUCKETS, registry=r
        )
        self.last_success = Gauge(
            "anonymizer_last_success_timestamp_seconds", "UNIX time of the last successful job", registry=r
        )
        # What retention did to sources: kept, deleted, moved, source-gone, source-changed.
        self.retention = Counter(
            "anonymizer_retention_actions_total", "Retention applied to sources, by action", ["folder", "action"], registry=r
        )
        self.retention_failures = Counter(
            "anonymizer_retention_failures_total",
            "Failed retention tries (the recorded output missing, the filesystem refusing)",
            ["folder"],
            registry=r,
        )
        self.sources_held = Gauge(
            "anonymizer_sources_held",
            "Sources left in place for good because their retention failed retry.max_attempts times",
            ["folder"],
            registry=r,
        )
        # The review hold (profile review: required): outputs waiting for a decision.
        self.review_waiting = Gauge(
            "anonymizer_review_waiting", "Outputs held for review, waiting for a decision", ["folder"], registry=r
        )
        self.review_oldest_waiting_s = Gauge(
            "anonymizer_review_oldest_waiting_seconds", "Age of the oldest output waiting for review", registry=r
        )
        self.ready = Gauge("anonymizer_ready", "1 once the engine is warm and the daemon serves", registry=r)
        # The running job's progress (the daemon's own; a broker's workers report to `status`),
        # one series for its current stage: frames (or passes, MiB...) done of total, and an ETA.
        self.job_done = Gauge(
            "anonymizer_job_progress_done", "Running job: items done in its stage", ["folder", "stage"], registry=r
        )
        self.job_total = Gauge(
            "anonymizer_job_progress_total", "Running job: items in its stage", ["folder", "stage"], registry=r
        )
        self.job_eta = Gauge(
            "anonymizer_job_stage_eta_seconds",
            "Running job: seconds left in its stage (absent until a rate is known)",
            ["folder", "stage"],
            registry=r,
        )
        self.last_progress = Gauge(
            "anonymizer_last_progress_timestamp_seconds",
            "UNIX time the worker last proved progress (its job advanced, or its loop turned)",
            registry=r,
        )

    def serve(self, host: str, port: int) -> None:
        """Expose ``/metrics`` on host:port from a daemon thread."""
        start_http_server(port, addr=host, registry=self.registry)

    def record_success(self, folder: str, outcome: str, seconds: float, summary: dict) -> None:
        self.jobs.labels(folder, outcome).inc()
        self.job_seconds.labels(folder).observe(seconds)
        self.frames.labels(folder).inc(int(summary.get("frames") or (1 if summary.get("kind") == "image" else 0)))
        if summary.get("kind") == "video" and summary.get("duration_s"):
            self.footage_seconds.labels(folder).inc(float(summary["duration_s"]))
        self.last_success.set(time.time())

    def record_progress(self, folder: str, stage: str, done: int, total: int, eta_s: float | None) -> None:
        """The running job's progress in ``stage`` (called on every report)."""
        self.job_done.labels(folder, stage).set(done)
        self.job_total.labels(folder, stage).set(total)
        if eta_s is not None:
            self.job_eta.labels(folder, stage).set(eta_s)

    def clear_progress(self) -> None:
        """No job or a new stage: drop the previous stage's series."""
        for gauge in (self.job_done, self.job_total, self.job_eta):
            gauge.clear()
