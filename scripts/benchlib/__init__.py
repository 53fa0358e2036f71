"""Building blocks of `scripts/bench.py`: data preparation, measurements, report."""
