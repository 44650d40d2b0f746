"""Benchmarks of ``python -m scripts.bench <name>``; each module exposes ``run()``."""
