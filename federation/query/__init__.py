"""The query language: the standard datasets, SQL in cityfed's subset, checked plans, their
compilation to DuckDB, and the exact merge of the cities' partial answers."""
