"""Maintenance scripts; run each as ``python scripts/NAME.py`` (also importable, e.g. by the
benchmarks)."""
