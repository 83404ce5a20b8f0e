"""Evaluation: benchmarks (speed and memory) and, later, quality metrics and sheets."""
