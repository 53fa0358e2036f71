"""Direct gRPC calls to the nodes, beside the coordinator: the transport floor."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import grpc
from cityfed.v1 import node_pb2, node_pb2_grpc

from benchlib.stats import Samples, timed
from federation.trust.identity import Identity, channel_options
from federation.trust.manifest import Manifest


class NodeClients:
    """One channel per city, opened the way the coordinator opens them (mutual TLS as a
    member of the region)."""

    def __init__(self, manifest: Manifest, identity: Identity, cities: tuple[str, ...]) -> None:
        members = manifest.to_region().select_cities(cities)
        credentials = identity.channel_credentials()
        self.channels = [grpc.secure_channel(m.endpoint, credentials,
                                             options=channel_options(m.id, manifest.region))
                         for m in members]
        self.stubs = [node_pb2_grpc.NodeServiceStub(c) for c in self.channels]
        self.pool = ThreadPoolExecutor(max_workers=len(members))

    def close(self) -> None:
        self.pool.shutdown()
        for channel in self.channels:
            channel.close()

    def __enter__(self) -> NodeClients:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def info_from_all(self) -> None:
        """GetNodeInfo to every city at once, with `.future()` as the coordinator fans out: a
        round trip with no query work behind it."""
        calls = [s.GetNodeInfo.future(node_pb2.GetNodeInfoRequest(), timeout=10)
                 for s in self.stubs]
        for call in calls:
            call.result()

    def info_from_all_pooled(self) -> None:
        """The same with blocking calls from long-lived threads. grpcio starts a new
        "channel spin" thread for `.future()` on every channel with no call in flight, so a
        fan-out with futures starts one thread per city per question; this does not."""
        calls = [self.pool.submit(s.GetNodeInfo, node_pb2.GetNodeInfoRequest(), timeout=10)
                 for s in self.stubs]
        for call in calls:
            call.result()

    def transport_floor(self, runs: int, warmup: int = 20, pooled: bool = False) -> Samples:
        call = self.info_from_all_pooled if pooled else self.info_from_all
        for _ in range(warmup):
            call()
        samples = Samples()
        for _ in range(runs):
            samples.add(timed(call)[1])
        return samples
