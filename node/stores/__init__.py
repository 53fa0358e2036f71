"""The engines a node answers from, behind one interface (`Store`), opened by `open_store`:
the embedded DuckDB file (the default) or the city's own Spark (`store = "spark"`)."""

from __future__ import annotations

from node.config import NodeConfig
from node.stores.base import OnCancel, Store
from node.stores.duckdb import DuckDBStore

__all__ = ["DuckDBStore", "OnCancel", "Store", "open_store"]


def open_store(config: NodeConfig) -> Store:
    """The store a node's config names."""
    if config.store == "spark":
        from node.stores.spark import SparkStore  # pyspark is an extra: imported only here

        return SparkStore.open(config)
    return DuckDBStore(config.database, memory_limit=config.memory_limit,
                       threads=config.threads, max_result_groups=config.max_result_groups)
