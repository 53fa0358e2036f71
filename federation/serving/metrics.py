"""Prometheus metrics of a server (a node or a gateway): every call by method, caller and status,
and its latency, counted where every call passes (the error translator), served over HTTP on
a listen address of their own (docs/metrics.md).

Labels hold method names, member ids, status names and, at a node, registered purposes and
dataset names: never personal data, and never anything a caller can choose freely (a member id
is one the manifest lists, a purpose one it registers), so the number of series stays bounded."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import grpc
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

from federation.errors import ConfigError

log = logging.getLogger(__name__)

# Seconds: from a health check (a millisecond) to a load of millions of rows (an hour).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                   10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)


class ServerMetrics:
    """A server's registry and its call metrics; `observe` is called once per call by the
    error translator with the call's final outcome."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "cityfed_requests", "Calls answered or refused, by method, caller and status; caller "
            "is empty when the caller is no member (the admin socket, an unknown certificate).",
            ("method", "caller", "status"), registry=self.registry)
        self.latency = Histogram(
            "cityfed_request_duration_seconds", "How long calls took, by method.", ("method",),
            buckets=LATENCY_BUCKETS, registry=self.registry)

    def observe(self, method: str, facts: dict, error, started: float) -> None:
        status = error.status if error is not None else grpc.StatusCode.OK
        self.requests.labels(method, facts.get("caller") or "", status.name).inc()
        self.latency.labels(method).observe(time.perf_counter() - started)


@dataclass
class MetricsEndpoint:
    """The HTTP server of a registry: GET /metrics in Prometheus' text format."""

    host: str
    port: int
    _server: object

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def parse_listen(listen: str) -> tuple[str, int]:
    """("127.0.0.1", 9464) from "127.0.0.1:9464", ("::1", 0) from "[::1]:0"."""
    host, _, port = listen.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not host or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"metrics_listen must be HOST:PORT (or empty: no metrics), "
                          f"not {listen!r}")
    return host, int(port)


def serve_metrics(registry: CollectorRegistry, listen: str) -> MetricsEndpoint | None:
    """Serve `registry` on `listen` (port 0: any free port); None when `listen` is empty."""
    if not listen:
        return None
    host, port = parse_listen(listen)
    server, _ = start_http_server(port, host, registry=registry)
    endpoint = MetricsEndpoint(host, server.server_port, server)
    log.info("metrics on %s", endpoint.url)
    return endpoint
