"""A seeded, reproducible synthetic region: five Beijing–Tianjin–Hebei cities as DuckDB files."""

from federation.synthetic.generate import CITIES, RegionScale, generate_region

__all__ = ["CITIES", "RegionScale", "generate_region"]
