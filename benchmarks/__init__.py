"""Benchmark scripts (learning curves, the paper grid, throughput); `python -m benchmarks.<name>`
runs one from the repo root, and the tests import them as this package."""
