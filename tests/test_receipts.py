"""Signed receipts: the city proves what it answered, the caller proves what it received."""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from federation.trust.canonical import canonical_json
from federation.trust.keys import (
    b64url_decode,
    b64url_encode,
    generate_signing_key,
    key_id,
    read_private_key,
)
from federation.trust.receipts import (
    Receipt,
    ReceiptInvalid,
    sha256_hex,
    sign_receipt,
    verify_receipt,
)
from federation.trust.region_init import init_region

PLAN, RESPONSE = b"plan bytes", b"response bytes"


@pytest.fixture(scope="module")
def region(tmp_path_factory):
    directory = tmp_path_factory.mktemp("receipts")
    init_region(directory, region="test", cities=[("tianjin", "tianjin"), ("beijing", "beijing")],
                authorities=[("auditor", "auditor")])
    from federation.trust.identity import RegionDirectory

    manifest, _ = RegionDirectory(directory).open_as("auditor")
    return directory, manifest


def signed(region, city: str = "tianjin", **changes) -> Receipt:
    directory, _ = region
    key = read_private_key(directory / "members" / city / "signing.key")
    options = {"key": key, "kid": key_id(key.public_key()), "city": city, "jti": "j" * 22,
               "plan_bytes": PLAN, "response_bytes": RESPONSE, "audit_index": 41, **changes}
    return sign_receipt(**options)


def check(region, receipt: Receipt, plan: bytes = PLAN, response: bytes = RESPONSE) -> None:
    verify_receipt(receipt, manifest=region[1], city="tianjin", plan_bytes=plan,
                   response_bytes=response)


def test_a_receipt_verifies_with_only_the_manifest_also_after_a_round_trip(region):
    receipt = signed(region)
    check(region, receipt)
    check(region, Receipt.from_json(receipt.to_json()))
    assert receipt.audit_index == 41


def test_an_altered_response_fails(region):
    with pytest.raises(ReceiptInvalid, match="another response"):
        check(region, signed(region), response=RESPONSE + b"!")


def test_an_altered_request_fails(region):
    with pytest.raises(ReceiptInvalid, match="another request"):
        check(region, signed(region), plan=b"other plan")


@pytest.mark.parametrize(("field", "value"), [
    ("audit_index", 40), ("jti", "k" * 22), ("time", "a minute later"),
])
def test_an_edited_field_breaks_the_signature(region, field, value):
    receipt = signed(region)
    if field == "time":
        later = datetime.fromisoformat(receipt.time.replace("Z", "+00:00")) + timedelta(minutes=1)
        value = later.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    edited = dataclasses.replace(receipt, **{field: value})
    with pytest.raises(ReceiptInvalid, match="signature does not verify"):
        check(region, edited)


def test_another_citys_receipt_fails(region):
    with pytest.raises(ReceiptInvalid, match="not tianjin"):
        check(region, signed(region, city="beijing"))


def test_a_key_the_manifest_does_not_list_fails(region):
    stranger = generate_signing_key()
    receipt = signed(region, key=stranger, kid=key_id(stranger.public_key()))
    with pytest.raises(ReceiptInvalid, match="was not a key of tianjin"):
        check(region, receipt)


def test_a_receipt_dated_before_the_key_was_valid_fails(region):
    receipt = signed(region, now=datetime.now(UTC) - timedelta(days=400))
    with pytest.raises(ReceiptInvalid, match="was not a key"):
        check(region, receipt)


def test_garbage_is_not_a_receipt():
    with pytest.raises(ReceiptInvalid):
        Receipt.from_json("{not json")
    with pytest.raises(ReceiptInvalid):
        Receipt.from_json('{"city": 1}')


def test_a_receipt_names_the_plan_hash_plan_sha256_and_keeps_the_old_name_filled(region):
    members = json.loads(signed(region).to_json())
    assert members["plan_sha256"] == members["request_sha256"] == sha256_hex(PLAN)
    assert set(members) == {"city", "kid", "jti", "plan_sha256", "request_sha256",
                            "response_sha256", "audit_index", "time", "signature"}


def test_the_signature_covers_every_member_but_the_signature_as_documented(region):
    """docs/audit.md: the signed bytes are the canonical JSON of the object without
    `signature`; computed here from the JSON alone, not from the Receipt class."""
    receipt = signed(region)
    members = json.loads(receipt.to_json())
    signature = b64url_decode(members.pop("signature"))
    public_key = read_private_key(region[0] / "members/tianjin/signing.key").public_key()
    public_key.verify(signature, json.dumps(members, sort_keys=True, separators=(",", ":"),
                                            ensure_ascii=False).encode())
    with pytest.raises(ReceiptInvalid, match="signature does not verify"):
        check(region, Receipt.from_json(json.dumps({**members, "jti": "k" * 22,
                                                    "signature": b64url_encode(signature)})))


def _signed_members(region, members: dict) -> str:
    key = read_private_key(region[0] / "members/tianjin/signing.key")
    members = {**members, "kid": key_id(key.public_key())}
    members["signature"] = b64url_encode(key.sign(canonical_json(members)))
    return json.dumps(members)


def test_a_receipt_of_a_node_before_plan_sha256_still_verifies(region):
    members = json.loads(signed(region).to_json())
    del members["plan_sha256"], members["signature"]
    old = Receipt.from_json(_signed_members(region, members))
    check(region, old)
    assert "plan_sha256" not in json.loads(old.to_json())


def test_members_added_later_are_signed_and_kept(region):
    members = json.loads(signed(region).to_json())
    del members["signature"]
    newer = Receipt.from_json(_signed_members(region, {**members, "model": {"v": 2}}))
    check(region, newer)
    assert json.loads(newer.to_json())["model"] == {"v": 2}
    tampered = json.loads(newer.to_json()) | {"model": {"v": 3}}
    with pytest.raises(ReceiptInvalid, match="signature does not verify"):
        check(region, Receipt.from_json(json.dumps(tampered)))


def test_plan_hashes_under_both_names_must_agree(region):
    members = json.loads(signed(region).to_json()) | {"request_sha256": "0" * 64}
    with pytest.raises(ReceiptInvalid, match="differ"):
        Receipt.from_json(json.dumps(members))


def test_the_example_in_docs_audit_md_verifies_as_the_page_says():
    page = (Path(__file__).resolve().parent.parent / "docs/audit.md").read_text()
    section = page[page.index("## Receipts"):page.index("## The files")]
    example = re.search(r"```json\n(.*?)\n```", section, re.S)[1]
    signed_text = re.search(r"```text\n(.*?)\n```", section, re.S)[1]
    public_text = re.search(r"public key `([A-Za-z0-9_-]{43})`", section)[1]
    receipt = Receipt.from_json(example)
    assert receipt.signed_bytes() == signed_text.encode()
    assert receipt.to_json() == example
    public_key = Ed25519PublicKey.from_public_bytes(b64url_decode(public_text))
    public_key.verify(b64url_decode(receipt.signature), signed_text.encode())
    assert receipt.plan_sha256 == sha256_hex(b"\x0a\x0apopulation")
    assert receipt.response_sha256 == sha256_hex(b"")
