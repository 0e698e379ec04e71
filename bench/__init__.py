"""Benchmarks: `python -m bench [engine|stream|all]` prints figures measured side by side."""
