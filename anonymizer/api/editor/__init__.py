"""The review editor: a browser page served by ``anonymizer api`` under ``/review`` (docs/review.md)."""
