"""What mutual TLS adds to one call on an open connection.

A node cannot switch TLS off, so this measures it beside the nodes: a bare gRPC server in its
own process answers an empty GetNodeInfo on two ports, one plaintext and one with a city's
certificate requiring a client certificate (as a node does), and the bench process calls it
over one channel of each kind, alternating blocks of calls. The difference is TLS's share of
every federated call: per call in wall time, and in CPU of client and server together. The
handshake happens once per channel (the coordinator reuses its channels), so it is left out.

    python scripts/benchlib/tls.py serve KEY CERT CA    # the server; prints its two ports
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from cityfed.v1 import node_pb2, node_pb2_grpc

from benchlib.measure import processes_cpu_seconds
from benchlib.stats import Samples
from federation.trust.identity import Identity, channel_options

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class TlsCost:
    calls: int  # per kind of channel
    plaintext_wall_ms: float  # per call, median over blocks
    tls_wall_ms: float
    plaintext_cpu_ms: float  # per call, client + server
    tls_cpu_ms: float

    @property
    def wall_ms(self) -> float:
        return self.tls_wall_ms - self.plaintext_wall_ms

    @property
    def cpu_ms(self) -> float:
        return self.tls_cpu_ms - self.plaintext_cpu_ms

    def to_json(self) -> dict[str, Any]:
        return {"calls": self.calls, "plaintext_wall_ms": round(self.plaintext_wall_ms, 4),
                "tls_wall_ms": round(self.tls_wall_ms, 4),
                "plaintext_cpu_ms": round(self.plaintext_cpu_ms, 4),
                "tls_cpu_ms": round(self.tls_cpu_ms, 4), "wall_ms": round(self.wall_ms, 4),
                "cpu_ms": round(self.cpu_ms, 4)}


class _EmptyNode(node_pb2_grpc.NodeServiceServicer):
    def GetNodeInfo(self, request, context):
        return node_pb2.GetNodeInfoResponse()


def serve(key: Path, certificate: Path, ca: Path) -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    node_pb2_grpc.add_NodeServiceServicer_to_server(_EmptyNode(), server)
    plaintext = server.add_insecure_port("127.0.0.1:0")
    secure = server.add_secure_port("127.0.0.1:0", grpc.ssl_server_credentials(
        [(key.read_bytes(), certificate.read_bytes())], root_certificates=ca.read_bytes(),
        require_client_auth=True))
    server.start()
    print(plaintext, secure, flush=True)
    sys.stdin.read()  # until the bench closes our stdin
    server.stop(0)


def measure_tls(identity: Identity, city: str, region: str, member_dir: Path, ca: Path, *,
                calls: int, blocks: int = 10) -> TlsCost:
    """Alternate blocks of `calls // blocks` calls over plaintext and over mutual TLS, to a
    server holding `city`'s certificate, as the member `identity`."""
    server = subprocess.Popen(
        [sys.executable, __file__, "serve", str(member_dir / "tls.key"),
         str(member_dir / "tls.pem"), str(ca)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(
            (str(ROOT), str(ROOT / "scripts"), str(ROOT / "proto"),
             os.environ.get("PYTHONPATH", "")))})
    try:
        plaintext_port, secure_port = (int(p) for p in server.stdout.readline().split())
        channels = {
            "plaintext": grpc.insecure_channel(f"127.0.0.1:{plaintext_port}"),
            "tls": grpc.secure_channel(f"127.0.0.1:{secure_port}",
                                       identity.channel_credentials(),
                                       options=channel_options(city, region)),
        }
        per_block = max(1, calls // blocks)
        walls = {kind: Samples() for kind in channels}  # ms per call, a sample per block
        cpus = {kind: Samples() for kind in channels}
        stubs = {kind: node_pb2_grpc.NodeServiceStub(c) for kind, c in channels.items()}
        for stub in stubs.values():
            for _ in range(50):  # warm up: connect, handshake
                stub.GetNodeInfo(node_pb2.GetNodeInfoRequest(), timeout=10)
        for block in range(blocks):
            order = ("plaintext", "tls") if block % 2 == 0 else ("tls", "plaintext")
            for kind in order:
                cpu_before = processes_cpu_seconds([server.pid]) + time.process_time()
                started = time.perf_counter()
                for _ in range(per_block):
                    stubs[kind].GetNodeInfo(node_pb2.GetNodeInfoRequest(), timeout=10)
                walls[kind].add((time.perf_counter() - started) * 1000 / per_block)
                cpu = processes_cpu_seconds([server.pid]) + time.process_time() - cpu_before
                cpus[kind].add(cpu * 1000 / per_block)
        for channel in channels.values():
            channel.close()
    finally:
        server.stdin.close()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    return TlsCost(per_block * blocks, walls["plaintext"].p50, walls["tls"].p50,
                   cpus["plaintext"].p50, cpus["tls"].p50)


if __name__ == "__main__":
    if sys.argv[1:2] != ["serve"] or len(sys.argv) != 5:
        sys.exit(__doc__)
    serve(*(Path(p) for p in sys.argv[2:]))
