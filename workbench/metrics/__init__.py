"""Measurements usable from nopython code: a monotonic clock and HDR-style histograms."""
