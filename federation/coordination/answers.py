"""A federated answer as strict JSON (what `cityfed query --json` prints and the console
serves), as CSV, each city's privacy budget as rows, and the check of a saved answer holding only
the manifest: each city's receipt against the plan and response bytes it covers (docs/audit.md,
"Receipts"), and that the cities' partials merge to the saved answer."""

from __future__ import annotations

import base64
import binascii
import csv
import datetime as dt
import io
import json
import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from cityfed.v1 import node_pb2, query_pb2
from google.protobuf.message import DecodeError

from federation.coordination.coordinator import FederatedAnswer
from federation.errors import CityfedError, InvalidArgument
from federation.query.finish import Table, finish
from federation.query.merge import merge_partials
from federation.query.values import FarDate, FarTimestamp
from federation.trust.manifest import Manifest
from federation.trust.receipts import Receipt, ReceiptInvalid, verify_receipt

# Strict JSON has no NaN or infinities: they are written as these strings (README, "For a
# regional authority").
_NON_FINITE = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return _NON_FINITE[str(value)]
    if isinstance(value, Decimal):
        return str(value)  # exact, as DuckDB holds it
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, FarDate | FarTimestamp):
        return str(value)  # as DuckDB writes it: '0044-03-15 (BC)', '12000-01-01', 'infinity'
    return value


def answer_to_json(answer: FederatedAnswer) -> dict[str, Any]:
    return _finite({
        "columns": answer.table.column_names,
        "column_types": list(answer.column_types),
        "rows": [[json_value(v) for v in row] for row in answer.table.rows],
        "complete": answer.complete,
        "private": answer.private,
        "accuracy": [
            {"noisy": a.noisy, "noise_stddev": a.noise_stddev,
             "half_widths_95": list(a.half_widths)}
            for a in answer.accuracy
        ],
        "cities": [
            {"city": o.city, "status": o.status.value, "code": o.code, "detail": o.detail,
             "groups": o.groups, "elapsed_ms": round(o.elapsed_ms, 3), "private": o.private,
             "epsilon_charged": o.epsilon_charged, "epsilon_remaining": o.epsilon_remaining,
             "noise": _noise_json(o.privacy) if o.privacy is not None else None,
             "receipt": json.loads(o.receipt.to_json()) if o.receipt else None,
             "response": _base64(o.response) if o.receipt else None}
            for o in answer.outcomes
        ],
        # What `cityfed receipt verify` checks the receipts and the merge against.
        "plan": _base64(answer.plan),
        "query": _base64(answer.query.SerializeToString()) if answer.query else None,
    })


def _base64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _finite(value: Any) -> Any:
    """`value` with every NaN and infinity in it, however deep, written as a string."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return json_value(value) if isinstance(value, float) else value


def _noise_json(report) -> dict[str, Any]:
    return {
        "delta_charged": report.delta, "max_rows_per_person": report.max_rows_per_person,
        "threshold": report.threshold,
        "aggregates": [{"count_scale": a.count_scale, "sum_scale": a.sum_scale,
                        "bounds": [a.lower_bound, a.upper_bound] if a.lower_bound else None}
                       for a in report.aggregates],
        "budget": {"purpose": report.budget.purpose, "period": report.budget.period,
                   "epsilon_limit": report.budget.epsilon_limit,
                   "epsilon_spent": report.budget.epsilon_spent,
                   "resets_at": report.budget.resets_at},
    }


def write_csv(table: Table, out: io.TextIOBase) -> None:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(table.column_names)
    for row in table.rows:
        writer.writerow(["" if v is None else json_value(v) for v in row])


@dataclass(frozen=True)
class Finding:
    subject: str  # a city's member id, or "merge"
    ok: bool
    text: str


def verify_saved_answer(saved: Any, manifest: Manifest) -> list[Finding]:
    """One finding per city, and one for the merge."""
    if not isinstance(saved, dict) or not isinstance(saved.get("cities"), list):
        raise InvalidArgument("not the output of cityfed query --json")
    if not isinstance(saved.get("plan"), str):
        raise InvalidArgument("the answer holds no plan bytes: it was saved by a cityfed "
                              "before receipts could be checked against what cities returned")
    plan_bytes = _bytes(saved["plan"], "plan")
    findings, partials = [], []
    for city in saved["cities"]:
        finding, response = _check_city(city, plan_bytes, manifest)
        findings.append(finding)
        if response is not None:
            partials.append(response.groups)
    findings.append(_check_merge(saved, plan_bytes, partials))
    return findings


def _check_city(city: Any, plan_bytes: bytes, manifest: Manifest
                ) -> tuple[Finding, node_pb2.AggregateResponse | None]:
    name = str(city.get("city", "?"))[:64] if isinstance(city, dict) else "?"
    if not isinstance(city, dict) or not city.get("receipt"):
        status = city.get("status") if isinstance(city, dict) else None
        if status == "answered":
            return Finding(name, False, "answered without a receipt"), None
        return Finding(name, True, f"{status} ({city.get('code')}): no receipt, as for every "
                                   "answer that is not one"), None
    try:
        receipt = Receipt.from_json(json.dumps(city["receipt"]))
        response_bytes = _bytes(city.get("response"), f"{name}'s response")
        verify_receipt(receipt, manifest=manifest, city=name, plan_bytes=plan_bytes,
                       response_bytes=response_bytes)
        response = node_pb2.AggregateResponse.FromString(response_bytes)
    except (CityfedError, DecodeError) as error:
        return Finding(name, False, str(error)), None
    return Finding(name, True, f"receipt signed by key {receipt.kid} at {receipt.time} for this "
                               f"plan and these {len(response.groups)} groups; audit index "
                               f"{receipt.audit_index}"), response


def _check_merge(saved: dict, plan_bytes: bytes, partials: list) -> Finding:
    if not saved.get("query"):
        return Finding("merge", False, "the answer holds no query to redo the merge with")
    try:
        query = query_pb2.FederatedQuery.FromString(_bytes(saved["query"], "query"))
        plan = query_pb2.AggregatePlan.FromString(plan_bytes)
    except (DecodeError, CityfedError) as error:
        return Finding("merge", False, f"the query or plan does not parse ({error})")
    if query.plan != plan:
        return Finding("merge", False, "the query's plan is not the plan the cities signed")
    try:
        table = finish(query, merge_partials(query.plan, partials))
    except CityfedError as error:
        return Finding("merge", False, f"the partials do not merge ({error})")
    expected = json.loads(json.dumps(answer_to_json(FederatedAnswer(table))))
    if expected["columns"] != saved.get("columns") or expected["rows"] != saved.get("rows"):
        return Finding("merge", False, "the cities' partials do not merge to the saved answer")
    return Finding("merge", True, f"the partials of {len(partials)} cities merge to the saved "
                                  f"answer ({len(table.rows)} rows)")


def _bytes(text: Any, what: str) -> bytes:
    if not isinstance(text, str):
        raise ReceiptInvalid(f"the answer holds no {what}")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ReceiptInvalid(f"the {what} is not base64") from None


def budget_rows(found) -> list[dict[str, Any]]:
    """Each city's privacy budget for a purpose, from `Coordinator.catalogs`, as `cityfed budget
    --json` prints it and the console shows it; a city that did not answer, with why."""
    rows = []
    for city, catalog, why in found:
        if catalog is None:
            rows.append({"city": city, "error": why})
            continue
        b = catalog.budget
        rows.append({"city": city, "purpose": b.purpose, "period": b.period,
                     "epsilon_limit": b.epsilon_limit, "epsilon_spent": b.epsilon_spent,
                     "epsilon_left": max(0.0, b.epsilon_limit - b.epsilon_spent),
                     "delta_limit": b.delta_limit, "delta_spent": b.delta_spent,
                     "epsilon_per_question": b.epsilon_per_question, "resets_at": b.resets_at})
    return rows
