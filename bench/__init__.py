"""Benchmarks: each prints PMAP's figures beside a bare baseline measured in the same run."""
