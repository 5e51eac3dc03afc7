"""Benchmarks: our figures side by side with the simplest baseline, printed as one table."""
