"""Histogram buckets for a job's wall time, shared by the daemon's and the workers' metrics so that
one dashboard reads both: up to the profile limit's 6 h maximum."""

from __future__ import annotations

JOB_SECONDS_BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600)
