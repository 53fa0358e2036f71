"""`cityfed receipt verify`: check a saved `cityfed query --json` answer holding only the
manifest: each city's receipt against the plan and response bytes it covers (docs/audit.md,
"Receipts"), and that the cities' partials merge to the saved answer."""

from __future__ import annotations

import argparse
import base64
import binascii
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cityfed.v1 import node_pb2, query_pb2
from google.protobuf.message import DecodeError

from cli.query import answer_to_json
from federation.coordination.coordinator import FederatedAnswer
from federation.errors import CityfedError, InvalidArgument
from federation.query.finish import finish
from federation.query.merge import merge_partials
from federation.trust.keys import read_public_key
from federation.trust.manifest import Manifest, load_manifest
from federation.trust.receipts import Receipt, ReceiptInvalid, verify_receipt


def add_commands(commands: argparse._SubParsersAction) -> None:
    receipt = commands.add_parser(
        "receipt", help="check the cities' signed receipts").add_subparsers(
        dest="receipt_command", required=True)
    verify = receipt.add_parser(
        "verify", help="check a saved `cityfed query --json` answer: every city's receipt "
                       "against what it returned, and the merge against the answer")
    verify.add_argument("file", type=Path, help="the saved output of cityfed query --json")
    verify.add_argument("--manifest", type=Path, required=True,
                        help="the region's signed manifest (lists the cities' keys)")
    verify.add_argument("--root-public-key", type=Path, required=True,
                        help="the region's root public key, pinned")
    verify.set_defaults(run=run_verify)


@dataclass(frozen=True)
class Finding:
    subject: str  # a city's member id, or "merge"
    ok: bool
    text: str


def run_verify(args: argparse.Namespace, out: io.TextIOBase, err: io.TextIOBase) -> int:
    manifest = load_manifest(args.manifest, read_public_key(args.root_public_key))
    try:
        saved = json.loads(args.file.read_bytes())
    except (OSError, ValueError) as error:
        raise InvalidArgument(f"{args.file}: not a saved answer ({str(error)[:80]})") from None
    findings = verify_saved_answer(saved, manifest)
    for finding in findings:
        print(f"{finding.subject:<14} {'ok' if finding.ok else 'FAILED'}: {finding.text}",
              file=out)
    return 0 if all(f.ok for f in findings) else 1


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
