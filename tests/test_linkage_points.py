"""The arithmetic of record linkage: hashing onto X25519, blinding, and the owner's tag tables."""

from __future__ import annotations

import hashlib
import itertools
import os
import random
import signal
import threading
import time
from concurrent.futures.process import BrokenProcessPool

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from federation.errors import InvalidArgument
from federation.linkage import tags
from federation.linkage.points import (
    CHUNK_POINTS,
    LOW_ORDER_POINT,
    NOT_WHOLE_POINTS,
    POINT_BYTES,
    Blinder,
    InvalidPoints,
    dummy_identifiers,
    hash_to_point,
    new_scalar,
    x25519_seconds_per_op,
)
from federation.linkage.tags import TAG_BYTES, TagList, TagSet

P = 2**255 - 19
A = 486662
LOW_ORDER = [bytes(32), (1).to_bytes(32, "little"), (P - 1).to_bytes(32, "little")]


@pytest.fixture(scope="module")
def blinder():
    with Blinder(workers=2) as b:
        yield b


def on_curve(point: bytes) -> bool:
    """Whether the u-coordinate is on Curve25519 itself rather than on its twist."""
    u = (int.from_bytes(point, "little") & ((1 << 255) - 1)) % P
    rhs = (u * u * u + A * u * u + u) % P
    return rhs == 0 or pow(rhs, (P - 1) // 2, P) == 1


def points_of(buffer: bytes) -> list[bytes]:
    return [buffer[i:i + POINT_BYTES] for i in range(0, len(buffer), POINT_BYTES)]


def test_a_point_is_sha256_of_the_domain_and_the_identifier():
    assert hash_to_point("张伟 1984") == hashlib.sha256(
        b"cityfed-linkage-v1\x00" + "张伟 1984".encode()).digest()
    assert len(new_scalar()) == 32 and new_scalar() != new_scalar()


def test_blinding_commutes_on_the_curve_and_on_its_twist(blinder):
    ids = [f"id-{i}" for i in range(300)] + ["", "é漢字"]
    kinds = {on_curve(hash_to_point(i)) for i in ids}
    assert kinds == {True, False}
    a, b = new_scalar(), new_scalar()
    a_first, b_first = blinder.hash_and_blind(a, ids), blinder.hash_and_blind(b, ids)
    assert len(a_first) == len(ids) * POINT_BYTES
    assert blinder.blind(b, a_first) == blinder.blind(a, b_first)
    hashed = b"".join(hash_to_point(i) for i in ids)
    assert blinder.blind(a, hashed) == a_first
    assert blinder.hash_and_blind(a, []) == b"" == blinder.blind(a, b"")


def test_different_identifiers_give_different_points(blinder):
    ids = [f"{i}" for i in range(2000)] + dummy_identifiers(500)
    points = points_of(blinder.hash_and_blind(new_scalar(), ids))
    assert len(set(points)) == len(ids)


def test_dummies_are_apart_from_real_identifiers():
    dummies = dummy_identifiers(100)
    assert len(set(dummies)) == 100
    assert all(d.startswith("\x00dummy:") and len(d) == 39 for d in dummies)


def test_points_not_whole_are_refused_without_quoting_them(blinder):
    scalar = new_scalar()
    for bad in (b"\xab" * 31, b"\xab" * 33, b"\xab" * 65):
        with pytest.raises(InvalidPoints) as raised:
            blinder.blind(scalar, bad)
        assert str(raised.value) == NOT_WHOLE_POINTS
        for table_call in (TagSet().add, TagSet().contains, lambda p: TagList(1).put(0, p)):
            with pytest.raises(InvalidPoints, match=NOT_WHOLE_POINTS):
                table_call(bad)
    assert issubclass(InvalidPoints, InvalidArgument)
    assert InvalidPoints.reason == "LINKAGE_INVALID_POINTS"


@pytest.mark.parametrize("point", LOW_ORDER, ids=["zero", "one", "minus-one"])
def test_a_low_order_point_is_invalid_points_with_a_fixed_message(blinder, point):
    good = blinder.hash_and_blind(new_scalar(), ["x", "y"])
    with pytest.raises(InvalidPoints) as raised:
        blinder.blind(new_scalar(), good + point)
    assert str(raised.value) == LOW_ORDER_POINT
    assert point.hex() not in str(raised.value) and good[:16].hex() not in str(raised.value)
    assert raised.value.__cause__ is None and raised.value.__context__ is None
    stream = blinder.blind_stream(new_scalar(), [good, point, good])
    assert len(next(stream)) == len(good)
    with pytest.raises(InvalidPoints, match=LOW_ORDER_POINT):
        next(stream)


def test_a_stream_keeps_order_with_a_slow_consumer_and_a_blocking_input(blinder):
    scalar = new_scalar()
    chunks = [blinder.hash_and_blind(new_scalar(), [f"{c}-{i}" for i in range(c % 5 + 1)])
              for c in range(12)]

    def blocking():
        for index, chunk in enumerate(chunks):
            if index % 4 == 0:
                time.sleep(0.05)  # a request stream waiting for the network
            yield chunk

    out = []
    for blinded in blinder.blind_stream(scalar, blocking()):
        time.sleep(0.01)
        out.append(blinded)
    assert out == [blinder.blind(scalar, c) for c in chunks]
    batches = [[f"{b}-{i}" for i in range(b + 1)] for b in range(6)]
    assert list(blinder.hash_and_blind_stream(scalar, iter(batches))) == [
        blinder.hash_and_blind(scalar, batch) for batch in batches]


def test_a_stream_reads_at_most_its_window_ahead_of_the_consumer(blinder):
    chunk = blinder.hash_and_blind(new_scalar(), ["a", "b"])
    reads = itertools.count(1)
    read = 0

    def endless():
        nonlocal read
        while True:
            read = next(reads)
            yield chunk

    stream = blinder.blind_stream(new_scalar(), endless())
    leads = []
    for taken, _ in enumerate(itertools.islice(stream, 20), start=1):
        time.sleep(0.02)
        leads.append(read - taken)
    stream.close()
    assert max(leads) <= blinder.in_flight
    assert max(leads) >= 2  # it does read ahead, to keep the workers busy
    time.sleep(0.1)
    stopped_at = read
    time.sleep(0.1)
    assert read == stopped_at  # a closed stream reads no more


def test_threads_share_one_blinder(blinder):
    ids = [f"t{i}" for i in range(600)]
    scalars = [new_scalar() for _ in range(3)]
    expected = [blinder.hash_and_blind(s, ids) for s in scalars]
    results = [b""] * 3

    def run(k):
        batches = [ids[i:i + 100] for i in range(0, len(ids), 100)]
        results[k] = b"".join(blinder.hash_and_blind_stream(scalars[k], batches))

    threads = [threading.Thread(target=run, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == expected


def test_large_inputs_are_cut_into_tasks_of_at_most_a_chunk():
    b = Blinder(workers=2)
    assert b._task_size(0) == b._task_size(10) == 256
    assert b._task_size(4000) == 2000
    for points in (10**5, 10**6, 2 * CHUNK_POINTS + 1):
        size = b._task_size(points)
        assert size <= CHUNK_POINTS and -(-points // size) % 2 == 0
    b.close()
    with pytest.raises(RuntimeError):
        b.blind(new_scalar(), b"")


def test_a_pool_whose_worker_died_is_replaced():
    with Blinder(workers=1) as b:
        scalar = new_scalar()
        expected = b.hash_and_blind(scalar, ["a"])
        for pid in list(b._executor._processes):
            os.kill(pid, signal.SIGKILL)
        with pytest.raises(BrokenProcessPool):
            b.hash_and_blind(scalar, ["a"])
        assert b.hash_and_blind(scalar, ["a"]) == expected


def test_x25519_time_is_measured():
    assert 0 < x25519_seconds_per_op(samples=200) < 0.01


def tag_points(prefixes: list[bytes]) -> bytes:
    """Points whose tags are the given 16-byte prefixes, with random tails."""
    return b"".join(p + random.randbytes(POINT_BYTES - TAG_BYTES) for p in prefixes)


def test_tags_compare_all_sixteen_bytes_and_nothing_more():
    base = bytes(range(16))
    near = base[:8] + bytes(8)  # same first word, different second
    far = bytes(8) + base[8:]  # same second word, different first
    collision = base[:8] + b"\xff" * 8  # a second tag sharing the first word
    tagset = TagSet()
    tagset.add(tag_points([base, collision, base, b"\x01" * 16]))
    tagset.freeze()
    assert len(tagset) == 4
    queries = [base, near, far, collision, base[:8] + b"\xfe" * 8, b"\x01" * 16, b"\x02" * 16]
    assert tagset.contains(tag_points(queries)).tolist() == [
        True, False, False, True, False, True, False]
    with pytest.raises(RuntimeError):
        tagset.add(tag_points([base]))


def test_an_unfrozen_or_empty_tag_set():
    tagset = TagSet()
    with pytest.raises(RuntimeError):
        tagset.contains(tag_points([bytes(16)]))
    tagset.freeze()
    assert tagset.contains(tag_points([bytes(16)])).tolist() == [False]
    assert tagset.contains(b"").tolist() == []


def test_tag_tables_across_slabs_and_query_blocks(monkeypatch):
    monkeypatch.setattr(tags, "SLAB_TAGS", 7)
    monkeypatch.setattr(tags, "QUERY_BLOCK", 5)
    rng = random.Random(7)
    # first words from a small range, so that runs of equal first words are common
    members = {rng.randrange(20).to_bytes(8, "little") + rng.randbytes(8) for _ in range(60)}
    others = {rng.randrange(20).to_bytes(8, "little") + rng.randbytes(8) for _ in range(60)}
    others -= members
    tagset = TagSet()
    members_list = sorted(members)
    for i in range(0, len(members_list), 3):
        tagset.add(tag_points(members_list[i:i + 3] * 2))  # every tag twice
    tagset.freeze()
    queries = [*members_list, *others]
    rng.shuffle(queries)
    assert tagset.contains(tag_points(queries)).tolist() == [q in members for q in queries]
    taglist = TagList(len(queries), chunk_points=4)
    pieces = [queries[i:i + 4] for i in range(0, len(queries), 4)]
    for index in rng.sample(range(len(pieces)), len(pieces)):
        taglist.put(index, tag_points(pieces[index]))
    assert len(taglist) == len(queries)
    assert taglist.matches(tagset).tolist() == [i for i, q in enumerate(queries) if q in members]


def test_a_tag_list_with_a_gap_a_repeat_or_a_wrong_size_is_invalid():
    tagset = TagSet()
    tagset.freeze()
    taglist = TagList(5, chunk_points=2)
    taglist.put(0, tag_points([bytes(16)] * 2))
    taglist.put(2, tag_points([bytes(16)]))
    with pytest.raises(InvalidPoints, match="missing"):
        taglist.matches(tagset)
    for index, count, message in [(2, 1, "twice"), (3, 2, "out of range"),
                                  (-1, 2, "out of range"), (1, 1, "wrong number"),
                                  (1, 3, "wrong number")]:
        with pytest.raises(InvalidPoints, match=message):
            taglist.put(index, tag_points([bytes(16)] * count))
    taglist.put(1, tag_points([b"\x01" * 16] * 2))
    assert len(taglist) == 5
    assert taglist.matches(tagset).tolist() == []
    assert TagList(0).matches(tagset).tolist() == []


def test_tags_take_sixteen_bytes_each():
    tagset = TagSet()
    tagset.add(random.randbytes(POINT_BYTES * 1000))
    tagset.freeze()
    assert tagset._hi.nbytes + tagset._lo.nbytes == 16 * 1000
    taglist = TagList(1000)
    assert taglist._hi.nbytes + taglist._lo.nbytes == 16 * 1000


identifiers = st.sets(st.text(max_size=12), max_size=25)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(common=identifiers, owner_only=identifiers, partner_only=identifiers,
       chunk=st.integers(1, 9), seed=st.integers(0, 2**32))
def test_psi_equals_the_set_intersection(blinder, common, owner_only, partner_only, chunk, seed):
    owner = sorted(common | owner_only)
    partner = sorted(common | partner_only)
    random.Random(seed).shuffle(owner)
    a, b = new_scalar(), new_scalar()
    owner_once = blinder.hash_and_blind(a, owner)  # sent to the partner
    partner_once = blinder.hash_and_blind(b, partner)  # sent to the owner
    tagset = TagSet()
    tagset.add(blinder.blind(a, partner_once))
    tagset.freeze()
    owner_twice = blinder.blind(b, owner_once)  # sent back to the owner, in chunks
    pieces = [owner_twice[i:i + chunk * POINT_BYTES]
              for i in range(0, len(owner_twice), chunk * POINT_BYTES)]
    taglist = TagList(len(owner), chunk_points=chunk)
    for index in random.Random(seed).sample(range(len(pieces)), len(pieces)):
        taglist.put(index, pieces[index])
    positions = taglist.matches(tagset)
    assert positions.dtype == np.int64
    assert {owner[i] for i in positions} == set(owner) & set(partner)
