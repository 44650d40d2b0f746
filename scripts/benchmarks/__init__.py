"""Benchmarks run by ``python -m scripts.bench <name>``; each module exposes ``run()``."""
