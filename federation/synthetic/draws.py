"""Building blocks for deterministic, vectorised SQL: hashed uniforms and weighted lookups.

Every random draw is `uni(salt, a, b)`, a hash of (seed, salt, a, b) mapped to [0, 1), so a
value depends only on the seed and on which row and attribute it is for, never on thread
scheduling or on what else was generated. DuckDB combines the hashes of several arguments
almost linearly (draws for two salts correlate at about 0.8), so the combined hash is hashed
once more to decorrelate them.

Weighted choices go through a quantised inverse CDF bound as a list parameter,
`list_extract(cdf, 1 + floor(u * BUCKETS))`: O(1) per row, with no join.
"""

from __future__ import annotations

import functools
import math
import zlib
from collections.abc import Sequence

import duckdb

BUCKETS = 4_096  # items with less than about 1/8192 of the total weight may never be drawn
FINE_BUCKETS = 16_384  # for the age pyramid, whose oldest band is rare


def create_macros(con: duckdb.DuckDBPyConnection, seed: int) -> None:
    con.execute(f"""
        CREATE OR REPLACE TEMP MACRO uni(s, a, b) AS
            (hash(hash({int(seed)}::BIGINT, s::BIGINT, a::BIGINT, b::BIGINT)) >> 11)
            * (1.0 / 9007199254740992.0);
        CREATE OR REPLACE TEMP MACRO gauss(s, a, b) AS
            sqrt(-2.0 * ln(1.0 - uni(s, a, b))) * cos(2.0 * pi() * uni(s + 7919, a, b));
        CREATE OR REPLACE TEMP MACRO years_between(b, d) AS
            year(d) - year(b)
            - CASE WHEN month(d) * 100 + day(d) < month(b) * 100 + day(b) THEN 1 ELSE 0 END;
        CREATE OR REPLACE TEMP MACRO add_years(d, n) AS
            CAST(d + to_years(CAST(n AS INTEGER)) AS DATE);
        CREATE OR REPLACE TEMP MACRO paid_before(d, pd) AS
            CASE WHEN day(d) >= pd THEN make_date(year(d), month(d), pd)
                 ELSE CAST(make_date(year(d), month(d), pd) - INTERVAL 1 MONTH AS DATE) END;
    """)


def salt(name: str) -> int:
    return zlib.crc32(name.encode()) & 0x7FFF_FFFF


def u(name: str, a: str, b: str) -> str:
    return f"uni({salt(name)}, {a}, {b})"


def gauss(name: str, a: str, b: str) -> str:
    return f"gauss({salt(name)}, {a}, {b})"


@functools.lru_cache(maxsize=512)
def _quantised(weights: tuple[float, ...], buckets: int) -> tuple[int, ...]:
    total = float(sum(weights))
    if total <= 0:
        return (0,) * buckets
    cells: list[int] = []
    running = 0.0
    for index, weight in enumerate(weights):
        running += weight / total
        end = min(buckets, math.ceil(running * buckets - 0.5))
        cells += [index] * max(0, end - len(cells))
    cells += [len(weights) - 1] * (buckets - len(cells))
    return tuple(cells)


def quantise(weights: Sequence[float], buckets: int = BUCKETS) -> list[int]:
    """Bucket b holds the index of the item whose cumulative share covers (b + 0.5) / buckets."""
    return list(_quantised(tuple(float(w) for w in weights), buckets))


def _sql_type(value: object) -> str:
    if isinstance(value, list):
        return f"{_sql_type(value[0]) if value else 'INTEGER'}[]"
    if isinstance(value, bool):
        return "BOOLEAN"
    if isinstance(value, int):
        return "INTEGER"
    if isinstance(value, float):
        return "DOUBLE"
    return "VARCHAR"


class Statement:
    """One SQL statement's parameters: lookup lists are bound, not spliced into the text."""

    def __init__(self) -> None:
        self.params: dict[str, object] = {}

    def bind(self, value: list) -> str:
        name = f"p{len(self.params)}"
        self.params[name] = value
        return f"${name}::{_sql_type(value)}"

    def pick(self, index: str, values: Sequence) -> str:
        """values[index] for a 0-based index expression."""
        return f"list_extract({self.bind(list(values))}, 1 + ({index}))"

    def choose(self, draw: str, weights: Sequence[float], buckets: int = BUCKETS) -> str:
        """A 0-based item index drawn with the given weights, from a uniform draw."""
        return self.pick(f"CAST(floor({draw} * {buckets}) AS INTEGER)",
                         quantise(weights, buckets))

    def choose_in(self, group: str, draw: str, weight_rows: Sequence[Sequence[float]],
                  buckets: int = BUCKETS) -> str:
        """Like choose, with the weights of row `group` (a 0-based index expression)."""
        flat = [i for row in weight_rows for i in quantise(row, buckets)]
        return self.pick(f"({group}) * {buckets} + CAST(floor({draw} * {buckets}) AS INTEGER)",
                         flat)

    def run(self, con: duckdb.DuckDBPyConnection, sql: str) -> duckdb.DuckDBPyConnection:
        return con.execute(sql, self.params)
