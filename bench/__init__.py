"""Benchmarks that print figures: ``python bench/run.py`` (see README, Performance)."""
