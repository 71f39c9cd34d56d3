"""Evaluation: metrics, supervised baselines, probe / fine-tune heads, and the benchmark
protocol."""
