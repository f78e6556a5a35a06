"""Benchmarks and stress runs: figures for every hot path, kept out of the test command.

`python -m benchmarks.run` (`make bench`, `make bench-quick`) discovers every `bench_*.py` module
here; each exposes `run(settings, *, quick) -> list[dict]` with rows
`{"benchmark", "figure", "value", "unit", "detail"}`. `python -m benchmarks.stress` (`make
stress`) runs the long versions of the reliability suite.
"""
