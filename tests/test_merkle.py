"""The RFC 9162 Merkle tree: known answers, and every proof verifying while any change to it,
its root, index or sizes makes it fail."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from federation.trust.merkle import (
    EMPTY_ROOT,
    TreeBuilder,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root,
    verify_consistency,
    verify_inclusion,
)

# Known answers for RFC 6962 trees (the same tree as RFC 9162), as published by
# transparency-dev/merkle (testonly/constants.go and testonly/reference_test.go).
INPUTS = [bytes.fromhex(h) for h in ("", "00", "10", "2021", "3031", "40414243",
                                     "5051525354555657", "606162636465666768696a6b6c6d6e6f")]
ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
INCLUSION = {  # (index, size): proof
    (0, 1): [],
    (0, 2): ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"],
    (1, 2): ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"],
    (2, 3): ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
    (1, 5): ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
             "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
             "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"],
    (0, 8): ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
             "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
             "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"],
    (5, 8): ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
             "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
             "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"],
}
CONSISTENCY = {  # (old size, new size): proof
    (1, 1): [],
    (1, 8): ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
             "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
             "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"],
    (2, 5): ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
             "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"],
    (6, 8): ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
             "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
             "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"],
}
LEAVES = [leaf_hash(data) for data in INPUTS]


def reference_root(leaves: list[bytes]) -> bytes:
    """MTH exactly as RFC 9162 2.1.1 defines it, recursively."""
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaves[0]
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return node_hash(reference_root(leaves[:k]), reference_root(leaves[k:]))


def flipped(value: bytes, byte: int = 0) -> bytes:
    return value[:byte] + bytes([value[byte] ^ 1]) + value[byte + 1:]


def test_known_roots():
    assert EMPTY_ROOT.hex() == ROOTS[0]
    for size, expected in enumerate(ROOTS):
        assert root(LEAVES[:size]).hex() == expected
        builder = TreeBuilder()
        for leaf in LEAVES[:size]:
            builder.append(leaf)
        assert builder.size == size and builder.root().hex() == expected


@pytest.mark.parametrize(("index", "size"), sorted(INCLUSION))
def test_known_inclusion_proofs(index, size):
    proof = inclusion_proof(LEAVES, index, size)
    assert [p.hex() for p in proof] == INCLUSION[index, size]
    assert verify_inclusion(LEAVES[index], index, size, proof, bytes.fromhex(ROOTS[size]))


@pytest.mark.parametrize(("old", "new"), sorted(CONSISTENCY))
def test_known_consistency_proofs(old, new):
    proof = consistency_proof(LEAVES, old, new)
    assert [p.hex() for p in proof] == CONSISTENCY[old, new]
    assert verify_consistency(old, new, bytes.fromhex(ROOTS[old]), bytes.fromhex(ROOTS[new]),
                              proof)


def test_leaf_and_node_hashes_are_domain_separated():
    assert leaf_hash(b"") == bytes.fromhex(ROOTS[1])
    assert node_hash(LEAVES[0], LEAVES[1]) == bytes.fromhex(ROOTS[2])
    assert leaf_hash(LEAVES[0] + LEAVES[1]) != node_hash(LEAVES[0], LEAVES[1])


def test_bad_arguments_are_refused_or_fail():
    with pytest.raises(ValueError):
        inclusion_proof(LEAVES, 3, 3)
    with pytest.raises(ValueError):
        inclusion_proof(LEAVES, 0, 9)
    with pytest.raises(ValueError):
        consistency_proof(LEAVES, 5, 4)
    with pytest.raises(ValueError):
        TreeBuilder().append(b"short")
    good = inclusion_proof(LEAVES, 1, 5)
    root5 = bytes.fromhex(ROOTS[5])
    assert not verify_inclusion(LEAVES[1], -1, 5, good, root5)
    assert not verify_inclusion(LEAVES[1], 1, 0, good, root5)
    assert not verify_inclusion(LEAVES[1][:31], 1, 5, good, root5)
    assert not verify_inclusion(LEAVES[1], 1, 5, [*good[:2], b"x"], root5)
    assert not verify_consistency(5, 4, root5, root5, [])
    assert not verify_consistency(3, 5, bytes.fromhex(ROOTS[3]), root5, [])
    # Equal sizes: an empty proof and equal roots; from the empty tree: an empty proof.
    assert verify_consistency(5, 5, root5, root5, [])
    assert not verify_consistency(5, 5, root5, bytes.fromhex(ROOTS[4]), [])
    assert not verify_consistency(5, 5, root5, root5, [root5])
    assert verify_consistency(0, 5, EMPTY_ROOT, root5, [])
    assert not verify_consistency(0, 5, EMPTY_ROOT, root5, [root5])


# Unique entries: with two equal leaves, a proof for one legitimately proves the other too.
entries = st.lists(st.binary(max_size=6), min_size=1, max_size=40, unique=True)


@settings(max_examples=60, deadline=None)
@given(entries)
def test_builder_and_root_match_the_definition(data):
    leaves = [leaf_hash(d) for d in data]
    builder = TreeBuilder()
    for size, leaf in enumerate(leaves, start=1):
        builder.append(leaf)
        assert builder.root() == root(leaves[:size]) == reference_root(leaves[:size])
    assert builder.copy().root() == builder.root()


@settings(max_examples=60, deadline=None)
@given(entries, st.data())
def test_every_inclusion_proof_verifies_and_any_change_fails(data, draw):
    leaves = [leaf_hash(d) for d in data]
    size = draw.draw(st.integers(1, len(leaves)), label="size")
    index = draw.draw(st.integers(0, size - 1), label="index")
    tree_root = root(leaves[:size])
    proof = inclusion_proof(leaves, index, size)
    assert verify_inclusion(leaves[index], index, size, proof, tree_root)

    assert not verify_inclusion(flipped(leaves[index]), index, size, proof, tree_root)
    assert not verify_inclusion(leaves[index], index, size, proof, flipped(tree_root, 31))
    for position in range(len(proof)):
        changed = [*proof[:position], flipped(proof[position], 7), *proof[position + 1:]]
        assert not verify_inclusion(leaves[index], index, size, changed, tree_root)
    assert not verify_inclusion(leaves[index], index, size, proof[:-1], tree_root) or not proof
    assert not verify_inclusion(leaves[index], index, size, [*proof, tree_root], tree_root)
    for other in range(size + 2):
        if other != index:
            assert not verify_inclusion(leaves[index], other, size, proof, tree_root)
    # A root commits to the leaves, not to the size (the checkpoint signs the size): another
    # size passes only where its honest proof has the same shape, and its root differs.
    for other in range(1, len(leaves) + 1):
        if other != size and verify_inclusion(leaves[index], index, other, proof, tree_root):
            assert len(inclusion_proof(leaves, index, other)) == len(proof)
            assert root(leaves[:other]) != tree_root


@settings(max_examples=60, deadline=None)
@given(entries, st.data())
def test_every_consistency_proof_verifies_and_any_change_fails(data, draw):
    leaves = [leaf_hash(d) for d in data]
    new = draw.draw(st.integers(1, len(leaves)), label="new size")
    old = draw.draw(st.integers(1, new), label="old size")
    old_root, new_root = root(leaves[:old]), root(leaves[:new])
    proof = consistency_proof(leaves, old, new)
    assert verify_consistency(old, new, old_root, new_root, proof)

    assert not verify_consistency(old, new, flipped(old_root), new_root, proof)
    assert not verify_consistency(old, new, old_root, flipped(new_root), proof)
    for position in range(len(proof)):
        changed = [*proof[:position], flipped(proof[position], 3), *proof[position + 1:]]
        assert not verify_consistency(old, new, old_root, new_root, changed)
    if proof:
        assert not verify_consistency(old, new, old_root, new_root, proof[:-1])
    assert not verify_consistency(old, new, old_root, new_root, [*proof, new_root])
    # A different, untouched tree is never consistent with this one.
    other = [leaf_hash(b"other" + d) for d in data[:new]]
    if old < new:
        assert not verify_consistency(old, new, old_root, root(other), proof)
    for other_old in range(0, len(leaves) + 1):
        for other_new in range(other_old, len(leaves) + 1):
            if (other_old, other_new) == (old, new):
                continue
            if verify_consistency(other_old, other_new, old_root, new_root, proof):
                honest = consistency_proof(leaves, other_old, other_new)
                assert len(honest) == len(proof)
                assert (root(leaves[:other_old]), root(leaves[:other_new])) != (old_root,
                                                                                new_root)


def test_inclusion_and_consistency_for_every_small_tree():
    leaves = [leaf_hash(bytes([i])) for i in range(33)]
    roots = [root(leaves[:n]) for n in range(34)]
    for size in range(1, 34):
        for index in range(size):
            assert verify_inclusion(leaves[index], index, size,
                                    inclusion_proof(leaves, index, size), roots[size])
        for old in range(size + 1):
            assert verify_consistency(old, size, roots[old], roots[size],
                                      consistency_proof(leaves, old, size))


@settings(max_examples=50, deadline=None)
@given(st.integers(min_value=0, max_value=70), st.integers(min_value=0, max_value=20))
def test_a_builder_goes_on_from_its_frontier(size, more):
    """What a log keeps at a checkpoint (and at the start of its archived segments) is enough
    to go on appending, and any wrong hash in it shows in the root."""
    leaves = [leaf_hash(bytes([n % 256, n // 256])) for n in range(size + more)]
    builder = TreeBuilder()
    for leaf in leaves[:size]:
        builder.append(leaf)
    resumed = TreeBuilder.from_frontier(size, builder.frontier)
    assert resumed.root() == root(leaves[:size]) and resumed.size == size
    for leaf in leaves[size:]:
        resumed.append(leaf)
    assert resumed.root() == root(leaves)
    if builder.frontier:
        wrong = (b"\x00" * 32, *builder.frontier[1:])
        assert TreeBuilder.from_frontier(size, wrong).root() != root(leaves[:size])
    with pytest.raises(ValueError):
        TreeBuilder.from_frontier(size, (*builder.frontier, b"\x00" * 32))
