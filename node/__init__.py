"""One city's node: its gRPC server, its DuckDB store and the local admin interface."""

__version__ = "0.1.0"
