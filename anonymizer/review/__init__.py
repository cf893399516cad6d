"""The operator's loop: sidecar files (manual regions, exclusions), the review hold, QA reports."""
