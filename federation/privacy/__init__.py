"""Differential privacy: the noise, private group release, padding, and how accurate a released
answer is."""
