"""Record linkage against its floor and against the published baseline.

- `floor_seconds`: the least CPU the ECDH protocol can spend, 2·(n_owner + n_partner) X25519
  products (each city blinds its own set, then the other's), spread over the cores. Timed bare
  with one process running, and again with every core running at once: on a machine whose cores
  share a physical core or a quota, a product costs more then, and that is the honest floor.
- `cityfed_psi`: both cities' arithmetic in this process through `federation.linkage` (the
  Blinder's workers doing every product), the answer checked against the true intersection.
- `openmined_psi`: OpenMined's PSI library (ECDH over P-256, one thread, the client learning the
  intersection) in a child process, for its peak memory: with the RAW setup (the server's
  encrypted set, exact) and with GCS (a compressed filter, its default, with false positives at
  `GCS_FPR`).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import resource
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from federation.linkage.points import (
    CHUNK_POINTS,
    POINT_BYTES,
    SMALLEST_TASK,
    Blinder,
    new_scalar,
    x25519_seconds_per_op,
)
from federation.linkage.tags import TagList, TagSet

GCS_FPR = 1e-9  # false-positive rate asked of OpenMined's GCS filter
SCRIPTS = Path(__file__).resolve().parent.parent


def identifiers(n: int, overlap: int, side: str) -> list[str]:
    """n identifiers, the first `overlap` of them shared by both sides."""
    return ([f"person-{i:09d}" for i in range(overlap)]
            + [f"{side}-{i:09d}" for i in range(n - overlap)])


def floor_seconds(n_owner: int, n_partner: int, workers: int,
                  samples: int = 20_000) -> dict[str, Any]:
    ops = 2 * (n_owner + n_partner)
    alone = x25519_seconds_per_op(samples)
    with ProcessPoolExecutor(workers,
                             mp_context=multiprocessing.get_context("forkserver")) as pool:
        loaded = max(pool.map(x25519_seconds_per_op, [samples] * workers))
    return {
        "n_owner": n_owner, "n_partner": n_partner, "workers": workers, "x25519_ops": ops,
        "x25519_us_alone": round(alone * 1e6, 2),
        "x25519_us_all_cores_busy": round(loaded * 1e6, 2),
        "cpu_seconds": round(ops * alone, 3),
        "floor_seconds": round(ops * alone / workers, 3),
        "floor_seconds_all_cores_busy": round(ops * loaded / workers, 3),
    }


def cityfed_psi(n_owner: int, n_partner: int, overlap: int, workers: int) -> dict[str, Any]:
    """The four blinding steps of a linkage, one after the other, and the owner's comparison."""
    owner = identifiers(n_owner, overlap, "owner")
    partner = identifiers(n_partner, overlap, "partner")
    a, b = new_scalar(), new_scalar()
    steps: dict[str, float] = {}
    with Blinder(workers) as blinder:
        # Start every worker first: the pool starts one for each task that finds none idle.
        blinder.hash_and_blind(a, identifiers(SMALLEST_TASK * workers, 0, "warm-up"))

        def timed(step: str, fn, *args):
            start = time.perf_counter()
            out = fn(*args)
            steps[step] = round(time.perf_counter() - start, 3)
            return out

        owner_once = timed("owner hashes and blinds its set", blinder.hash_and_blind, a, owner)
        partner_once = timed("partner hashes and blinds its set", blinder.hash_and_blind, b,
                             partner)
        partner_twice = timed("owner re-blinds the partner's set", blinder.blind, a,
                              partner_once)
        owner_twice = timed("partner re-blinds the owner's set", blinder.blind, b, owner_once)

    def compare():
        tagset = TagSet()
        tagset.add(partner_twice)
        tagset.freeze()
        taglist = TagList(n_owner)
        step = CHUNK_POINTS * POINT_BYTES
        for index, start in enumerate(range(0, len(owner_twice), step)):
            taglist.put(index, owner_twice[start:start + step])
        return taglist.matches(tagset)

    positions = timed("owner compares (tags)", compare)
    found = {owner[i] for i in positions}
    seconds = sum(steps.values())
    return {
        "n_owner": n_owner, "n_partner": n_partner, "overlap": overlap, "workers": workers,
        "seconds": round(seconds, 3), "steps": steps,
        "x25519_ops": 2 * (n_owner + n_partner),
        "us_per_op_per_worker": round(seconds / (2 * (n_owner + n_partner)) * workers * 1e6, 2),
        "bytes_moved": POINT_BYTES * (2 * n_owner + n_partner),
        "intersection": len(found),
        "correct": found == set(owner[:overlap]),
    }


def openmined_psi(n_client: int, n_server: int, overlap: int) -> dict[str, Any]:
    """OpenMined PSI in a child process; its own wall times, message sizes and peak memory."""
    code = ("import json, sys; from benchlib.psi_baseline import _openmined_run; "
            "print(json.dumps(_openmined_run(*json.loads(sys.argv[1]))))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(SCRIPTS), os.environ.get("PYTHONPATH", "")) if p)}
    child = subprocess.run([sys.executable, "-c", code,
                            json.dumps([n_client, n_server, overlap])],
                           env=env, capture_output=True, text=True, check=True)
    return json.loads(child.stdout)


def _peak_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _openmined_run(n_client: int, n_server: int, overlap: int) -> dict[str, Any]:
    import private_set_intersection.python as psi

    client_items = identifiers(n_client, overlap, "client")
    server_items = identifiers(n_server, overlap, "server")
    truth = set(client_items[:overlap])
    client = psi.client.CreateWithNewKey(True)  # reveal the intersection, not only its size
    server = psi.server.CreateWithNewKey(True)
    before_mb = _peak_mb()
    steps: dict[str, float] = {}

    def timed(step: str, fn, *args):
        start = time.perf_counter()
        out = fn(*args)
        steps[step] = round(time.perf_counter() - start, 3)
        return out

    setup = timed("server encrypts its set (setup)", server.CreateSetupMessage, GCS_FPR,
                  n_client, server_items, psi.DataStructure.RAW)
    request = timed("client encrypts its set (request)", client.CreateRequest, client_items)
    response = timed("server re-encrypts the client's set (response)", server.ProcessRequest,
                     request)
    indices = timed("client decrypts and intersects", client.GetIntersection, setup, response)
    raw_peak_mb = _peak_mb()
    found = {client_items[i] for i in indices}
    raw = {
        "seconds": round(sum(steps.values()), 3), "steps": steps,
        "bytes_moved": setup.ByteSize() + request.ByteSize() + response.ByteSize(),
        "bytes": {"setup": setup.ByteSize(), "request": request.ByteSize(),
                  "response": response.ByteSize()},
        "peak_mb": raw_peak_mb, "intersection": len(found), "correct": found == truth,
    }
    start = time.perf_counter()
    gcs_setup = server.CreateSetupMessage(GCS_FPR, n_client, server_items)  # the default
    setup_seconds = time.perf_counter() - start
    start = time.perf_counter()
    gcs_count = len(client.GetIntersection(gcs_setup, response))
    intersect_seconds = time.perf_counter() - start
    gcs = {
        "fpr": GCS_FPR, "data_structure": gcs_setup.WhichOneof("data_structure"),
        "seconds": round(steps["client encrypts its set (request)"]
                         + steps["server re-encrypts the client's set (response)"]
                         + setup_seconds + intersect_seconds, 3),
        "setup_seconds": round(setup_seconds, 3),
        "intersect_seconds": round(intersect_seconds, 3),
        "bytes_moved": gcs_setup.ByteSize() + request.ByteSize() + response.ByteSize(),
        "bytes": {"setup": gcs_setup.ByteSize(), "request": request.ByteSize(),
                  "response": response.ByteSize()},
        "intersection": gcs_count, "correct": gcs_count == len(truth),
    }
    return {
        "library": f"openmined-psi {psi.__version__}", "curve": "P-256", "threads": 1,
        "n_client": n_client, "n_server": n_server, "overlap": overlap,
        "rss_before_mb": before_mb, "peak_mb": _peak_mb(), "raw": raw, "gcs": gcs,
    }
