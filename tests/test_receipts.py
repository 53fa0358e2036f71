"""Signed receipts: the city proves what it answered, the caller proves what it received."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from federation.keys import generate_signing_key, key_id, read_private_key
from federation.receipts import Receipt, ReceiptInvalid, sign_receipt, verify_receipt
from federation.region_init import init_region

PLAN, RESPONSE = b"plan bytes", b"response bytes"


@pytest.fixture(scope="module")
def region(tmp_path_factory):
    directory = tmp_path_factory.mktemp("receipts")
    init_region(directory, region="test", cities=[("tianjin", "tianjin"), ("beijing", "beijing")],
                authorities=[("auditor", "auditor")])
    from federation.identity import RegionDirectory

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
