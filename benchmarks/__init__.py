"""Measurements reported in docs/BENCHMARKS.md; each module is a library function behind a thin `launch/` script.

Not part of the installed package: it uses `vae_restore` as any user would, from a clone of the repository.
"""
