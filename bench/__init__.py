"""Benchmarks of the dispatch service (see bench/README.md); not part of the package."""
