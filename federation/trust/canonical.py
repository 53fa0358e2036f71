"""Canonical JSON, the one byte form cityfed signs and hashes (manifests, receipts, audit
records and checkpoints): keys sorted, no whitespace, UTF-8, no NaN or Infinity. For the values
cityfed writes (strings, integers, booleans, null, lists, objects) it is RFC 8785 (JCS)."""

from __future__ import annotations

import json
from typing import Any


def canonical_json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def _refuse_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("an object has a duplicated key")
    return result


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def strict_loads(data: bytes) -> Any:
    """UTF-8 JSON, refusing duplicated object keys and NaN or Infinity. Raises ValueError
    (UnicodeDecodeError is one)."""
    return json.loads(data.decode("utf-8"), object_pairs_hook=_refuse_duplicate_keys,
                      parse_constant=_refuse_constant)
