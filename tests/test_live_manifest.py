"""A newer signed manifest counts without a restart: running node processes and the gateway take
it from the file within seconds (or at once on SIGHUP or the admin call), with the refusals of
start-up; and a key is retired, never removed, so what it signed still verifies."""

from __future__ import annotations

import dataclasses
import re
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from cityfed.v1 import admin_pb2, admin_pb2_grpc, node_pb2, node_pb2_grpc

from cli.main import main as cityfed
from federation.query.sql import parse_query
from federation.services.gateway import start_gateway
from federation.synthetic.local_region import TrustedRegion, node_address, spawn_node_process
from federation.trust.identity import Identity, channel_options, load_identity
from federation.trust.keys import (
    PUBLIC_MODE,
    generate_signing_key,
    key_id,
    read_private_key,
    write_file_atomically,
    write_private_key,
)
from federation.trust.manifest import (
    Manifest,
    ManifestRejected,
    ManifestStore,
    MemberKey,
    manifest_from_json,
    parse_json,
    sign_manifest,
    verify_manifest,
)
from federation.trust.tokens import mint_token
from node.audit import verify_log
from tests.regionkit import AUDITOR, OUTSIDER, PURPOSE, open_policy, write_process_region

NEWCOMER = "newcomer"
PLAN = parse_query("SELECT sex, count(*) FROM population GROUP BY sex").plan.SerializeToString()


# Helpers --------------------------------------------------------------------------------------

def _root(trusted: TrustedRegion):
    return read_private_key(trusted.directory.path / "root" / "root.key")


def _manifest(trusted: TrustedRegion) -> Manifest:
    return manifest_from_json(parse_json(trusted.directory.manifest.read_bytes())["manifest"])


def _next(manifest: Manifest, **changes) -> Manifest:
    """The next version, issued now."""
    now = datetime.now(UTC).replace(microsecond=0)
    return dataclasses.replace(manifest, version=manifest.version + 1, issued_at=now,
                               expires_at=now + timedelta(days=30), **changes)


def _without(manifest: Manifest, *members: str) -> Manifest:
    return dataclasses.replace(manifest, members=tuple(
        m for m in manifest.members if m.id not in members))


def _publish(trusted: TrustedRegion, manifest: Manifest | bytes) -> None:
    """Write the region's manifest file as an operator would: a whole new file moved into
    place."""
    data = manifest if isinstance(manifest, bytes) else sign_manifest(manifest, _root(trusted))
    write_file_atomically(trusted.directory.manifest, data, PUBLIC_MODE)


def _identity(trusted: TrustedRegion, member: str, manifest: Manifest) -> Identity:
    return load_identity(trusted.directory.member(member), trusted.directory.ca_certificate,
                         manifest)


def _aggregate(trusted: TrustedRegion, identity: Identity, city: str, *, key=None, kid=None):
    """Aggregate at a city as `identity`, with a token signed by its key (or `key`)."""
    with grpc.secure_channel(trusted.endpoint(city), identity.channel_credentials(),
                             options=channel_options(city, "test")) as channel:
        token = mint_token(key=key or identity.signing_key, kid=kid or identity.kid,
                           caller=identity.member_id, audience=city, purpose=PURPOSE,
                           plan_bytes=PLAN, certificate_x5t=identity.certificate_x5t)
        return node_pb2_grpc.NodeServiceStub(channel).Aggregate(
            node_pb2.AggregateRequest(plan=PLAN),
            metadata=(("authorization", f"Bearer {token}"),), timeout=10)


def _code(call) -> grpc.StatusCode:
    try:
        call()
    except grpc.RpcError as error:
        return error.code()
    return grpc.StatusCode.OK


def _wait_for(condition, seconds: float) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > seconds:
            pytest.fail(f"not within {seconds} s")
        time.sleep(0.1)
    return time.monotonic() - started


def _reload(config: Path) -> tuple[int, str]:
    out, err = _Capture(), _Capture()
    code = cityfed(["node", "reload-manifest", "--config", str(config)], out, err)
    return code, out.text + err.text


class _Capture:
    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> int:
        self.text += text
        return len(text)

    def flush(self) -> None:
        pass


@pytest.fixture
def region(tmp_path):
    """A region whose first manifest lists tianjin and the auditor; beijing and the newcomer
    have their keys and certificates already, for a later version to add them. Each city's
    policy lets the auditor and the newcomer read everything."""
    trusted = write_process_region(
        tmp_path, ("beijing", "tianjin"), authorities=(AUDITOR, OUTSIDER, NEWCOMER),
        policy_text=open_policy(AUDITOR) + open_policy(NEWCOMER))
    full = _manifest(trusted)
    _publish(trusted, sign_manifest(_without(full, "beijing", NEWCOMER), _root(trusted)))
    return trusted, full


@pytest.fixture
def nodes(region):
    trusted, _ = region
    running = {}

    def start(city: str) -> None:
        running[city] = spawn_node_process(trusted.directory.path / f"{city}.toml")
        node_address(running[city], trusted.directory.path / f"{city}.toml")

    yield start, running
    for process in running.values():
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(10)


# Live manifests, with real node processes ------------------------------------------------------

def test_a_manifest_adding_a_member_is_honoured_by_running_nodes_and_the_gateway_in_5_s(
        region, nodes):
    trusted, full = region
    start, _ = nodes
    start("tianjin")
    newcomer = _identity(trusted, NEWCOMER, full)
    auditor = _identity(trusted, AUDITOR, full)
    assert _code(lambda: _aggregate(trusted, newcomer, "tianjin")) == \
        grpc.StatusCode.UNAUTHENTICATED
    gateway = start_gateway(*trusted.directory.open_as(AUDITOR), "127.0.0.1:0",
                            region=trusted.directory)
    try:
        assert [o.city for o in gateway.coordinator.ask_sql(
            "SELECT count(*) FROM population", purpose=PURPOSE).outcomes] == ["tianjin"]

        _publish(trusted, _next(full))
        published = time.monotonic()
        start("beijing")  # a city the new version adds: it starts with that version
        _wait_for(lambda: _code(lambda: _aggregate(trusted, newcomer, "tianjin")) ==
                  grpc.StatusCode.OK, 5 - (time.monotonic() - published))
        assert _code(lambda: _aggregate(trusted, auditor, "tianjin")) == grpc.StatusCode.OK

        def asked_everywhere() -> bool:
            answer = gateway.coordinator.ask_sql("SELECT count(*) FROM population",
                                                 purpose=PURPOSE)
            return {o.city: o.status.value for o in answer.outcomes} == {
                "beijing": "answered", "tianjin": "answered"}

        _wait_for(asked_everywhere, 5 - (time.monotonic() - published))
        assert gateway.trust.manifest.version == 2
    finally:
        gateway.stop(grace=None)


def test_an_older_unsigned_foreign_or_expired_manifest_is_refused_and_the_held_one_kept(
        region, nodes):
    trusted, full = region
    start, _ = nodes
    start("tianjin")
    config = trusted.directory.path / "tianjin.toml"
    version_2 = _next(full)
    _publish(trusted, version_2)
    code, said = _reload(config)
    assert code == 0 and "manifest version 2 now in force; was 1" in said, said
    newcomer = _identity(trusted, NEWCOMER, full)
    assert _code(lambda: _aggregate(trusted, newcomer, "tianjin")) == grpc.StatusCode.OK

    signed_v2 = trusted.directory.manifest.read_bytes()
    older = sign_manifest(_without(full, "beijing", NEWCOMER), _root(trusted))
    unsigned = re.sub(rb'"value": "[^"]*"', b'"value": ""', sign_manifest(
        _next(version_2), _root(trusted)))
    foreign = sign_manifest(_next(version_2), generate_signing_key())
    expired_manifest = dataclasses.replace(
        _next(version_2), issued_at=datetime(2020, 1, 1, tzinfo=UTC),
        expires_at=datetime(2020, 2, 1, tzinfo=UTC))
    expired = sign_manifest(expired_manifest, _root(trusted))
    for data, why in ((older, "rollback"), (unsigned, "unsigned"), (foreign, "bad_signature"),
                      (expired, "expired")):
        _publish(trusted, data)
        code, said = _reload(config)
        assert code == 1 and "FAILED_PRECONDITION" in said and f"({why})" in said, said
        # The held version stays in force: the member it added is still answered.
        assert _code(lambda: _aggregate(trusted, newcomer, "tianjin")) == grpc.StatusCode.OK

    time.sleep(1.5)  # the watch also saw the last file, refused it and said why
    log = config.with_suffix(".log").read_text()
    assert "not taken, the held manifest stays in force: manifest rejected (expired)" in log
    held = trusted.directory.path / "tianjin.state" / "manifest.json"
    assert held.read_bytes() == signed_v2


def test_sighup_makes_a_node_take_a_newer_manifest_at_once(tmp_path, nodes):
    trusted = write_process_region(
        tmp_path, ("tianjin",), authorities=(AUDITOR, OUTSIDER, NEWCOMER),
        policy_text=open_policy(NEWCOMER), manifest_watch_seconds=0.0)
    full = _manifest(trusted)
    _publish(trusted, sign_manifest(_without(full, NEWCOMER), _root(trusted)))
    _, running = nodes
    running["tianjin"] = spawn_node_process(tmp_path / "tianjin.toml")
    node_address(running["tianjin"], tmp_path / "tianjin.toml")
    newcomer = _identity(trusted, NEWCOMER, full)

    _publish(trusted, _next(full))
    time.sleep(1.5)  # not watched: nothing changes by itself
    assert _code(lambda: _aggregate(trusted, newcomer, "tianjin")) == \
        grpc.StatusCode.UNAUTHENTICATED
    running["tianjin"].send_signal(signal.SIGHUP)
    assert _wait_for(lambda: _code(lambda: _aggregate(trusted, newcomer, "tianjin")) ==
                     grpc.StatusCode.OK, 2) < 2
    assert running["tianjin"].poll() is None


def test_a_retired_key_signs_no_new_token_and_what_it_signed_still_verifies(region, nodes):
    trusted, full = region
    start, running = nodes
    start("tianjin")
    auditor = _identity(trusted, AUDITOR, full)
    old_key, old_kid = auditor.signing_key, auditor.kid
    assert _code(lambda: _aggregate(trusted, auditor, "tianjin")) == grpc.StatusCode.OK

    # Rotate the auditor's key and tianjin's own key (tianjin takes its new key at a restart):
    # each old key ends when the new version is issued.
    stopped = running.pop("tianjin")
    stopped.send_signal(signal.SIGTERM)
    stopped.wait(10)
    held = _without(full, "beijing", NEWCOMER)
    new_keys = {AUDITOR: generate_signing_key(), "tianjin": generate_signing_key()}
    # The next whole second: after the node's last checkpoint, signed as it stopped.
    now = (datetime.now(UTC) + timedelta(seconds=1)).replace(microsecond=0)

    def rotated(member):
        if member.id not in new_keys:
            return member
        new = new_keys[member.id]
        keys = tuple(dataclasses.replace(k, not_after=now) for k in member.keys)
        return dataclasses.replace(member, keys=(*keys, MemberKey(
            key_id(new.public_key()), new.public_key(), now, None)))

    version_2 = _next(held, members=tuple(rotated(m) for m in held.members))
    for member, key in new_keys.items():
        write_private_key(trusted.directory.member(member) / "signing.key", key)
    _publish(trusted, version_2)
    time.sleep(max(0.0, (now - datetime.now(UTC)).total_seconds()) + 0.1)  # the old keys ended
    start("tianjin")  # opens its log: checkpoints by its retired key verify

    auditor = _identity(trusted, AUDITOR, version_2)
    assert _code(lambda: _aggregate(trusted, auditor, "tianjin")) == grpc.StatusCode.OK
    assert _code(lambda: _aggregate(trusted, auditor, "tianjin", key=old_key, kid=old_kid)) \
        == grpc.StatusCode.UNAUTHENTICATED

    # Removing the retired keys instead would leave the old checkpoints unverifiable: refused.
    removed = _next(version_2, members=tuple(
        dataclasses.replace(m, keys=m.keys[-1:]) if m.id in new_keys else m
        for m in version_2.members))
    _publish(trusted, removed)
    code, said = _reload(trusted.directory.path / "tianjin.toml")
    assert code == 1 and "(key_removed)" in said, said
    audit = trusted.directory.path / "tianjin.state" / "audit"
    assert not verify_log(audit, removed, city="tianjin").ok
    report = verify_log(audit, version_2, city="tianjin")
    assert report.ok, report.problem


# The rules, without processes -------------------------------------------------------------------

def _member_keys(manifest: Manifest, member: str) -> tuple[MemberKey, ...]:
    return manifest.member(member).keys


def _with_keys(manifest: Manifest, member: str, keys) -> Manifest:
    return dataclasses.replace(manifest, members=tuple(
        dataclasses.replace(m, keys=tuple(keys)) if m.id == member else m
        for m in manifest.members))


def test_a_key_is_retired_from_the_new_version_on_never_removed_or_back_dated(tmp_path):
    trusted = write_process_region(tmp_path, ("tianjin",), rows=10)
    root = _root(trusted)
    (key,) = _member_keys(_manifest(trusted), AUDITOR)
    key = dataclasses.replace(key, not_before=key.not_before - timedelta(days=7))
    held = _with_keys(_manifest(trusted), AUDITOR, [key])
    new = generate_signing_key()
    successor = MemberKey(key_id(new.public_key()), new.public_key(), key.not_before, None)
    later = _next(held)
    now = later.issued_at

    def check(manifest: Manifest) -> None:
        verify_manifest(sign_manifest(manifest, root), root.public_key(), now=now, held=held)

    check(_with_keys(later, AUDITOR, [dataclasses.replace(key, not_after=now), successor]))
    check(_with_keys(later, AUDITOR, [key, successor]))
    check(_without(later, OUTSIDER))  # a member who leaves takes its keys along
    refusals = {
        "removed": [successor],
        "back-dated": [dataclasses.replace(key, not_after=now - timedelta(seconds=1)),
                       successor],
        "moved start": [dataclasses.replace(key, not_before=key.not_before + timedelta(days=1))],
    }
    for keys in refusals.values():
        with pytest.raises(ManifestRejected) as refusal:
            check(_with_keys(later, AUDITOR, keys))
        assert refusal.value.why == "key_removed"


def test_the_node_store_checks_the_node_before_it_keeps_a_manifest(tmp_path):
    trusted = write_process_region(tmp_path, ("tianjin",), rows=10)
    root = _root(trusted)
    store = ManifestStore(tmp_path / "state", root.public_key())
    store.accept(trusted.directory.manifest)
    without_tianjin = _without(_next(_manifest(trusted)), "tianjin")

    def refuse(manifest: Manifest) -> None:
        if manifest.member("tianjin") is None:
            raise ManifestRejected("malformed", "tianjin is not in it")

    with pytest.raises(ManifestRejected):
        store.accept(sign_manifest(without_tianjin, root), check=refuse)
    assert store.held.version == 1
    assert ManifestStore(tmp_path / "state", root.public_key()).held.version == 1


def test_the_admin_call_names_what_it_holds(region, nodes):
    trusted, full = region
    start, _ = nodes
    start("tianjin")
    socket = trusted.directory.path / "tianjin.admin.sock"
    with grpc.insecure_channel(f"unix:{socket}") as channel:
        stub = admin_pb2_grpc.AdminServiceStub(channel)
        same = stub.ReloadManifest(admin_pb2.ReloadManifestRequest(), timeout=10)
        assert (same.previous_version, same.version) == (1, 1)
        _publish(trusted, _next(full))
        newer = stub.ReloadManifest(admin_pb2.ReloadManifestRequest(), timeout=10)
        assert (newer.previous_version, newer.version) == (1, 2)
        assert newer.expires_at.endswith("Z")
