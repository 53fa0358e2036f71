"""What the console's pages show, as plain data: every value comes from the coordinator (the
cities' own answers under this member's tokens and their policy), the signed manifest, or what
the cities signed (checkpoints, receipts). Nothing here reads a city's files."""

from __future__ import annotations

import collections
import datetime as dt
import hashlib
import itertools
import json
import re
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import grpc
from cityfed.v1 import node_pb2, node_pb2_grpc
from cryptography import x509
from grpc_health.v1 import health_pb2, health_pb2_grpc

from federation.coordination.answers import answer_to_json, budget_rows, verify_saved_answer
from federation.coordination.coordinator import CityStatus, Coordinator
from federation.errors import InvalidArgument
from federation.linkage.asker import run_linkage
from federation.linkage.checks import CHECKS, build_plan
from federation.linkage.reports import outcome_to_json, what_each_learned
from federation.query.datasets import DATASETS
from federation.trust.checkpoints import check_consistency_between, parse_time, verify_checkpoint
from federation.trust.identity import RegionDirectory

HEALTH_TIMEOUT = 1.5
CERTIFICATE_SECONDS = 300.0  # how long a city's presented certificate is taken as read
KEPT_ANSWERS = 50
_ACCESS = {v: k.removeprefix("ACCESS_LEVEL_").lower()
           for k, v in node_pb2.AccessLevel.items()}
_AT_CHARACTER = re.compile(r"at character (\d+)")
_QUOTED_NAME = re.compile(r"unknown (?:column|dataset) '([^']+)'")


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def error_at(sql: str, message: str) -> int | None:
    """Where in the SQL (0-based) an error of the subset points: the character it names, or the
    first place the unknown name it quotes appears."""
    found = _AT_CHARACTER.search(message)
    if found:
        return max(0, min(len(sql), int(found.group(1)) - 1))
    quoted = _QUOTED_NAME.search(message)
    if quoted:
        at = re.search(rf"(?<![\w\"]){re.escape(quoted.group(1))}(?![\w])", sql, re.IGNORECASE)
        return at.start() if at else None
    return None


def chart_of(answer: dict[str, Any]) -> dict[str, Any] | None:
    """A chart for an answer's shape: the first text or date column labels the x axis, every
    numeric column is a series with its 95% intervals as error bars; lines when the labels are
    dates or times, bars otherwise."""
    types = answer["column_types"]
    numeric = [i for i, t in enumerate(types) if _numeric(t)]
    labels = [i for i in range(len(types)) if i not in numeric]
    if not numeric or not answer["rows"]:
        return None
    label = labels[0] if labels else None
    kind = "line" if label is not None and types[label].startswith(("DATE", "TIMESTAMP")) \
        else "bar"
    series = []
    for i in numeric:
        accuracy = answer["accuracy"][i] if i < len(answer["accuracy"]) else None
        widths = accuracy["half_widths_95"] if accuracy and accuracy["noisy"] else []
        series.append({
            "name": answer["columns"][i],
            "values": [_number(row[i]) for row in answer["rows"]],
            "errors": [w if isinstance(w, int | float) else None for w in widths]
            or [None] * len(answer["rows"]),
        })
    return {"kind": kind,
            "labels": [("NULL" if row[label] is None else str(row[label])) if label is not None
                       else str(n + 1) for n, row in enumerate(answer["rows"])],
            "label_column": answer["columns"][label] if label is not None else "",
            "series": series}


def _numeric(duckdb_type: str) -> bool:
    return duckdb_type.startswith(("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT",
                                   "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "FLOAT",
                                   "DOUBLE", "DECIMAL"))


def _number(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


@dataclass
class AskedAnswer:
    id: int
    user: str
    sql: str
    purpose: str
    asked_at: str
    body: dict[str, Any]  # answer_to_json: exactly what `cityfed query --json` prints


@dataclass
class Console:
    """One member's view of its region, shared by every logged-in user of its console."""

    coordinator: Coordinator
    region: RegionDirectory | None = None
    _answers: collections.OrderedDict = field(default_factory=collections.OrderedDict)
    _checks: list = field(default_factory=list)
    _latency: dict[str, float] = field(default_factory=dict)
    _checkpoints: dict[str, dict] = field(default_factory=dict)  # the last verified, per city
    _certificates: dict[str, tuple[float, dict]] = field(default_factory=dict)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def manifest(self):
        return self.coordinator.manifest

    @property
    def member(self) -> str:
        return self.coordinator.identity.member_id

    def purposes(self) -> list[dict[str, str]]:
        return [{"id": p.id, "description": p.description} for p in self.manifest.purposes]

    # Region -----------------------------------------------------------------------------------

    def region_status(self) -> dict[str, Any]:
        manifest = self.manifest
        cities = list(self.coordinator._pool.map(self._city_status, manifest.cities))
        return {"region": manifest.region, "member": self.member,
                "manifest_version": manifest.version,
                "manifest_expires_at": manifest.expires_at.isoformat(),
                "cities": cities, "up": sum(c["health"] == "up" for c in cities)}

    def _city_status(self, member) -> dict[str, Any]:
        city = {"city": member.id, "name": member.name, "endpoint": member.endpoint}
        channel = self.coordinator.channel(self.coordinator.region.select_cities([member.id])[0])
        started = time.perf_counter()
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=HEALTH_TIMEOUT)
            serving = reply.status == health_pb2.HealthCheckResponse.SERVING
            city["health"] = "up" if serving else "not serving"
        except grpc.RpcError as error:
            city["health"] = "down"
            city["health_detail"] = error.code().name
        city["health_ms"] = round((time.perf_counter() - started) * 1000, 1)
        with self._lock:
            city["last_answer_ms"] = self._latency.get(member.id)
        city["certificate"] = self._certificate(member)
        city["checkpoint"] = self._checkpoint(member.id, channel) if city["health"] == "up" \
            else self._held_checkpoint(member.id)
        return city

    def _certificate(self, member) -> dict[str, Any]:
        """The TLS certificate the city presents, checked against the manifest's fingerprint."""
        with self._lock:
            cached = self._certificates.get(member.id)
        if cached and time.monotonic() - cached[0] < CERTIFICATE_SECONDS:
            return cached[1]
        found = _presented_certificate(member, self.coordinator, self.region)
        if found.get("not_after"):
            with self._lock:
                self._certificates[member.id] = (time.monotonic(), found)
        return found

    def _held_checkpoint(self, city: str) -> dict[str, Any] | None:
        with self._lock:
            held = self._checkpoints.get(city)
        return _describe_checkpoint(held, "last seen; the city does not answer now") \
            if held else None

    def _checkpoint(self, city: str, channel: grpc.Channel) -> dict[str, Any] | None:
        """The city's last signed checkpoint, its signature checked with the manifest, and the
        proof that its log extends the one this console checked before."""
        with self._lock:
            held = self._checkpoints.get(city)
        stub = node_pb2_grpc.NodeServiceStub(channel)
        try:
            reply = stub.GetAuditCheckpoint(
                node_pb2.GetAuditCheckpointRequest(known_size=held["size"] if held else 0),
                timeout=HEALTH_TIMEOUT * 2)
        except grpc.RpcError as error:
            if error.code() is grpc.StatusCode.NOT_FOUND:
                return {"verified": None, "note": "no checkpoint yet"}
            return {"verified": False, "note": f"{error.code().name}: {error.details()}"[:200]}
        try:
            checkpoint = json.loads(reply.checkpoint)
        except ValueError:
            return {"verified": False, "note": "the checkpoint is not JSON"}
        if not verify_checkpoint(checkpoint, self.manifest) or checkpoint.get("log") != city:
            return {"verified": False, "note": "the checkpoint is not signed by the city's key"}
        if held:
            problem = check_consistency_between(held, checkpoint, reply.consistency_proof,
                                                self.manifest)
            if problem:
                return {**_describe_checkpoint(checkpoint, problem), "verified": False}
        with self._lock:
            self._checkpoints[city] = checkpoint
        note = (f"signed by {checkpoint['kid']}; extends the log of {held['size']} records "
                "checked before" if held else f"signed by {checkpoint['kid']}")
        return _describe_checkpoint(checkpoint, note)

    # Ask ---------------------------------------------------------------------------------------

    def catalog(self, purpose: str) -> dict[str, Any]:
        self._check_purpose(purpose)
        found = self.coordinator.catalogs(purpose)
        datasets: dict[str, dict] = {}
        cities = []
        for city, catalog, why in found:
            cities.append({"city": city, "error": why})
            if catalog is None:
                continue
            for entry in catalog.datasets:
                dataset = datasets.setdefault(entry.name, {
                    "name": entry.name, "description": entry.description, "columns": {}})
                for column in entry.columns:
                    described = dataset["columns"].setdefault(column.name, {
                        "name": column.name, "type": column.type, "unit": column.unit,
                        "description": column.description, "access": {}})
                    described["access"][city] = _ACCESS.get(column.access, "deny")
        ordered = []
        for name in DATASETS:
            if name in datasets:
                ordered.append({**datasets[name],
                                "columns": list(datasets[name]["columns"].values())})
        return {"purpose": purpose, "cities": cities, "datasets": ordered}

    def ask(self, sql: str, purpose: str, user: str) -> dict[str, Any]:
        self._check_purpose(purpose)
        if len(sql) > 20_000:
            raise InvalidArgument("the SQL is longer than 20,000 characters")
        answer = self.coordinator.ask_sql(sql, purpose=purpose)
        body = answer_to_json(answer)
        with self._lock:
            for outcome in answer.outcomes:
                if outcome.status is CityStatus.ANSWERED:
                    self._latency[outcome.city] = round(outcome.elapsed_ms, 1)
            asked = AskedAnswer(next(self._ids), user, sql, purpose,
                                now_utc().isoformat(timespec="seconds"), body)
            self._answers[asked.id] = asked
            while len(self._answers) > KEPT_ANSWERS:
                self._answers.popitem(last=False)
        return self.answer_view(asked)

    def answer_view(self, asked: AskedAnswer) -> dict[str, Any]:
        body = asked.body
        return {"id": asked.id, "sql": asked.sql, "purpose": asked.purpose,
                "asked_at": asked.asked_at, "user": asked.user,
                "columns": body["columns"], "column_types": body["column_types"],
                "rows": body["rows"], "accuracy": body["accuracy"], "private": body["private"],
                "complete": body["complete"],
                "cities": [{k: c[k] for k in ("city", "status", "code", "detail", "groups",
                                              "elapsed_ms", "private", "epsilon_charged",
                                              "epsilon_remaining")}
                           | {"receipt": bool(c["receipt"])} for c in body["cities"]],
                "epsilon_spent": sum(c["epsilon_charged"] for c in body["cities"]),
                "chart": chart_of(body)}

    def answer(self, answer_id: int) -> AskedAnswer:
        with self._lock:
            found = self._answers.get(answer_id)
        if found is None:
            raise InvalidArgument("no such answer (the console keeps the last "
                                  f"{KEPT_ANSWERS})")
        return found

    # Budget ------------------------------------------------------------------------------------

    def budget(self, purpose: str) -> dict[str, Any]:
        self._check_purpose(purpose)
        rows = budget_rows(self.coordinator.catalogs(purpose))
        return {"purpose": purpose, "member": self.member, "cities": rows}

    # Audit -------------------------------------------------------------------------------------

    def audit(self) -> dict[str, Any]:
        with self._lock:
            answers = list(self._answers.values())
        refused = collections.Counter()
        for asked in answers:
            for city in asked.body["cities"]:
                if city["status"] != "answered":
                    refused[(city["city"], city["status"], city["code"], city["detail"])] += 1
        status = self.region_status()
        return {
            "cities": [{"city": c["city"], "health": c["health"], "checkpoint": c["checkpoint"]}
                       for c in status["cities"]],
            "refused": [{"city": k[0], "status": k[1], "code": k[2], "reason": k[3], "count": n}
                        for k, n in sorted(refused.items())],
            "answers": [{"id": a.id, "sql": a.sql, "purpose": a.purpose, "asked_at": a.asked_at,
                         "receipts": sum(bool(c["receipt"]) for c in a.body["cities"])}
                        for a in reversed(answers)],
        }

    def verify(self, answer_id: int) -> list[dict[str, Any]]:
        """`cityfed receipt verify` of a kept answer: each city's receipt, and the merge."""
        saved = json.loads(json.dumps(self.answer(answer_id).body))
        return [{"subject": f.subject, "ok": f.ok, "text": f.text}
                for f in verify_saved_answer(saved, self.manifest)]

    # Checks ------------------------------------------------------------------------------------

    def checks(self) -> dict[str, Any]:
        with self._lock:
            runs = list(reversed(self._checks))
        return {"checks": [{"name": c.name, "summary": c.summary, "purpose": c.purpose}
                           for c in CHECKS.values()],
                "cities": [m.id for m in self.manifest.cities], "runs": runs}

    def run_check(self, check: str, owner: str, partner: str, user: str) -> dict[str, Any]:
        if check not in CHECKS:
            raise InvalidArgument(f"unknown check; the checks are: {', '.join(CHECKS)}")
        if owner == partner:
            raise InvalidArgument("a check compares two different cities")
        plan = build_plan(check, owner=owner, partner=partner, mode="count")
        outcome = run_linkage(self.coordinator, plan, purpose=CHECKS[check].purpose)
        run = outcome_to_json(outcome)
        run["learned"] = what_each_learned(outcome, self.member) if outcome.result else []
        run["user"] = user
        run["run_at"] = now_utc().isoformat(timespec="seconds")
        with self._lock:
            self._checks.append(run)
            del self._checks[:-KEPT_ANSWERS]
        return run

    def _check_purpose(self, purpose: str) -> None:
        if self.manifest.purpose(purpose) is None:
            raise InvalidArgument("choose a purpose the region's manifest registers")


def _describe_checkpoint(checkpoint: dict, note: str) -> dict[str, Any]:
    try:
        age = (now_utc() - parse_time(checkpoint["time"])).total_seconds()
    except (KeyError, ValueError):
        age = None
    return {"verified": True, "size": checkpoint.get("size"), "time": checkpoint.get("time"),
            "age_seconds": None if age is None else round(max(0.0, age), 1),
            "root": str(checkpoint.get("root", ""))[:16], "note": note}


def _presented_certificate(member, coordinator: Coordinator,
                           region: RegionDirectory | None) -> dict[str, Any]:
    """Open a TLS connection to the city as this member and read the certificate it presents."""
    identity = coordinator.identity
    host, _, port = member.endpoint.rpartition(":")
    if region is None or not port.isdigit():
        return {"note": "not checked"}
    context = ssl.create_default_context(cadata=identity.ca_certificate_pem.decode())
    context.check_hostname = False  # the manifest's fingerprint names the city, below
    folder = region.member(identity.member_id)
    try:
        context.load_cert_chain(folder / "tls.pem", folder / "tls.key")
        address = (host.strip("[]"), int(port))
        with socket.create_connection(address, timeout=HEALTH_TIMEOUT) as raw, \
                context.wrap_socket(raw) as tls:
            der = tls.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError) as error:
        return {"note": f"no certificate read ({type(error).__name__})"}
    certificate = x509.load_der_x509_certificate(der)
    fingerprint = hashlib.sha256(der).hexdigest()
    not_after = certificate.not_valid_after_utc
    return {"not_after": not_after.isoformat(),
            "days_left": round((not_after - now_utc()).total_seconds() / 86400, 1),
            "matches_manifest": fingerprint == member.tls_fingerprint,
            "note": "" if fingerprint == member.tls_fingerprint
            else "the city presents a certificate the manifest does not list"}

