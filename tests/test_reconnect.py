"""A city that comes back is asked again at once: the gateway's channels to the cities reconnect
within a second (capped backoff), and the gateway's health says which cities it reaches. Real
node processes, killed with SIGKILL and started again on the same port."""

from __future__ import annotations

import signal
import socket
import threading
import time

import grpc
import pytest
from cityfed.v1 import federation_pb2, federation_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from federation.services.gateway import start_gateway
from federation.serving.health import city_health_service
from federation.synthetic.local_region import node_address, spawn_node_process
from federation.trust.identity import channel_options
from tests.regionkit import AUDITOR, PURPOSE, write_process_region

CITIES = ("beijing", "tianjin")
SQL = "SELECT sex, count(*) FROM population GROUP BY sex"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
ANSWERED = federation_pb2.CITY_STATUS_ANSWERED
UNREACHABLE = federation_pb2.CITY_STATUS_UNREACHABLE


@pytest.fixture
def cluster(tmp_path):
    """Two city node processes, and a gateway of the auditor asking them."""
    trusted = write_process_region(tmp_path, CITIES)
    processes = {city: spawn_node_process(tmp_path / f"{city}.toml") for city in CITIES}
    gateway = None
    try:
        for city, process in processes.items():
            node_address(process, tmp_path / f"{city}.toml")
        manifest, identity = trusted.directory.open_as(AUDITOR)
        gateway = start_gateway(manifest, identity, "127.0.0.1:0", city_timeout=5)
        channel = grpc.secure_channel(f"127.0.0.1:{gateway.port}", identity.channel_credentials(),
                                      options=channel_options(AUDITOR, manifest.region))
        yield tmp_path, processes, gateway, channel
        channel.close()
    finally:
        if gateway is not None:
            gateway.stop(grace=None)
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(10)


def _statuses(channel: grpc.Channel) -> dict[str, int]:
    stub = federation_pb2_grpc.FederationServiceStub(channel)
    response = stub.FederatedAggregate(
        federation_pb2.FederatedAggregateRequest(sql=SQL, purpose=PURPOSE), timeout=10)
    return {outcome.city: outcome.status for outcome in response.outcomes}


def _health(channel: grpc.Channel, service: str) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    return stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status


def _wait_for(condition, seconds: float, why: str = "") -> float:
    """Seconds until `condition()` held; fails after `seconds`."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > seconds:
            pytest.fail(f"not within {seconds} s {why}")
        time.sleep(0.05)
    return time.monotonic() - started


class _AttemptCounter:
    """Listens on a stopped city's port and notes each connection attempt (then drops it, so
    the attempt fails as it would against a closed port)."""

    def __init__(self, endpoint: str) -> None:
        host, port = endpoint.rsplit(":", 1)
        self._socket = socket.create_server((host, int(port)))
        self._socket.settimeout(0.1)
        self.times: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._socket.accept()
            except TimeoutError:
                continue
            self.times.append(time.monotonic())
            connection.close()

    def wait_for_next(self, seconds: float) -> None:
        seen = len(self.times)
        _wait_for(lambda: len(self.times) > seen, seconds, "for a connection attempt")

    def gaps(self) -> list[float]:
        return [round(b - a, 2) for a, b in zip(self.times, self.times[1:], strict=False)]

    def __enter__(self) -> _AttemptCounter:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._socket.close()


def test_the_gateway_answers_with_a_restarted_city_within_two_seconds_of_it_listening(cluster):
    directory, processes, gateway, channel = cluster
    assert _statuses(channel) == {"beijing": ANSWERED, "tianjin": ANSWERED}

    processes["tianjin"].kill()
    processes["tianjin"].wait()
    endpoint = gateway.coordinator.manifest.member("tianjin").endpoint
    with _AttemptCounter(endpoint) as attempts:
        # Down for a while and asked all along, as a gateway in use is: gRPC's own backoff
        # grows to several seconds between attempts in this time.
        down_until = time.monotonic() + 8
        while time.monotonic() < down_until:
            assert _statuses(channel) == {"beijing": ANSWERED, "tianjin": UNREACHABLE}
            time.sleep(0.25)
        attempts.wait_for_next(20)  # the city comes back just after the gateway tried it
    processes["tianjin"] = spawn_node_process(directory / "tianjin.toml")
    node_address(processes["tianjin"], directory / "tianjin.toml")  # it listens from here
    took = _wait_for(lambda: _statuses(channel)["tianjin"] == ANSWERED, 2.0,
                     f"connection attempts while down, seconds apart: {attempts.gaps()}")
    assert took < 2.0


def test_the_gateway_health_follows_its_cities(cluster):
    directory, processes, _, channel = cluster
    _wait_for(lambda: _health(channel, city_health_service("tianjin")) == SERVING, 5)
    assert _health(channel, city_health_service("beijing")) == SERVING
    assert _health(channel, "") == SERVING

    processes["tianjin"].kill()
    processes["tianjin"].wait()
    _wait_for(lambda: _health(channel, city_health_service("tianjin")) == NOT_SERVING, 2)
    assert _health(channel, "") == SERVING  # beijing still answers

    processes["beijing"].kill()
    processes["beijing"].wait()
    _wait_for(lambda: _health(channel, "") == NOT_SERVING, 2)
    assert _health(channel, federation_pb2.DESCRIPTOR.services_by_name[
        "FederationService"].full_name) == NOT_SERVING

    # No question is asked: the gateway reconnects by itself and says so.
    processes["tianjin"] = spawn_node_process(directory / "tianjin.toml")
    node_address(processes["tianjin"], directory / "tianjin.toml")
    took = _wait_for(lambda: _health(channel, city_health_service("tianjin")) == SERVING, 2)
    assert took < 2.0
    assert _health(channel, "") == SERVING
    assert _health(channel, city_health_service("beijing")) == NOT_SERVING
