"""Benchmarks of the orchestrator: added latency, recall scaling, concurrency and footprint."""
