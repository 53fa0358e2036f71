"""Points of the linkage protocol: identifiers hashed onto X25519, and blinded by a secret scalar.

A point is a 32-byte X25519 u-coordinate. `hash_to_point` takes SHA-256 of a domain-separated
identifier as the coordinate: RFC 7748 masks its top bit and accepts every 32-byte string, about
half of them on the twist rather than the curve, and multiplication by clamped scalars commutes
on both, which is all the protocol needs: a·(b·H(x)) == b·(a·H(x)). A point of low order gives
the all-zero product, which the library refuses; that refusal is `InvalidPoints`, whoever sent
the point.

`Blinder` does the multiplications, about 32 µs each here, on every core: a pool of worker
processes started by a fork server (the node runs gRPC threads, which must never be forked),
shared by every session and thread. The secret scalar travels with each task and is never kept
by a worker.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import queue
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from itertools import islice

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from federation.errors import InvalidArgument

POINT_BYTES = 32
CHUNK_POINTS = 8192  # points per chunk on the wire: 256 KiB, 0.25 s of one core
SCALAR_BYTES = 32

DOMAIN = b"cityfed-linkage-v1\x00"
# A dummy is this prefix and 128 random bits, never shown to anyone: no real identifier can be
# one by chance, and none with a NUL at all if the reader of identifiers refuses NULs.
DUMMY_PREFIX = "\x00dummy:"

SMALLEST_TASK = 256  # points; below this, shipping a task to a worker costs more than it saves

NOT_WHOLE_POINTS = "linkage points must come as whole 32-byte points"
LOW_ORDER_POINT = "a linkage point was refused: it is of low order"


class InvalidPoints(InvalidArgument):
    """A buffer of points is not whole 32-byte points, or holds a point of low order. The
    message is fixed and never quotes a point."""

    reason = "LINKAGE_INVALID_POINTS"


def hash_to_point(identifier: str) -> bytes:
    return hashlib.sha256(DOMAIN + identifier.encode("utf-8")).digest()


def new_scalar() -> bytes:
    """A fresh secret scalar; X25519 clamps it when it is used."""
    return secrets.token_bytes(SCALAR_BYTES)


def dummy_identifiers(n: int) -> list[str]:
    """n identifiers no real key can be: once hashed and blinded they look like real points and
    pad a set's size without ever matching."""
    return [DUMMY_PREFIX + secrets.token_hex(16) for _ in range(n)]


def check_points(points: bytes) -> None:
    if len(points) % POINT_BYTES:
        raise InvalidPoints(NOT_WHOLE_POINTS)


def x25519_seconds_per_op(samples: int = 20000) -> float:
    """Seconds one bare X25519 exchange takes in this process (peer keys loaded beforehand)."""
    exchange = X25519PrivateKey.from_private_bytes(new_scalar()).exchange
    peers = [X25519PublicKey.from_public_bytes(hash_to_point(str(i))) for i in range(samples)]
    start = time.perf_counter()
    for peer in peers:
        exchange(peer)
    return (time.perf_counter() - start) / samples


# The two tasks a worker runs, about 32 µs a point here: 30 µs the product, 1.8 µs the library's
# loading of the peer point, 0.4 µs the hash, 0.1 µs the loop itself.

def _blind_task(scalar: bytes, points: bytes) -> bytes | None:
    exchange = X25519PrivateKey.from_private_bytes(scalar).exchange
    load = X25519PublicKey.from_public_bytes
    try:
        return b"".join([exchange(load(points[i:i + POINT_BYTES]))
                         for i in range(0, len(points), POINT_BYTES)])
    except ValueError:  # the all-zero product of a low-order point
        return None


def _hash_and_blind_task(scalar: bytes, identifiers: list[str]) -> bytes | None:
    exchange = X25519PrivateKey.from_private_bytes(scalar).exchange
    load = X25519PublicKey.from_public_bytes
    sha256 = hashlib.sha256
    try:
        return b"".join([exchange(load(sha256(DOMAIN + identifier.encode("utf-8")).digest()))
                         for identifier in identifiers])
    except ValueError:
        return None


_END = object()


class Blinder:
    """Multiplies points by a secret scalar on `workers` processes, in order.

    The streaming methods read their input only as results are taken: at most about
    2 × workers chunks are read and not yet handed back, so a slow consumer holds back the
    producer, and a blocking input (a gRPC request stream) blocks only a feeder thread.
    """

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers if workers is not None else len(os.sched_getaffinity(0))
        if self.workers < 1:
            raise ValueError("a blinder needs at least one worker")
        self.in_flight = 2 * self.workers
        self._lock = threading.Lock()
        self._executor: ProcessPoolExecutor | None = None
        self._closed = False

    def hash_and_blind(self, scalar: bytes, identifiers: Sequence[str]) -> bytes:
        size = self._task_size(len(identifiers))
        it = iter(identifiers)
        batches = iter(lambda: list(islice(it, size)), [])
        return b"".join(self._ordered(_hash_and_blind_task, scalar, batches))

    def blind(self, scalar: bytes, points: bytes) -> bytes:
        check_points(points)
        step = self._task_size(len(points) // POINT_BYTES) * POINT_BYTES
        chunks = (points[i:i + step] for i in range(0, len(points), step))
        return b"".join(self._ordered(_blind_task, scalar, chunks))

    def hash_and_blind_stream(self, scalar: bytes,
                              batches: Iterable[Sequence[str]]) -> Iterator[bytes]:
        return self._ordered(_hash_and_blind_task, scalar, (list(b) for b in batches))

    def blind_stream(self, scalar: bytes, chunks: Iterable[bytes]) -> Iterator[bytes]:
        return self._ordered(_blind_task, scalar, _checked(chunks))

    def close(self) -> None:
        with self._lock:
            self._closed = True
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> Blinder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _task_size(self, points: int) -> int:
        """Points per task: a chunk at most, in a multiple of `workers` tasks of about equal
        size, so that no worker is left alone with the last one."""
        tasks = -(-points // CHUNK_POINTS)
        tasks = -(-tasks // self.workers) * self.workers
        return max(SMALLEST_TASK, -(-points // tasks)) if tasks else SMALLEST_TASK

    def _pool(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._closed:
                raise RuntimeError("the blinder is closed")
            if self._executor is None:
                self._executor = ProcessPoolExecutor(
                    self.workers, mp_context=multiprocessing.get_context("forkserver"))
            return self._executor

    def _discard(self, executor: ProcessPoolExecutor) -> None:
        """A worker died (killed for memory, say): the next task starts a fresh pool."""
        with self._lock:
            if self._executor is executor:
                self._executor = None
        executor.shutdown(wait=False, cancel_futures=True)

    def _ordered(self, task: Callable[[bytes, object], bytes | None], scalar: bytes,
                 payloads: Iterable[object]) -> Iterator[bytes]:
        """Runs `task(scalar, payload)` for each payload in parallel; yields results in order."""
        if len(scalar) != SCALAR_BYTES:
            raise ValueError("a scalar is 32 bytes")
        executor = self._pool()
        slots = threading.Semaphore(self.in_flight)
        results: queue.SimpleQueue[object] = queue.SimpleQueue()
        stop = threading.Event()

        def feed() -> None:
            try:
                it = iter(payloads)
                while True:
                    slots.acquire()
                    if stop.is_set():
                        return
                    payload = next(it, _END)
                    if payload is _END or stop.is_set():
                        return
                    results.put(executor.submit(task, scalar, payload))
            except BaseException as error:  # handed to the consumer, in order
                results.put(error)
            finally:
                results.put(_END)

        feeder = threading.Thread(target=feed, name="linkage-feeder", daemon=True)
        feeder.start()
        try:
            while (entry := results.get()) is not _END:
                if isinstance(entry, BaseException):
                    if isinstance(entry, BrokenProcessPool):
                        self._discard(executor)
                    raise entry
                try:
                    out = entry.result()
                except BrokenProcessPool:
                    self._discard(executor)
                    raise
                if out is None:
                    raise InvalidPoints(LOW_ORDER_POINT)
                slots.release()
                yield out
        finally:
            stop.set()
            slots.release()
            _cancel_queued(results)


def _checked(chunks: Iterable[bytes]) -> Iterator[bytes]:
    for chunk in chunks:
        check_points(chunk)
        yield chunk if isinstance(chunk, bytes) else bytes(chunk)


def _cancel_queued(results: queue.SimpleQueue[object]) -> None:
    while True:
        try:
            entry = results.get_nowait()
        except queue.Empty:
            return
        if isinstance(entry, Future):
            entry.cancel()
