"""Benchmarks for the lab (scripts that print figures, not tests). See ``bench/README.md``."""
