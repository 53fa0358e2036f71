"""NodeService.GetAuditCheckpoint: any member, holding only the manifest, checks that a city's
audit log is signed and only grew."""

from __future__ import annotations

import json

import grpc
import pytest
from cityfed.v1 import node_pb2

from federation.trust.checkpoints import check_consistency_between, verify_checkpoint
from tests.regionkit import OUTSIDER, node_stub, start_region


@pytest.fixture(scope="module")
def region(tmp_path_factory):
    running = start_region(tmp_path_factory.mktemp("checkpoint-rpc"), ("tianjin",), rows=50)
    yield running
    running.stop()


def test_no_checkpoint_yet_is_not_found(region):
    with pytest.raises(grpc.RpcError) as raised:
        node_stub(region, "tianjin").GetAuditCheckpoint(node_pb2.GetAuditCheckpointRequest())
    assert raised.value.code() is grpc.StatusCode.NOT_FOUND


def test_a_member_checks_the_log_only_grew(region):
    node = region.nodes["tianjin"]
    stub = node_stub(region, "tianjin", as_member=OUTSIDER)  # any member may ask
    region.ask("SELECT count(*) FROM population")
    node.audit.checkpoint()
    first = stub.GetAuditCheckpoint(node_pb2.GetAuditCheckpointRequest())
    old = json.loads(first.checkpoint)
    assert verify_checkpoint(old, region.manifest) and old["log"] == "tianjin"
    assert list(first.consistency_proof) == []

    region.ask("SELECT sex, count(*) FROM population GROUP BY sex")
    node.audit.checkpoint()
    second = stub.GetAuditCheckpoint(node_pb2.GetAuditCheckpointRequest(known_size=old["size"]))
    new = json.loads(second.checkpoint)
    assert new["size"] > old["size"]
    assert check_consistency_between(old, new, second.consistency_proof, region.manifest) is None
    forged = {**old, "root": "0" * 64}
    assert check_consistency_between(forged, new, second.consistency_proof,
                                     region.manifest) is not None


def test_a_size_above_the_checkpoint_is_invalid(region):
    region.ask("SELECT count(*) FROM population")
    region.nodes["tianjin"].audit.checkpoint()
    with pytest.raises(grpc.RpcError) as raised:
        node_stub(region, "tianjin").GetAuditCheckpoint(
            node_pb2.GetAuditCheckpointRequest(known_size=10**9))
    assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT
