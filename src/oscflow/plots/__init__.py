"""Figures people look at, saved as PNG (matplotlib, non-interactive Agg backend)."""
