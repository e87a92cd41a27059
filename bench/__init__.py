"""berth's latency benchmarks: berth next to the raw container engine, measured in one run.

Run with `.venv/bin/python -m bench` (see `bench/README.md`).
"""
