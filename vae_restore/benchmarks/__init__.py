"""Measurements reported in docs/BENCHMARKS.md; each is reachable from `launch/benchmark.py`."""
