"""Vectorised sweeps (placeholder)."""
