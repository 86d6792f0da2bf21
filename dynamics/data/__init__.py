"""Datasets shipped with dynamics."""
