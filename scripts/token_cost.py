"""What request tokens cost the coordinator per question: one token per city (as today) against
one token listing every asked city in `aud` (RFC 7519 allows an array), measured for
docs/tokens.md, "One token per city".

    .venv/bin/python scripts/token_cost.py            # 5 cities, ~1 minute
    .venv/bin/python scripts/token_cost.py --questions 100 --cities 3

1. Minting: N single-audience tokens against one token naming N cities, alternately, in
   this process (PyJWT, Ed25519, the coordinator's own mint function and claims).
2. A question: a local region of N node processes (small generated stores, every column `row`
   for the authority, so no privacy budget runs out), asked one small question at a time by a
   coordinator in this process; per question, the wall time and this process's CPU time, and
   the share of the per-city minting in it.

The machine is shared and noisy: each figure is a median, minting is measured alternately.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

import jwt

from federation.coordination.coordinator import Coordinator
from federation.query.datasets import DATASETS
from federation.query.plan import plan_hash
from federation.query.sql import parse_query
from federation.synthetic import CITIES, RegionScale
from federation.synthetic.local_region import AUTHORITY, start_local_region, write_region
from federation.trust.tokens import ALGORITHM, LIFETIME_SECONDS, mint_token

SQL = "SELECT sex, count(*) FROM population GROUP BY sex"
PURPOSE = "population-statistics"


def row_policy() -> str:
    return "".join(
        f'[[rules]]\ndataset = "{name}"\ncolumns = ["*"]\ncallers = ["{AUTHORITY}"]\n'
        f'purposes = ["*"]\nlevel = "row"\n\n' for name in DATASETS)


def mint_one_for_all(identity, cities: list[str], plan_bytes: bytes) -> str:
    """mint_token's claims with `aud` listing every city: what the alternative would sign."""
    issued = int(time.time())
    claims = {
        "iss": identity.member_id, "sub": identity.member_id, "aud": cities,
        "iat": issued, "nbf": issued, "exp": issued + LIFETIME_SECONDS,
        "jti": secrets.token_urlsafe(16),
        "purpose": PURPOSE,
        "plan_sha256": plan_hash(plan_bytes),
        "cnf": {"x5t#S256": identity.certificate_x5t},
    }
    return jwt.encode(claims, identity.signing_key, algorithm=ALGORITHM,
                      headers={"kid": identity.kid})


def measure_minting(identity, cities: list[str], plan_bytes: bytes, rounds: int) -> dict:
    per_city, one, sizes = [], [], {}
    for _ in range(rounds):
        started = time.perf_counter()
        tokens = [mint_token(key=identity.signing_key, kid=identity.kid,
                             caller=identity.member_id, audience=city, purpose=PURPOSE,
                             plan_bytes=plan_bytes, certificate_x5t=identity.certificate_x5t)
                  for city in cities]
        per_city.append(time.perf_counter() - started)
        started = time.perf_counter()
        token = mint_one_for_all(identity, cities, plan_bytes)
        one.append(time.perf_counter() - started)
        sizes = {"per_city": len(tokens[0]), "one_for_all": len(token)}
    return {"per_city_ms": statistics.median(per_city) * 1e3,
            "one_for_all_ms": statistics.median(one) * 1e3, "token_bytes": sizes}


def measure_questions(coordinator: Coordinator, questions: int) -> dict:
    query = parse_query(SQL)
    for _ in range(10):
        coordinator.ask(query, purpose=PURPOSE)
    wall, cpu = [], []
    for _ in range(questions):
        started, started_cpu = time.perf_counter(), time.process_time()
        answer = coordinator.ask(query, purpose=PURPOSE)
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
        assert answer.complete, answer.outcomes
    return {"wall_ms": statistics.median(wall) * 1e3, "cpu_ms": statistics.median(cpu) * 1e3}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cities", type=int, default=5)
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument("--mint-rounds", type=int, default=2000)
    args = parser.parse_args(argv)
    cities = CITIES[:args.cities]
    with tempfile.TemporaryDirectory(prefix="cityfed-token-cost-") as folder:
        directory = Path(folder) / "region"
        write_region(directory, scale=RegionScale(people_per_city=2_000, trips_per_city=2_000,
                                                  visits_per_city=2_000),
                     cities=cities, policy=row_policy())
        with start_local_region(directory, cities) as region:
            manifest, identity = region.directory.open_as(AUTHORITY)
            plan_bytes = parse_query(SQL).plan.SerializeToString()
            minting = measure_minting(identity, list(cities), plan_bytes, args.mint_rounds)
            with Coordinator(manifest, identity) as coordinator:
                question = measure_questions(coordinator, args.questions)
    saved = minting["per_city_ms"] - minting["one_for_all_ms"]
    print(f"cities: {len(cities)}; medians")
    print(f"mint {len(cities)} single-audience tokens: {minting['per_city_ms']:.3f} ms")
    print(f"mint 1 token for all {len(cities)} cities:   {minting['one_for_all_ms']:.3f} ms")
    print(f"token size: {minting['token_bytes']['per_city']} B each, "
          f"{minting['token_bytes']['one_for_all']} B for all")
    print(f"one question ({SQL!r}), coordinator: {question['wall_ms']:.2f} ms wall, "
          f"{question['cpu_ms']:.2f} ms CPU of this process")
    print(f"one token for all would save {saved:.3f} ms a question: "
          f"{100 * saved / question['wall_ms']:.1f}% of its wall time, "
          f"{100 * saved / question['cpu_ms']:.1f}% of the coordinator's CPU")
    return 0


if __name__ == "__main__":
    sys.exit(main())
