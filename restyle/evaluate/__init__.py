"""Evaluation: benchmarks (speed and memory), quality metrics and, later, comparison sheets."""
