"""The standard gRPC health service and server reflection (`grpc.reflection.v1` and
`v1alpha`), served by every cityfed server; and a gateway's health, which follows its
connections to the cities."""

from __future__ import annotations

import logging
import threading
import time

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2

log = logging.getLogger(__name__)

# How long after a request to connect a channel may be closed: grpc's connectivity poller, which
# wakes every 0.2 s, makes the request then, and fails (a traceback on stderr) on a closed one.
_CONNECT_REQUEST_SECONDS = 0.3

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


REFLECTION_V1_SERVICE = "grpc.reflection.v1.ServerReflection"
_V1ALPHA = reflection_pb2.DESCRIPTOR.package


def add_health_and_reflection(server: grpc.Server, services: list[str]) -> health.HealthServicer:
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for service in ["", *services]:
        health_servicer.set(service, SERVING)
    _add_reflection_v1_file()
    servicer = reflection.ReflectionServicer(
        [*services, health.SERVICE_NAME, REFLECTION_V1_SERVICE, reflection.SERVICE_NAME])
    server.add_generic_rpc_handlers([
        grpc.method_handlers_generic_handler(name, {"ServerReflectionInfo": (
            grpc.stream_stream_rpc_method_handler(
                servicer.ServerReflectionInfo,
                request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
                response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString))})
        for name in (REFLECTION_V1_SERVICE, reflection.SERVICE_NAME)])
    return health_servicer


def _add_reflection_v1_file() -> None:
    """grpcio-reflection serves only v1alpha (grpc/grpc#38576), and clients such as grpcurl ask
    v1 first. grpc's v1 proto is v1alpha's with the package renamed, field for field, so v1
    messages are v1alpha's bytes: the v1alpha servicer answers both. Its descriptor, derived
    here from v1alpha's, lets a client describe the v1 service as well."""
    pool = descriptor_pool.Default()
    try:
        pool.FindFileByName("grpc/reflection/v1/reflection.proto")
        return
    except KeyError:
        pass
    file = descriptor_pb2.FileDescriptorProto()
    reflection_pb2.DESCRIPTOR.CopyToProto(file)
    file.name, file.package = "grpc/reflection/v1/reflection.proto", "grpc.reflection.v1"
    file.options.java_package = "io.grpc.reflection.v1"
    file.options.go_package = "google.golang.org/grpc/reflection/grpc_reflection_v1"
    file.options.ClearField("deprecated")

    def renamed(type_name: str) -> str:
        return type_name.replace(f".{_V1ALPHA}.", f".{file.package}.")

    for message in file.message_type:
        for each in message.field:
            if each.type_name:
                each.type_name = renamed(each.type_name)
    for method in file.service[0].method:
        method.input_type, method.output_type = (renamed(method.input_type),
                                                 renamed(method.output_type))
    pool.Add(file)


def city_health_service(city: str) -> str:
    """The health service name under which a gateway reports one city ("city/tianjin"): no
    protobuf service has a '/' in its name, so it never shadows one."""
    return f"city/{city}"


class CityHealth:
    """A gateway's health: `city/<id>` is SERVING while the gateway holds a connection to that
    city, NOT_SERVING from when an attempt to connect fails until one succeeds; the server as a
    whole ("" and its services) is SERVING while at least one city is. The gateway keeps a
    connection to every city open, and reconnects by itself, so health follows a city that
    goes down or comes back without any question being asked."""

    def __init__(self, servicer: health.HealthServicer, services: list[str]) -> None:
        self._servicer = servicer
        self._services = ["", *services]
        self._lock = threading.Lock()
        self._followed: dict[str, _Follow] = {}
        self._reachable: dict[str, bool] = {}
        self._publish()

    def follow(self, channels: dict[str, grpc.Channel]) -> None:
        """Follow these cities' channels from now on, instead of those followed before (which
        may be closed once this returns). A city still followed keeps its state until its new
        channel says otherwise."""
        with self._lock:
            previous, self._followed = self._followed, {}
            for city in set(self._reachable) - set(channels):
                del self._reachable[city]
                self._servicer.set(city_health_service(city), NOT_SERVING)
            for city, channel in channels.items():
                if city not in self._reachable:
                    self._reachable[city] = False
                    self._servicer.set(city_health_service(city), NOT_SERVING)
                self._followed[city] = _Follow(self, city, channel)
            self._publish()
        _stop(previous.values())
        for each in list(self._followed.values()):
            each.start()

    def close(self) -> None:
        """Stop following; the channels may be closed once this returns."""
        with self._lock:
            followed, self._followed = self._followed, {}
        _stop(followed.values())

    def _changed(self, follow: _Follow, reachable: bool) -> None:
        with self._lock:
            if self._followed.get(follow.city) is not follow:
                return  # a channel replaced by a newer manifest's
            if self._reachable.get(follow.city) == reachable:
                return
            self._reachable[follow.city] = reachable
            log.info("city %s %s", follow.city, "reachable" if reachable else "unreachable")
            self._servicer.set(city_health_service(follow.city),
                               SERVING if reachable else NOT_SERVING)
            self._publish()

    def _publish(self) -> None:
        overall = SERVING if any(self._reachable.values()) else NOT_SERVING
        for service in self._services:
            self._servicer.set(service, overall)


def _stop(follows) -> None:
    settled = max((each.stop() for each in follows), default=0.0)
    time.sleep(max(0.0, settled - time.monotonic()))


class _Follow:
    """One city's channel, kept connected: gRPC leaves a channel IDLE when its connection ends,
    and connects again only when asked to."""

    def __init__(self, owner: CityHealth, city: str, channel: grpc.Channel) -> None:
        self.city = city
        self._owner = owner
        self._channel = channel
        self._lock = threading.Lock()
        self._stopped = False
        self._asked_to_connect = 0.0

    def start(self) -> None:
        with self._lock:
            self._asked_to_connect = time.monotonic()
        self._channel.subscribe(self._on_change, try_to_connect=True)

    def stop(self) -> float:
        """Stop following; returns the moment from which the channel may be closed."""
        with self._lock:
            self._stopped = True
            asked = self._asked_to_connect
        self._channel.unsubscribe(self._on_change)
        return asked + _CONNECT_REQUEST_SECONDS

    def _on_change(self, state: grpc.ChannelConnectivity) -> None:
        with self._lock:
            if self._stopped:
                return
            if state is grpc.ChannelConnectivity.IDLE:
                self._asked_to_connect = time.monotonic()
                self._connect()
                return
        if state is grpc.ChannelConnectivity.READY:
            self._owner._changed(self, True)
        elif state in (grpc.ChannelConnectivity.TRANSIENT_FAILURE,
                       grpc.ChannelConnectivity.SHUTDOWN):
            self._owner._changed(self, False)

    def _connect(self) -> None:
        # grpc.Channel has no "connect now"; subscribing with try_to_connect does it.
        def ignore(_state: grpc.ChannelConnectivity) -> None:
            pass

        self._channel.subscribe(ignore, try_to_connect=True)
        self._channel.unsubscribe(ignore)
