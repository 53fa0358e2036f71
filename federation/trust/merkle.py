"""The Merkle tree of RFC 9162 section 2.1 (Certificate Transparency v2, same tree as RFC 6962):
tree hashes, inclusion proofs and consistency proofs, over SHA-256.

    leaf hash  = SHA-256(0x00 || entry)
    node hash  = SHA-256(0x01 || left || right)
    MTH({})    = SHA-256("")
    MTH(D[n])  = node hash of MTH(D[0:k]) and MTH(D[k:n]), k the largest power of two below n

Every function here takes leaf HASHES, not entries: a log hashes each entry once as it appends it
and keeps only the hashes. `TreeBuilder` computes the root of a growing list in O(log n) memory.

Proof verification follows the algorithms of RFC 9162 2.1.3.2 and 2.1.4.2 step by step. Two
cases the RFC leaves outside its definition (it defines consistency proofs for 0 < m < n) are
settled the way transparency-dev/merkle settles them: from size m to the same size m the proof
is empty and the roots must be equal; from the empty tree the proof is empty.

A root commits to its leaves, not to its size: the same proof can verify for two sizes whose
proofs have the same shape (index 0 in a tree of 3 or of 4 leaves, say). That is why a log signs
the size together with the root (a checkpoint) and a verifier takes both from the signed body.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


class TreeBuilder:
    """The root of a list of leaf hashes that only grows, in O(log n) memory.

    Keeps the roots of the perfect subtrees the list decomposes into (one per set bit of the
    size, largest first); appending merges equal-sized subtrees like a binary counter.
    """

    __slots__ = ("_size", "_stack")

    def __init__(self) -> None:
        self._size = 0
        self._stack: list[bytes] = []

    @property
    def size(self) -> int:
        return self._size

    def append(self, leaf: bytes) -> None:
        if len(leaf) != HASH_SIZE:
            raise ValueError("a leaf hash is 32 bytes")
        node = leaf
        size = self._size
        while size & 1:
            node = node_hash(self._stack.pop(), node)
            size >>= 1
        self._stack.append(node)
        self._size += 1

    def root(self) -> bytes:
        if not self._stack:
            return EMPTY_ROOT
        node = self._stack[-1]
        for left in reversed(self._stack[:-1]):
            node = node_hash(left, node)
        return node

    def copy(self) -> TreeBuilder:
        other = TreeBuilder()
        other._size = self._size
        other._stack = list(self._stack)
        return other

    @property
    def frontier(self) -> tuple[bytes, ...]:
        """The roots of the perfect subtrees the list decomposes into, largest first: with the
        size, all it takes to go on appending (and to compute the root)."""
        return tuple(self._stack)

    @classmethod
    def from_frontier(cls, size: int, frontier: Sequence[bytes]) -> TreeBuilder:
        """A builder that goes on from `frontier`, the `frontier` of a list of `size` leaves.
        Whether it is the frontier of a given tree shows in its root: `root()` equals that
        tree's root only if every hash is right."""
        if not _is_size(size):
            raise ValueError(f"tree size {size!r} is not a non-negative integer")
        if len(frontier) != size.bit_count():
            raise ValueError(f"a tree of {size!r} leaves has a frontier of {size.bit_count()} "
                             "hashes")
        if not all(_is_hash(node) for node in frontier):
            raise ValueError("a frontier holds 32-byte hashes")
        builder = cls()
        builder._size = size
        builder._stack = list(frontier)
        return builder


def root(leaves: Sequence[bytes]) -> bytes:
    """MTH of the list whose leaf hashes are `leaves`."""
    return _root(leaves, 0, len(leaves))


def _root(leaves: Sequence[bytes], start: int, end: int) -> bytes:
    builder = TreeBuilder()
    for index in range(start, end):
        builder.append(leaves[index])
    return builder.root()


def _check_size(leaves: Sequence[bytes], size: int) -> None:
    if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= len(leaves):
        raise ValueError(f"tree size {size!r} is outside 0..{len(leaves)}")


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int, size: int) -> list[bytes]:
    """PATH(index, D[size]) of RFC 9162 2.1.3.1: the audit path of leaf `index` in the tree of
    the first `size` leaves, nearest sibling first."""
    _check_size(leaf_hashes, size)
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < size:
        raise ValueError(f"leaf index {index!r} is outside 0..{size - 1}")
    proof: list[bytes] = []
    start, end = 0, size
    # Walk down from the root, collecting the sibling of each subtree the leaf is in; the
    # proof lists them bottom-up.
    while end - start > 1:
        k = _split(end - start)
        if index < start + k:
            proof.append(_root(leaf_hashes, start + k, end))
            end = start + k
        else:
            proof.append(_root(leaf_hashes, start, start + k))
            start += k
    proof.reverse()
    return proof


def consistency_proof(leaf_hashes: Sequence[bytes], old_size: int, new_size: int) -> list[bytes]:
    """PROOF(old_size, D[new_size]) of RFC 9162 2.1.4.1; empty when old_size is 0 or equals
    new_size."""
    _check_size(leaf_hashes, new_size)
    if not isinstance(old_size, int) or isinstance(old_size, bool) or \
            not 0 <= old_size <= new_size:
        raise ValueError(f"old size {old_size!r} is outside 0..{new_size}")
    if old_size in (0, new_size):
        return []
    return _subproof(leaf_hashes, old_size, 0, new_size, True)


def _subproof(leaves: Sequence[bytes], m: int, start: int, end: int, whole: bool) -> list[bytes]:
    """SUBPROOF(m, D[start:end], whole) of RFC 9162 2.1.4.1."""
    n = end - start
    if m == n:
        return [] if whole else [_root(leaves, start, end)]
    k = _split(n)
    if m <= k:
        return [*_subproof(leaves, m, start, start + k, whole), _root(leaves, start + k, end)]
    return [*_subproof(leaves, m - k, start + k, end, False), _root(leaves, start, start + k)]


def _is_hash(value: object) -> bool:
    return isinstance(value, bytes) and len(value) == HASH_SIZE


def _is_size(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def verify_inclusion(leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes],
                     root: bytes) -> bool:
    """RFC 9162 2.1.3.2: does `proof` show `leaf_hash` at `index` in the tree of `size` leaves
    whose root is `root`?"""
    if not (_is_hash(leaf_hash) and _is_hash(root) and _is_size(index) and _is_size(size)):
        return False
    if index >= size or not all(_is_hash(p) for p in proof):
        return False
    fn, sn = index, size - 1
    r = leaf_hash
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes,
                       proof: Sequence[bytes]) -> bool:
    """RFC 9162 2.1.4.2: does `proof` show that the tree of `new_size` leaves with root
    `new_root` extends the tree of `old_size` leaves with root `old_root`?"""
    if not (_is_size(old_size) and _is_size(new_size) and _is_hash(old_root)
            and _is_hash(new_root)) or old_size > new_size:
        return False
    if not all(_is_hash(p) for p in proof):
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    if old_size == 0:
        return not proof and old_root == EMPTY_ROOT
    # 1. An empty path fails.
    if not proof:
        return False
    path = list(proof)
    # 2. When the old size is a power of two, its root is a node of the new tree: prepend it.
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    # 3.-4.
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # 5.
    fr = sr = path[0]
    # 6.
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    # 7.
    return fr == old_root and sr == new_root and sn == 0
