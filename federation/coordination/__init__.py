"""Asking the region: one plan to every city at once, every city's outcome reported."""
