"""Measurements reported in docs/BENCHMARKS.md; each module is a library function behind a thin `launch/` script."""
