"""Measure what the product hides: recall, precision, hidden share and collateral on labelled sets.

``labels`` reads a set (``labels.jsonl`` + images), ``metrics`` holds the pure definitions,
``runner`` drives the real engine over a set, ``report`` renders the figures, ``videos`` checks
recall over time on synthetic clips, ``commands`` adds ``anonymizer evaluate`` to the CLI.
"""
