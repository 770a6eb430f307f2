"""Measurements that the docs quote; each module is a library function behind a thin `launch/` script."""
