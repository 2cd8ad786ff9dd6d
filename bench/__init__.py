"""Benchmark of the receiver and its realistic GenAI OTLP workload generator."""
