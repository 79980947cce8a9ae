"""Playhouse benchmarks: run with ``python -m bench [scenario ...] [--quick]``."""
