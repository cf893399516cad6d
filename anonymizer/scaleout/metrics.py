"""Prometheus metrics of one ``anonymizer worker`` (``metrics: HOST:PORT`` in its config).

The same library and habits as the daemon's (``anonymizer.daemon.metrics``): prometheus-client,
an own registry, no default collectors. Served by the worker's main process, which learns what
its pool processes do from their events (``anonymizer.scaleout.heartbeat``). Labels carry job ids,
outcomes and the device, never a file name.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from anonymizer.jobs.durations import JOB_SECONDS_BUCKETS  # the daemon's job histogram's, for one dashboard


class WorkerMetrics:
    """All worker metrics; names are listed in docs/scale-out.md."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.jobs = Counter(
            "anonymizer_worker_jobs_total",
            "Jobs this worker ended, by outcome (done, failed, refused, poison, stale, lost, crashed)",
            ["outcome"],
            registry=r,
        )
        self.job_seconds = Histogram(
            "anonymizer_worker_job_duration_seconds", "Wall time per job on this worker", buckets=JOB_SECONDS_BUCKETS,
            registry=r,
        )  # fmt: skip
        self.running = Gauge("anonymizer_worker_jobs_running", "Jobs running on this worker now", registry=r)
        self.current = Gauge(
            "anonymizer_worker_current_job_started_timestamp_seconds",
            "UNIX time each job running on this worker started (one series per running job id)",
            ["job_id"],
            registry=r,
        )
        self.last_heartbeat = Gauge(
            "anonymizer_worker_last_heartbeat_timestamp_seconds",
            "UNIX time this worker last wrote its status record to Redis",
            registry=r,
        )
        self.worker_info = Gauge(
            "anonymizer_worker_info",
            "This worker's name, host and device (value 1)",
            ["name", "host", "device"],
            registry=r,
        )

    def serve(self, host: str, port: int) -> None:
        """Expose ``/metrics`` on host:port from a daemon thread."""
        start_http_server(port, addr=host, registry=self.registry)

    def info(self, state: Any) -> None:
        self.worker_info.clear()  # the device is known only once an engine ran
        self.worker_info.labels(state.name, state.host, state.device).set(1)

    def job_started(self, job_id: str, at: float, running: int) -> None:
        self.current.labels(job_id).set(at)
        self.running.set(running)

    def job_ended(self, job_id: str | None, outcome: str, seconds: float, running: int) -> None:
        self.jobs.labels(outcome).inc()
        self.job_seconds.observe(seconds)
        self.running.set(running)
        if job_id is not None:
            try:
                self.current.remove(job_id)
            except KeyError:  # its start was not seen (the reporter started after it)
                pass

    def heartbeat(self, at: float) -> None:
        self.last_heartbeat.set(at)
