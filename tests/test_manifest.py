"""The signed member manifest: one test per rule a node applies before it trusts a manifest."""

from __future__ import annotations

import argparse
import copy
import dataclasses
import io
import json
import os
import stat
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cli import trust as trust_cli
from federation.errors import ConfigError
from federation.trust.keys import (
    b64url_decode,
    b64url_encode,
    generate_signing_key,
    key_id,
    read_private_key,
    read_public_key,
)
from federation.trust.manifest import (
    Manifest,
    ManifestMember,
    ManifestRejected,
    ManifestStore,
    MemberKey,
    Purpose,
    canonical_json,
    manifest_from_json,
    manifest_to_json,
    sign_manifest,
    verify_manifest,
)
from federation.trust.members import Member
from federation.trust.pki import certificate_fingerprint, read_certificate
from federation.trust.region_init import DEFAULT_PURPOSES, init_region, rotate_member_key

ISSUED = datetime(2026, 11, 26, 10, 0, 0, tzinfo=UTC)
EXPIRES = ISSUED + timedelta(days=30)
NOW = ISSUED + timedelta(hours=1)
ROOT = generate_signing_key()
OTHER_ROOT = generate_signing_key()
MEMBER_KEYS = {m: generate_signing_key() for m in ("beijing", "tianjin", "jjj-health")}


def member(member_id: str, role: str = "city", endpoint: str = "127.0.0.1:7401",
           name: str = "") -> ManifestMember:
    public = MEMBER_KEYS[member_id].public_key()
    return ManifestMember(
        id=member_id, name=name or member_id, role=role, endpoint=endpoint,
        tls_fingerprint=f"{sorted(MEMBER_KEYS).index(member_id):x}" * 64,
        keys=(MemberKey(key_id(public), public, ISSUED, None),),
        groups=("cities",) if role == "city" else ("health-authorities",))


def make_manifest(version: int = 1, region: str = "jjj", **changes) -> Manifest:
    manifest = Manifest(
        region=region, version=version, issued_at=ISSUED, expires_at=EXPIRES,
        purposes=(Purpose("medical-settlement-statistics", "Settling medical costs."),),
        members=(member("beijing", name="北京"), member("tianjin", endpoint="127.0.0.1:7402"),
                 member("jjj-health", role="authority", endpoint="")))
    return dataclasses.replace(manifest, **changes)


def signed_file(body: dict, key=ROOT, **signature) -> bytes:
    """A file whose signature verifies over `body`, whatever the body holds."""
    fields = {"alg": "EdDSA", "kid": key_id(key.public_key()),
              "value": b64url_encode(key.sign(canonical_json(body)))} | signature
    return json.dumps({"manifest": body, "signature": fields}, ensure_ascii=False).encode()


def edited(data: bytes, change) -> bytes:
    """The file with `change` applied to its parsed JSON, signature untouched."""
    document = json.loads(data)
    change(document)
    return json.dumps(document, ensure_ascii=False).encode()


def rejected(data: bytes, *, now: datetime = NOW, held: Manifest | None = None) -> str:
    with pytest.raises(ManifestRejected) as refusal:
        verify_manifest(data, ROOT.public_key(), now=now, held=held)
    assert refusal.value.why in ManifestRejected.REASONS
    assert refusal.value.why in str(refusal.value)
    return refusal.value.why


# The format -----------------------------------------------------------------------------------

def test_a_signed_manifest_round_trips():
    manifest = make_manifest(version=3)
    data = sign_manifest(manifest, ROOT)
    assert verify_manifest(data, ROOT.public_key(), now=NOW) == manifest
    assert manifest_from_json(manifest_to_json(manifest)) == manifest
    document = json.loads(data)
    assert set(document) == {"manifest", "signature"}
    assert document["manifest"]["format"] == "cityfed.manifest.v1"
    assert document["manifest"]["issued_at"] == "2026-11-26T10:00:00Z"
    assert document["manifest"]["members"][2]["keys"][0]["not_after"] is None
    assert document["signature"]["kid"] == key_id(ROOT.public_key())
    assert "北京" in data.decode("utf-8")


def test_the_signature_is_over_the_canonical_json_of_the_manifest_object():
    data = sign_manifest(make_manifest(), ROOT)
    document = json.loads(data)
    canonical = json.dumps(document["manifest"], sort_keys=True, separators=(",", ":"),
                           ensure_ascii=False).encode("utf-8")
    signature = document["signature"]["value"]
    ROOT.public_key().verify(b64url_decode(signature), canonical)
    reindented = json.dumps(document, indent=7, ensure_ascii=True).encode()
    assert verify_manifest(reindented, ROOT.public_key(), now=NOW) == make_manifest()


def test_the_manifest_answers_questions_about_members_keys_and_purposes():
    manifest = make_manifest()
    tianjin = manifest.member("tianjin")
    assert manifest.member("shanghai") is None
    assert manifest.member_by_fingerprint(tianjin.tls_fingerprint.upper()) == tianjin
    assert manifest.member_by_fingerprint("0" * 63) is None
    kid = tianjin.keys[0].kid
    assert manifest.signing_key(kid, NOW) == (tianjin, tianjin.keys[0])
    assert manifest.signing_key(kid, ISSUED - timedelta(seconds=1)) is None
    assert manifest.signing_key("unknown", NOW) is None
    assert manifest.purpose("medical-settlement-statistics").description
    assert manifest.purpose("marketing") is None
    assert [m.id for m in manifest.cities] == ["beijing", "tianjin"]
    assert [m.id for m in manifest.authorities] == ["jjj-health"]
    region = manifest.to_region()
    assert region.name == "jjj"
    assert region.cities == (Member("beijing", "127.0.0.1:7401", "北京", "city"),
                             Member("tianjin", "127.0.0.1:7402", "tianjin", "city"))


def test_a_rejection_is_failed_precondition_with_a_stable_reason():
    error = ManifestRejected("rollback", "version 1 is older than the held version 2")
    assert error.status == grpc.StatusCode.FAILED_PRECONDITION
    assert error.reason == "MANIFEST_REJECTED" and error.why == "rollback"
    with pytest.raises(ValueError):
        ManifestRejected("because", "not a reason")


# One test per rule ----------------------------------------------------------------------------

def test_an_unsigned_manifest_is_refused():
    body = manifest_to_json(make_manifest())
    assert rejected(json.dumps({"manifest": body}).encode()) == "unsigned"
    assert rejected(json.dumps({"manifest": body, "signature": None}).encode()) == "unsigned"
    assert rejected(signed_file(body, value="")) == "unsigned"


def test_a_manifest_with_a_tampered_member_endpoint_is_refused():
    data = sign_manifest(make_manifest(), ROOT)

    def redirect(document):
        document["manifest"]["members"][1]["endpoint"] = "203.0.113.9:7402"

    assert rejected(edited(data, redirect)) == "bad_signature"


def test_a_manifest_with_a_tampered_signature_is_refused():
    data = sign_manifest(make_manifest(), ROOT)

    def flip(document):
        value = document["signature"]["value"]
        document["signature"]["value"] = ("A" if value[0] != "A" else "B") + value[1:]

    assert rejected(edited(data, flip)) == "bad_signature"
    assert rejected(edited(data, lambda d: d["signature"].update(value="!!"))) == "bad_signature"


def test_a_manifest_signed_by_another_root_is_refused():
    body = manifest_to_json(make_manifest())
    assert rejected(signed_file(body, key=OTHER_ROOT)) == "bad_signature"
    # Claiming the pinned root's key id does not help: the signature still does not verify.
    assert rejected(signed_file(body, key=OTHER_ROOT, kid=key_id(ROOT.public_key()))) == (
        "bad_signature")


def test_a_manifest_signed_with_another_algorithm_is_refused():
    body = manifest_to_json(make_manifest())
    assert rejected(signed_file(body, alg="ES256")) == "wrong_algorithm"
    assert rejected(signed_file(body, alg="none", value="")) == "wrong_algorithm"


def test_an_expired_manifest_is_refused():
    data = sign_manifest(make_manifest(), ROOT)
    assert verify_manifest(data, ROOT.public_key(), now=EXPIRES).version == 1
    assert rejected(data, now=EXPIRES + timedelta(seconds=1)) == "expired"


def test_a_manifest_issued_in_the_future_is_refused_beyond_five_minutes_of_skew():
    data = sign_manifest(make_manifest(), ROOT)
    assert verify_manifest(data, ROOT.public_key(), now=ISSUED - timedelta(minutes=4)).version
    assert rejected(data, now=ISSUED - timedelta(minutes=6)) == "not_yet_valid"


def test_a_manifest_older_than_the_held_one_is_refused():
    held = make_manifest(version=3)
    assert rejected(sign_manifest(make_manifest(version=2), ROOT), held=held) == "rollback"
    newer = sign_manifest(make_manifest(version=4), ROOT)
    assert verify_manifest(newer, ROOT.public_key(), now=NOW, held=held).version == 4


def test_a_different_manifest_with_the_held_version_is_refused():
    held = make_manifest(version=3)
    changed = make_manifest(version=3, expires_at=EXPIRES + timedelta(days=1))
    assert rejected(sign_manifest(changed, ROOT), held=held) == "rollback"
    same = sign_manifest(make_manifest(version=3), ROOT)
    assert verify_manifest(same, ROOT.public_key(), now=NOW, held=held) == held


def test_a_manifest_for_another_region_is_refused():
    held = make_manifest(version=1)
    other = sign_manifest(make_manifest(version=2, region="yrd"), ROOT)
    assert rejected(other, held=held) == "wrong_region"


def test_a_manifest_of_another_format_is_refused():
    body = manifest_to_json(make_manifest()) | {"format": "cityfed.manifest.v2"}
    assert rejected(signed_file(body)) == "malformed"


def _set(path: tuple, value):
    def change(body):
        target = body
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value
    return change


def _drop(path: tuple):
    def change(body):
        target = body
        for step in path[:-1]:
            target = target[step]
        del target[path[-1]]
    return change


def _duplicate_member(body):
    body["members"].append(copy.deepcopy(body["members"][0]))


def _reuse_key(body):
    body["members"][1]["keys"] = copy.deepcopy(body["members"][0]["keys"])


@pytest.mark.parametrize("change", [
    pytest.param(_drop(("members", 0, "groups")), id="missing field"),
    pytest.param(_drop(("expires_at",)), id="missing expiry"),
    pytest.param(_set(("members", 0, "nickname"), "bj"), id="unknown field"),
    pytest.param(_set(("members", 0, "role"), "admin"), id="bad role"),
    pytest.param(_duplicate_member, id="duplicate member id"),
    pytest.param(_reuse_key, id="duplicate kid"),
    pytest.param(_set(("issued_at",), "2026-11-26 10:00:00"), id="time without zone"),
    pytest.param(_set(("expires_at",), "2026-02-30T10:00:00Z"), id="no such date"),
    pytest.param(_set(("expires_at",), "2026-11-25T10:00:00Z"), id="expires before issued"),
    pytest.param(_set(("version",), "2"), id="version as text"),
    pytest.param(_set(("version",), True), id="version as boolean"),
    pytest.param(_set(("members",), []), id="no members"),
    pytest.param(_set(("members", 0, "endpoint"), ""), id="city without endpoint"),
    pytest.param(_set(("members", 0, "id"), "Beijing"), id="id not a dns label"),
    pytest.param(_set(("members", 0, "tls_fingerprint"), "AB" * 32), id="fingerprint case"),
    pytest.param(_set(("members", 0, "keys", 0, "kid"), "not-its-key-id"), id="kid not derived"),
    pytest.param(_set(("members", 0, "keys", 0, "not_after"), "2026-11-26T09:00:00Z"),
                 id="key ends before it starts"),
    pytest.param(_set(("members", 0, "keys"), []), id="member without key"),
    pytest.param(_set(("members", 0, "name"), "北京\x1b[31m"), id="control character"),
])
def test_a_signed_but_malformed_manifest_is_refused(change):
    body = manifest_to_json(make_manifest())
    change(body)
    assert rejected(signed_file(body)) == "malformed"


def test_a_file_that_is_not_json_or_repeats_a_key_is_refused():
    assert rejected(b"{not json") == "malformed"
    assert rejected(b"\xff\xfe") == "malformed"
    assert rejected(b"[]") == "malformed"
    data = sign_manifest(make_manifest(), ROOT).decode()
    repeated = data.replace('"region": "jjj"', '"region": "evil", "region": "jjj"', 1)
    assert repeated != data
    assert rejected(repeated.encode()) == "malformed"


@st.composite
def _shuffled(draw, value):
    """The same JSON value with every object's keys in a drawn order."""
    if isinstance(value, dict):
        order = draw(st.permutations(list(value)))
        return {key: draw(_shuffled(value[key])) for key in order}
    if isinstance(value, list):
        return [draw(_shuffled(item)) for item in value]
    return value


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children,
                                                                      max_size=4),
    max_leaves=20)


@settings(max_examples=50, deadline=None)
@given(st.data())
def test_canonical_json_does_not_depend_on_key_order(data):
    value = data.draw(_JSON)
    assert canonical_json(data.draw(_shuffled(value))) == canonical_json(value)


_SIGNED = sign_manifest(make_manifest(), ROOT)


@settings(max_examples=25, deadline=None)
@given(st.data())
def test_a_signed_manifest_verifies_whatever_the_key_order_in_the_file(data):
    document = data.draw(_shuffled(json.loads(_SIGNED)))
    shuffled = json.dumps(document, ensure_ascii=False).encode()
    assert verify_manifest(shuffled, ROOT.public_key(), now=NOW) == make_manifest()


# Key rotation ---------------------------------------------------------------------------------

def test_a_rotated_key_is_valid_from_its_start_and_the_old_one_until_its_grace_ends(tmp_path):
    result = init_region(tmp_path, region="jjj", cities=[("tianjin", "天津")], authorities=[],
                         now=ISSUED)
    root = read_public_key(result.root_public_key)
    first = verify_manifest(result.manifest.read_bytes(), root, now=NOW)
    old_kid = first.member("tianjin").keys[0].kid
    rotated_at = NOW
    key_path = rotate_member_key(tmp_path, "tianjin", rotated_at, old_key_grace=timedelta(hours=1))

    second = verify_manifest(result.manifest.read_bytes(), root, now=NOW, held=first)
    assert second.version == 2 and second.issued_at == rotated_at
    assert second.expires_at - second.issued_at == first.expires_at - first.issued_at
    new_key = read_private_key(key_path)
    new_kid = key_id(new_key.public_key())
    assert key_path == result.member("tianjin").signing_key
    assert stat.S_IMODE(os.stat(key_path).st_mode) == 0o600
    assert [k.kid for k in second.member("tianjin").keys] == [old_kid, new_kid]

    grace_end = rotated_at + timedelta(hours=1)
    assert second.signing_key(new_kid, rotated_at - timedelta(seconds=1)) is None
    assert second.signing_key(new_kid, rotated_at)[0].id == "tianjin"
    assert second.signing_key(old_kid, grace_end - timedelta(seconds=1))[0].id == "tianjin"
    assert second.signing_key(old_kid, grace_end) is None
    assert second.signing_key(new_kid, grace_end + timedelta(days=1))[1].kid == new_kid


# The held copy --------------------------------------------------------------------------------

def test_the_store_keeps_the_last_manifest_and_refuses_a_rollback_after_a_restart(tmp_path):
    version_1 = sign_manifest(make_manifest(version=1), ROOT)
    version_2 = sign_manifest(make_manifest(version=2), ROOT)
    store = ManifestStore(tmp_path / "state", ROOT.public_key())
    assert store.held is None
    with pytest.raises(ConfigError, match="no manifest"):
        store.current(NOW)
    store.accept(version_1, now=NOW)
    assert store.accept(version_2, now=NOW).version == 2

    restarted = ManifestStore(tmp_path / "state", ROOT.public_key())
    assert restarted.held.version == 2 and restarted.current(NOW).version == 2
    with pytest.raises(ManifestRejected) as refusal:
        restarted.accept(version_1, now=NOW)
    assert refusal.value.why == "rollback"
    assert (tmp_path / "state" / "manifest.json").read_bytes() == version_2


def test_an_expired_held_manifest_still_guards_against_rollback(tmp_path):
    later = EXPIRES + timedelta(days=1)
    old = make_manifest(version=1, expires_at=later + timedelta(days=30))
    store = ManifestStore(tmp_path, ROOT.public_key())
    store.accept(sign_manifest(make_manifest(version=2), ROOT), now=NOW)

    restarted = ManifestStore(tmp_path, ROOT.public_key())
    assert restarted.held.version == 2
    with pytest.raises(ManifestRejected, match="expired"):
        restarted.current(later)
    with pytest.raises(ManifestRejected) as refusal:
        restarted.accept(sign_manifest(old, ROOT), now=later)
    assert refusal.value.why == "rollback"


def test_a_held_manifest_that_no_longer_verifies_stops_the_store(tmp_path):
    ManifestStore(tmp_path, ROOT.public_key()).accept(sign_manifest(make_manifest(), ROOT),
                                                     now=NOW)
    path = tmp_path / "manifest.json"
    path.write_bytes(path.read_bytes().replace(b"127.0.0.1:7402", b"127.0.0.1:7499"))
    with pytest.raises(ManifestRejected, match=r"manifest\.json") as refusal:
        ManifestStore(tmp_path, ROOT.public_key())
    assert refusal.value.why == "bad_signature"


# A region in one command ----------------------------------------------------------------------

def test_init_region_creates_keys_certificates_and_a_manifest_that_verifies(tmp_path):
    result = init_region(tmp_path / "region", region="jjj",
                         cities=[("beijing", "北京"), ("tianjin", "天津")],
                         authorities=[("jjj-health", "jjj-health")], base_port=7501)
    secrets = [result.root_key, result.ca_key,
               *(p for m in result.members for p in (m.signing_key, m.tls_key))]
    assert len(secrets) == 8
    assert all(stat.S_IMODE(os.stat(p).st_mode) == 0o600 for p in secrets)
    assert stat.S_IMODE(os.stat(result.root_key.parent).st_mode) == 0o700
    assert len(result.root_public_key.read_text().strip()) == 43

    manifest = verify_manifest(result.manifest.read_bytes(),
                               read_public_key(result.root_public_key),
                               now=datetime.now(UTC))
    assert manifest.version == 1 and manifest.region == "jjj"
    assert manifest.purposes == DEFAULT_PURPOSES
    assert [(m.id, m.role, m.endpoint, m.groups) for m in manifest.members] == [
        ("beijing", "city", "127.0.0.1:7501", ("cities",)),
        ("tianjin", "city", "127.0.0.1:7502", ("cities",)),
        ("jjj-health", "authority", "", ("authorities",)),
    ]
    for files in result.members:
        listed = manifest.member(files.id)
        assert listed.tls_fingerprint == certificate_fingerprint(
            read_certificate(files.tls_certificate))
        assert listed.keys[0].kid == key_id(read_private_key(files.signing_key).public_key())
    assert manifest.to_region().cities[0].name == "北京"


def test_init_region_refuses_to_replace_a_root_key_unless_forced(tmp_path):
    first = init_region(tmp_path, region="jjj", cities=[("tianjin", "天津")], authorities=[])
    root = first.root_key.read_bytes()
    with pytest.raises(ConfigError, match=r"root\.key: the region already has a root key"):
        init_region(tmp_path, region="jjj", cities=[("tianjin", "天津")], authorities=[])
    assert first.root_key.read_bytes() == root
    init_region(tmp_path, region="jjj", cities=[("tianjin", "天津")], authorities=[], force=True)
    assert first.root_key.read_bytes() != root


# The commands ---------------------------------------------------------------------------------

def run(*argv: str) -> tuple[int, str]:
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command", required=True)
    trust_cli.add_region_init(commands.add_parser("region").add_subparsers(dest="sub"))
    trust_cli.add_commands(commands)
    args = parser.parse_args(argv)
    out = io.StringIO()
    return args.run(args, out, io.StringIO()), out.getvalue()


def test_the_manifest_commands_sign_verify_and_show(tmp_path):
    region = tmp_path / "region"
    code, said = run("region", "init", str(region), "--region", "jjj", "--cities",
                     "beijing,tianjin", "--authority", "jjj-health")
    assert code == 0 and "2 cities, 1 authorities" in said
    manifest, pub = region / "manifest.json", region / "root" / "root.pub"
    version_2 = tmp_path / "v2.json"
    code, said = run("manifest", "sign", str(manifest), "--root-key",
                     str(region / "root" / "root.key"), "--bump-version", "--out",
                     str(version_2))
    assert code == 0 and "version 2" in said
    assert run("manifest", "verify", str(version_2), "--root-public-key", str(pub),
               "--held", str(manifest))[1].startswith("OK region jjj, version 2")
    code, said = run("manifest", "verify", str(manifest), "--root-public-key", str(pub),
                     "--held", str(version_2))
    assert code == 1 and said.startswith("REJECTED rollback:")
    code, said = run("manifest", "show", str(version_2), "--root-public-key", str(pub))
    assert code == 0 and "北京" in said and "jjj-health" in said and "verified" in said
    assert "pension-fraud-check" in said
