"""Experiment-tracking helpers."""
