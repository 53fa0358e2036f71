"""A seeded synthetic region: five city DuckDB files and the cross-city facts planted in them.

The whole region's population is drawn first, in one in-memory DuckDB, so that commuters,
patients treated away from home, spouses and the planted facts all refer to people who exist in
some city's population table. Each city file is then filled by INSERT ... SELECT over `range(n)`:
every value is a hash of (seed, attribute, city, row), so the same seed and scale give the
same rows in the same order whatever the thread count, and a city's file does not depend on
which other cities are written alongside it.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import duckdb

from federation.query.datasets import DATASETS, create_table_sql
from federation.synthetic.divisions import CITIES, ELSEWHERE, MEMBER_CITIES, City
from federation.synthetic.draws import FINE_BUCKETS, Statement, create_macros, gauss, u
from federation.synthetic.icd10 import DIAGNOSES, PAEDIATRIC, Diagnosis
from federation.synthetic.networks import HOSPITALS, LINES
from federation.synthetic.profiles import (
    COMMUTER_TAPS,
    GIVEN_NAME_CHARS,
    HUKOU_FROM,
    MIGRANT_AGES,
    NATIVE_AGES,
    OUT_OF_CITY_VISITS,
    PENSION_FROM,
    PROFILES,
    SURNAMES,
)
from federation.trust.keys import write_file_atomically
from federation.trust.private_files import PRIVATE_FILE, owner_only, private_folder

REFERENCE_DATE = dt.date(2026, 9, 30)
DEATHS_SINCE = dt.date(2021, 10, 1)
LAST_DEATH = dt.date(2026, 9, 20)
TRANSIT_START = dt.date(2026, 9, 1)
TRANSIT_DAYS = 30
VISITS_START = dt.date(2026, 1, 1)
HOLIDAYS = (
    (dt.date(2026, 1, 1), dt.date(2026, 1, 3)),
    (dt.date(2026, 2, 15), dt.date(2026, 2, 23)),
    (dt.date(2026, 4, 4), dt.date(2026, 4, 6)),
    (dt.date(2026, 5, 1), dt.date(2026, 5, 5)),
    (dt.date(2026, 6, 19), dt.date(2026, 6, 21)),
    (dt.date(2026, 9, 25), dt.date(2026, 9, 27)),
)
DECEASED_SHARE = 0.03  # of register rows: five years of deaths kept on the register
PLANTED_PENSION_SHARE = 0.002  # of pensioners
PLANTED_MEDICAL_SHARE = 0.001  # of residents with active medical insurance
PLANTED_BIGAMY_SHARE = 0.002  # of marriages that last
MIN_PLANTED = 3
TAPS_PER_COMMUTER = 40
TAPS_PER_ANONYMOUS_CARD = 6
VISITS_PER_VISITOR = 2.5
MARRIAGE_AGE = (20, 22)  # the legal minimum age of women and of men (Civil Code, art. 1047)
FIRST_MARRIAGE_LAW = dt.date(1950, 5, 1)
SEGMENT = 1 << 32  # pool keys are segment * SEGMENT + rank within the segment
ANONYMOUS = len(MEMBER_CITIES) + 1
CITY_CODES = tuple(c.code for c in MEMBER_CITIES)

# Time-of-day mixtures (share, mean hour, standard deviation in hours).
WEEKDAY_HOURS = ((0.28, 8.1, 0.8), (0.25, 18.0, 1.1), (0.47, 13.5, 3.8))
WEEKEND_HOURS = ((0.08, 9.5, 1.5), (0.12, 17.5, 1.6), (0.80, 14.0, 3.5))


@dataclass(frozen=True)
class RegionScale:
    people_per_city: int = 20_000
    trips_per_city: int = 100_000
    visits_per_city: int = 20_000


def generate_region(
    directory: Path,
    scale: RegionScale = RegionScale(),
    seed: int = 7,
    cities: tuple[str, ...] = CITIES,
) -> Path:
    """Writes directory/<city>.duckdb for each city (the standard tables created with
    federation.query.datasets.create_table_sql) and directory/ground_truth.json; returns the path of
    the ground-truth file. Overwrites existing files. Same seed + scale → byte-identical table
    contents (row order included). The folder is made 0700, the files 0600: they hold the
    (synthetic) residents' records."""
    _check(scale, cities)
    directory = private_folder(directory)
    with tempfile.TemporaryDirectory(prefix="cityfed-synthetic-") as spill:
        con = duckdb.connect(config={"threads": _cpus(), "temp_directory": spill})
        try:
            con.execute("SET enable_progress_bar = false")
            create_macros(con, seed)
            _build_population(con, scale.people_per_city, seed)
            _marry_people(con)
            counts = {
                city: _write_city(con, directory / f"{city}.duckdb", CITIES.index(city), scale)
                for city in cities
            }
            truth = _ground_truth(con, seed, scale, cities, counts)
        finally:
            con.close()
    path = directory / "ground_truth.json"
    write_file_atomically(path, (json.dumps(truth, ensure_ascii=False, indent=2) + "\n")
                          .encode("utf-8"), PRIVATE_FILE)
    return path


def _cpus() -> int:
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def _check(scale: RegionScale, cities: tuple[str, ...]) -> None:
    unknown = sorted(set(cities) - set(CITIES))
    if unknown:
        raise ValueError(f"unknown cities {unknown}; members are {list(CITIES)}")
    if len(set(cities)) != len(cities):
        raise ValueError("cities must not repeat")
    if scale.people_per_city < 100:
        raise ValueError("people_per_city must be at least 100")
    if scale.trips_per_city < 0 or scale.visits_per_city < 0:
        raise ValueError("trips_per_city and visits_per_city must not be negative")


def _date(day: dt.date) -> str:
    return f"DATE '{day.isoformat()}'"


def _normalised(weights: Sequence[float]) -> list[float]:
    total = sum(weights)
    return [w / total for w in weights]


# --- population -------------------------------------------------------------------------------

_ALL_CITIES: tuple[City, ...] = (*MEMBER_CITIES, *ELSEWHERE)
_DISTRICTS = tuple(d for city in _ALL_CITIES for d in city.districts)


def _district_rows(cities: Sequence[City]) -> list[list[float]]:
    """Per city, weights over the flat district list that are zero outside the city."""
    rows = []
    for city in cities:
        own = {id(d) for d in city.districts}
        rows.append([d.weight if id(d) in own else 0.0 for d in _DISTRICTS])
    return rows


def _hukou_rows() -> list[list[float]]:
    elsewhere = _normalised([c.weight for c in ELSEWHERE])
    rows = []
    for city in MEMBER_CITIES:
        own = PROFILES[city.id].own_hukou
        members = [own if m is city else HUKOU_FROM[city.id].get(m.id, 0.0) for m in MEMBER_CITIES]
        rest = max(0.0, 1.0 - sum(members))
        rows.append(members + [rest * w for w in elsewhere])
    return rows


def _other_city_rows() -> list[list[float]]:
    return [[PENSION_FROM[city.id].get(m.id, 0.0) for m in MEMBER_CITIES] for city in MEMBER_CITIES]


def _checksum(body: str) -> str:
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    terms = " + ".join(f"(ascii(substr({body}, {k + 1}, 1)) - 48) * {w}"
                       for k, w in enumerate(weights))
    return f"substr('10X98765432', 1 + ({terms}) % 11, 1)"


def _draw_people(con: duckdb.DuckDBPyConnection, n: int) -> None:
    q = Statement()
    given_pools = [GIVEN_NAME_CHARS[("M", True)], GIVEN_NAME_CHARS[("M", False)],
                   GIVEN_NAME_CHARS[("F", True)], GIVEN_NAME_CHARS[("F", False)]]
    ref = _date(REFERENCE_DATE)
    q.run(con, f"""
        CREATE OR REPLACE TEMP TABLE person_draw AS
        WITH base AS (
            SELECT CAST(c AS INTEGER) AS c, i, c * {n} + i AS g,
                   {q.choose_in("c", u("hukou", "c", "i"), _hukou_rows())} AS home,
                   {u("deceased", "c", "i")} < {DECEASED_SHARE} AS dead
            FROM range({len(MEMBER_CITIES)}) a(c), range({n}) b(i)
        ), aged AS (
            SELECT *, home = c AS native,
                   ({q.choose_in("CASE WHEN home = c THEN 0 ELSE 1 END"
                                 " + CASE WHEN dead THEN 2 ELSE 0 END",
                                 u("age_band", "c", "i"), _age_rows(), FINE_BUCKETS)}
                    + {u("age_in_band", "c", "i")}) * 5 AS age_f
            FROM base
        ), mortal AS (
            SELECT *, CASE WHEN dead THEN {_date(DEATHS_SINCE)} + CAST(floor(
                               {u("death_day", "c", "i")}
                               * ({_date(LAST_DEATH)} - {_date(DEATHS_SINCE)} + 1)) AS INTEGER)
                      END AS deceased_on,
                   {u("sex", "c", "i")}
                       < CASE WHEN dead THEN 0.58 - greatest(0.0, age_f - 75) * 0.006
                              ELSE 0.515 - greatest(0.0, age_f - 60) * 0.004 END AS male
            FROM aged
        ), born AS (
            SELECT *, coalesce(deceased_on, {ref}) - CAST(age_f * 365.2425 AS INTEGER) AS birth_date
            FROM mortal
        ), placed AS (
            SELECT *,
                   {q.choose_in("c", u("district", "c", "i"), _district_rows(MEMBER_CITIES))}
                       AS district,
                   CASE WHEN native AND {u("born_here", "c", "i")} < 0.8 THEN NULL
                        ELSE {q.choose_in("home", u("birth_district", "c", "i"),
                                          _district_rows(_ALL_CITIES))}
                   END AS born_in
            FROM born
        ), registered AS (
            SELECT *, coalesce(born_in, district) AS birth_district,
                   CASE WHEN native
                        THEN least({ref}, birth_date
                                   + CAST(floor({u("registration", "c", "i")} * 60) AS INTEGER))
                        ELSE greatest(
                            CASE WHEN age_f >= 18 THEN birth_date + 5844 ELSE birth_date END,
                            CASE WHEN age_f >= 18 THEN DATE '1995-01-01' ELSE birth_date END)
                   END AS registration_floor
            FROM placed
        ), named AS (
            SELECT *,
                   {q.pick(q.choose(u("surname", "c", "i"), [w for _, w in SURNAMES]),
                           [s for s, _ in SURNAMES])} AS surname,
                   {q.pick("CASE WHEN male THEN 0 ELSE 2 END"
                           " + CASE WHEN year(birth_date) < 1980 THEN 0 ELSE 1 END",
                           given_pools)} AS given_pool
            FROM registered
        )
        SELECT c, i, g, home, native, age_f, birth_date, male, deceased_on,
               {q.pick("district", [d.code for d in _DISTRICTS])} AS district_code,
               {q.pick("home", [city.code for city in _ALL_CITIES])} AS hukou_city,
               CASE WHEN year(birth_date) <= {q.pick("birth_district", _former_until())}
                    THEN list_extract(string_split(
                             {q.pick("birth_district", _former_codes())}, ','),
                         1 + CAST(floor({u("former_code", "c", "i")}
                             * length(string_split({q.pick("birth_district", _former_codes())},
                                                   ','))) AS INTEGER))
                    ELSE {q.pick("birth_district", [d.code for d in _DISTRICTS])}
               END AS birth_code,
               least(coalesce(deceased_on, {ref}), CASE WHEN native THEN registration_floor
                     ELSE registration_floor + CAST(floor({u("registered", "c", "i")}
                          * ({ref} - registration_floor + 1)) AS INTEGER) END) AS registered_on,
               surname
               || substr(given_pool, 1 + CAST(floor({u("given_1", "c", "i")} * length(given_pool))
                                              AS INTEGER), 1)
               || CASE WHEN {u("two_chars", "c", "i")}
                            < CASE WHEN year(birth_date) < 1980 THEN 0.6 ELSE 0.85 END
                       THEN substr(given_pool, 1 + CAST(floor({u("given_2", "c", "i")}
                                   * length(given_pool)) AS INTEGER), 1)
                       ELSE '' END AS name
        FROM named
    """)


def _annual_mortality(age: float) -> float:
    """Gompertz-style death rate with a bump for small children, roughly China's life table."""
    return 0.00005 * math.exp(0.09 * age) + (0.0014 if age < 5 else 0.0)


def _age_rows() -> list[list[float]]:
    """Age bands of the living (natives, migrants), then of the deceased (natives, migrants)."""
    def deaths(ages: Sequence[float]) -> list[float]:
        return [share * _annual_mortality(5 * band + 2.5) for band, share in enumerate(ages)]

    return [list(NATIVE_AGES), list(MIGRANT_AGES), deaths(NATIVE_AGES), deaths(MIGRANT_AGES)]


def _former_until() -> list[int]:
    return [max((f.until for f in d.former), default=0) for d in _DISTRICTS]


def _former_codes() -> list[str]:
    return [",".join(f.code for f in d.former) or d.code for d in _DISTRICTS]


def _identify_people(con: duckdb.DuckDBPyConnection, seed: int) -> None:
    """Resident ids: birth district, birth date, a sequence number whose parity is the sex
    (odd for men) and unique per (district, date), and the ISO 7064 MOD 11-2 check."""
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE person_ids AS
        SELECT *, body || {_checksum("body")} AS person_id
        FROM (
            SELECT *, prefix || lpad(CAST(
                       2 * ((CAST(hash({int(seed)}, prefix, male) % 500 AS INTEGER)
                             + 37 * sequence_rank) % 500) + CAST(male AS INTEGER)
                   AS VARCHAR), 3, '0') AS body
            FROM (
                SELECT *, birth_code || strftime(birth_date, '%Y%m%d') AS prefix,
                       row_number() OVER (PARTITION BY birth_code, birth_date, male ORDER BY g) - 1
                           AS sequence_rank
                FROM person_draw
            )
        )
    """)
    (crowded,) = con.execute("SELECT max(sequence_rank) FROM person_ids").fetchone()
    if crowded >= 500:
        raise ValueError("too many people share a birth district, date and sex for unique ids")
    con.execute("DROP TABLE person_draw")


def _insure_people(con: duckdb.DuckDBPyConnection) -> None:
    q = Statement()
    ref = _date(REFERENCE_DATE)
    avg = q.pick("c", [PROFILES[c].avg_wage for c in CITIES])
    q.run(con, f"""
        CREATE OR REPLACE TEMP TABLE people_insured AS
        WITH aged AS (
            SELECT *, deceased_on IS NULL AS alive,
                   years_between(birth_date, {ref}) AS age_now,
                   years_between(birth_date, coalesce(deceased_on, {ref})) AS age_end,
                   CASE WHEN male THEN 60 ELSE 55 END AS retire_age
            FROM person_ids
        ), drawn AS (
            SELECT *,
                   age_end >= retire_age AS pensioner,
                   add_years(birth_date, retire_age) AS retire_date,
                   {u("employee_pension", "c", "i")}
                       < {q.pick("c", [PROFILES[c].employee_share for c in CITIES])}
                       AS employee_pension,
                   age_end >= 18 AND age_end < retire_age
                       AND {u("employed", "c", "i")}
                           < {q.pick("c", [PROFILES[c].employment for c in CITIES])} AS working,
                   round(least(3 * {avg}, greatest(0.6 * {avg},
                         {avg} * exp(0.5 * {gauss("wage", "c", "i")} - 0.125))), 2) AS wage,
                   greatest(add_years(birth_date, 18),
                            CASE WHEN native THEN DATE '1999-01-01'
                                 ELSE greatest(registered_on, DATE '1999-01-01') END)
                       AS job_floor,
                   {u("job_status", "c", "i")} AS job_draw,
                   birth_date <= {ref} - 28 AND {u("medical", "c", "i")}
                       < CASE WHEN native THEN 0.97 ELSE 0.90 END AS medical,
                   {u("medical_status", "c", "i")} AS medical_draw,
                   {q.choose_in("c", u("other_city", "c", "i"), _other_city_rows())} AS other_city,
                   {u("pension_away", "c", "i")}
                       < {q.pick("c", [sum(PENSION_FROM[c].values()) for c in CITIES])}
                       AS away_draw
            FROM aged
        )
        SELECT *,
               least(coalesce(deceased_on, {ref}), job_floor + CAST(floor(
                     pow({u("job_start", "c", "i")}, 2)
                     * greatest(0, least(6000, {ref} - job_floor))) AS INTEGER)) AS job_start,
               pensioner AND away_draw AS pension_away,
               medical AND alive AND medical_draw >= 0.04 AS medical_active,
               least(coalesce(deceased_on, {ref}), CASE
                   WHEN working OR (pensioner AND employee_pension) THEN job_start
                   ELSE greatest(birth_date + 28, DATE '2008-01-01',
                                 CASE WHEN native THEN birth_date ELSE registered_on END)
               END) AS medical_since
        FROM drawn
    """)
    con.execute("DROP TABLE person_ids")


def _plant(con: duckdb.DuckDBPyConnection) -> None:
    """Chooses the people behind the planted cross-city facts.

    Deceased pensioners whose pension is paid by another member city that was never told of
    the death, and residents who moved in from another member city (or keep a second card)
    whose medical insurance there was never closed.
    """
    (pensioners,) = con.execute(
        "SELECT count(*) FROM people_insured WHERE pensioner").fetchone()
    (insured,) = con.execute(
        "SELECT count(*) FROM people_insured WHERE medical_active").fetchone()
    pension_plants = max(MIN_PLANTED, round(PLANTED_PENSION_SHARE * pensioners))
    medical_plants = max(MIN_PLANTED, round(PLANTED_MEDICAL_SHARE * insured))
    members = len(MEMBER_CITIES)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE people AS
        WITH pension_plant AS (
            SELECT g, row_number() OVER (ORDER BY {u("plant_pension", "0", "g")}, g) AS r
            FROM people_insured
            WHERE pensioner AND deceased_on < DATE '{REFERENCE_DATE:%Y-%m}-01'
        ), medical_plant AS (
            SELECT g, row_number() OVER (
                       ORDER BY (home < {members} AND home <> c) DESC,
                                {u("plant_medical", "0", "g")}, g) AS r
            FROM people_insured
            WHERE medical_active AND age_end >= 18
        ), planted AS (
            SELECT p.*, coalesce(pp.r <= {pension_plants}, false) AS planted_pension,
                   coalesce(mp.r <= {medical_plants}, false) AS planted_medical
            FROM people_insured p
            LEFT JOIN pension_plant pp USING (g)
            LEFT JOIN medical_plant mp USING (g)
        )
        SELECT *,
               CASE WHEN home < {members} AND home <> c THEN home ELSE other_city END
                   AS second_city,
               CASE WHEN planted_pension OR pension_away THEN other_city ELSE c END
                   AS pension_city,
               NOT planted_medical AND home < {members} AND home <> c
                   AND registered_on > birth_date + 28
                   AND {u("medical_decoy", "c", "i")} < 0.35 AS medical_moved_away
        FROM planted
    """)
    con.execute("DROP TABLE people_insured")


def _insurance_rows(con: duckdb.DuckDBPyConnection) -> None:
    q = Statement()
    ref = _date(REFERENCE_DATE)
    payday = [PROFILES[c].payday for c in CITIES]
    employee_pension = [PROFILES[c].employee_pension for c in CITIES]
    resident_pension = [PROFILES[c].resident_pension for c in CITIES]
    pension_pd = q.pick("pension_city", payday)
    pd = q.pick("c", payday)
    q.run(con, f"""
        CREATE OR REPLACE TEMP TABLE insurance AS
        WITH pension AS (
            SELECT *, least(coalesce(deceased_on, {ref}), retire_date
                            + CAST(floor({u("pension_start", "c", "i")} * 45) AS INTEGER))
                          AS enrolled_on,
                   CASE WHEN planted_pension THEN 'active'
                        WHEN alive AND {u("pension_status", "c", "i")} < 0.01 THEN 'suspended'
                        WHEN alive THEN 'active'
                        WHEN deceased_on > {ref} - 45 THEN 'suspended'
                        ELSE 'closed' END AS status
            FROM people WHERE pensioner
        ), pension_paid AS (
            SELECT *, CASE
                       WHEN status = 'active' THEN paid_before({ref}, {pension_pd})
                       WHEN alive THEN paid_before({ref} - 30 * (1 + CAST(floor(
                            {u("pension_arrears", "c", "i")} * 6) AS INTEGER)), {pension_pd})
                       ELSE paid_before(deceased_on, {pension_pd}) END AS paid
            FROM pension
        ), medical AS (
            SELECT *, CASE WHEN NOT alive THEN 'closed'
                           WHEN medical_active THEN 'active' ELSE 'suspended' END AS status,
                   working OR (pensioner AND employee_pension) AS employee
            FROM people WHERE medical
        ), medical_paid AS (
            SELECT *, CASE
                       WHEN working AND status = 'active' THEN paid_before({ref}, {pd})
                       WHEN working THEN paid_before({ref} - 30 * (1 + CAST(floor(
                            {u("medical_arrears", "c", "i")} * 6) AS INTEGER)), {pd})
                       WHEN employee THEN paid_before(retire_date, {pd})
                       WHEN status = 'suspended' THEN DATE '2024-09-01'
                            + CAST(floor({u("premium_day", "c", "i")} * 120) AS INTEGER)
                       ELSE DATE '2025-09-01'
                            + CAST(floor({u("premium_day", "c", "i")} * 120) AS INTEGER)
                   END AS planned
            FROM medical
        ), medical_rows AS (
            SELECT *, CASE WHEN paid >= medical_since THEN paid
                           WHEN alive AND NOT employee THEN medical_since END AS last_paid
            FROM (SELECT *, least(planned, coalesce(deceased_on, planned)) AS paid
                  FROM medical_paid)
        ), jobs AS (
            SELECT *, CASE WHEN NOT alive THEN 'closed' WHEN job_draw < 0.93 THEN 'active'
                           WHEN job_draw < 0.96 THEN 'suspended' ELSE 'closed' END AS status
            FROM people WHERE working
        ), jobs_paid AS (
            SELECT *, CASE
                       WHEN NOT alive THEN paid_before(deceased_on, {pd})
                       WHEN status = 'active' THEN paid_before({ref}, {pd})
                       WHEN status = 'suspended' THEN paid_before({ref} - 30 * (1 + CAST(floor(
                            {u("job_arrears", "c", "i")} * 8) AS INTEGER)), {pd})
                       ELSE paid_before(job_start + CAST(floor({u("job_end", "c", "i")}
                            * ({ref} - job_start)) AS INTEGER), {pd}) END AS paid
            FROM jobs
        ), moved AS (
            SELECT *, greatest(birth_date + 28, registered_on - 1
                               - CAST(floor({u("old_enrolment", "c", "i")} * 3000) AS INTEGER))
                          AS old_since
            FROM people WHERE planted_medical OR medical_moved_away
        )
        SELECT pension_city AS c, g, 0 AS ord, person_id, 'pension' AS scheme, status,
               enrolled_on,
               round(CASE WHEN employee_pension OR pension_city <> c
                          THEN {q.pick("pension_city", employee_pension)}
                               * (0.55 + 0.9 * {u("pension_amount", "c", "i")})
                          ELSE {q.pick("pension_city", resident_pension)}
                               * (0.8 + 0.4 * {u("pension_amount", "c", "i")}) END, 2) AS amount,
               CASE WHEN paid >= enrolled_on THEN paid END AS last_paid_on
        FROM pension_paid
        UNION ALL
        SELECT c, g, 1, person_id, 'medical', status, medical_since,
               CASE WHEN working THEN round(wage * 0.12, 2) WHEN employee THEN 0 ELSE 33.33 END,
               last_paid
        FROM medical_rows
        UNION ALL
        SELECT second_city, g, 1, person_id, 'medical', 'active', old_since, 33.33,
               DATE '2025-09-01' + CAST(floor({u("old_premium", "c", "i")} * 120) AS INTEGER)
        FROM moved WHERE planted_medical
        UNION ALL
        SELECT home, g, 1, person_id, 'medical', 'closed', old_since, 33.33,
               CASE WHEN paid_before(registered_on, {q.pick("home", payday)}) >= old_since
                    THEN paid_before(registered_on, {q.pick("home", payday)}) END
        FROM moved WHERE medical_moved_away
        UNION ALL
        SELECT c, g, s.ord, person_id, s.scheme, status, job_start,
               round(wage * CASE s.scheme
                   WHEN 'unemployment' THEN 0.01
                   WHEN 'maternity' THEN 0.008
                   ELSE 0.002 + 0.012 * pow({u("injury_rate", "c", "i")}, 2) END, 2),
               CASE WHEN paid >= job_start THEN paid END
        FROM jobs_paid,
             (VALUES (2, 'unemployment'), (3, 'work_injury'), (4, 'maternity')) s(ord, scheme)
    """)


def _build_population(con: duckdb.DuckDBPyConnection, n: int, seed: int) -> None:
    _draw_people(con, n)
    _identify_people(con, seed)
    _insure_people(con)
    _plant(con)
    _insurance_rows(con)


# --- marriages --------------------------------------------------------------------------------


def _marriage_age(male: str) -> str:
    return f"CASE WHEN {male} THEN {MARRIAGE_AGE[1]} ELSE {MARRIAGE_AGE[0]} END"


def _of_age(birth_date: str, male: str) -> str:
    return f"add_years({birth_date}, {_marriage_age(male)})"


def _other_member(city: str, draw: str) -> str:
    """A member city other than `city`, uniformly."""
    members = len(MEMBER_CITIES)
    return f"({city} + 1 + CAST(floor({draw} * {members - 1}) AS INTEGER)) % {members}"


def _marry_people(con: duckdb.DuckDBPyConnection) -> None:
    """The marriages of the region's people, husband and wife by `g`, in `marriages`.

    Nobody is married twice at once, except the planted bigamists: a remarriage is registered
    only after both spouses' earlier marriages ended, by divorce or by a death (then on the day
    of the death), so a remarriage in another city is a lawful decoy.
    """
    _first_marriages(con)
    _remarriages(con)
    _plant_bigamy(con)
    _register_marriages(con)


def _first_marriages(con: duckdb.DuckDBPyConnection) -> None:
    """Men and women who marry are paired in the city where they register the marriage, by
    birth date within five-year cohorts (husbands about two years older). Most register where
    they live; a migrant from another member city often where the household is registered."""
    members = len(MEMBER_CITIES)
    ref = _date(REFERENCE_DATE)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE first_marriages AS
        WITH suitors AS (
            SELECT g, male, deceased_on, {_of_age("birth_date", "male")} AS of_age,
                   CASE WHEN home < {members} AND home <> c
                             AND {u("wed_at_home", "c", "i")} < 0.6 THEN home
                        WHEN {u("wed_away", "c", "i")} < 0.03
                        THEN {_other_member("c", u("wed_city", "c", "i"))}
                        ELSE c END AS market,
                   birth_date + CASE WHEN male THEN 730 ELSE 0 END
                       + CAST(900 * {gauss("wed_match", "c", "i")} AS INTEGER) AS match_on
            FROM people
            WHERE age_end >= {_marriage_age("male")}
              AND {u("weds", "c", "i")} < 0.94
        ), ranked AS (
            SELECT *, year(match_on) // 5 AS cohort,
                   row_number() OVER (PARTITION BY market, year(match_on) // 5, male
                                      ORDER BY match_on, g) AS r
            FROM suitors
        ), paired AS (
            SELECT h.market AS c, h.g AS husband, w.g AS wife,
                   least(h.deceased_on, w.deceased_on) AS first_death,
                   greatest(h.of_age, w.of_age, {_date(FIRST_MARRIAGE_LAW)}) + CAST(floor(
                       pow({u("wedding", "0", "h.g")}, 1.3) * 14 * 365.25) AS INTEGER)
                       AS registered_on
            FROM ranked h JOIN ranked w USING (market, cohort, r)
            WHERE h.male AND NOT w.male
        ), divorced AS (
            SELECT *, CASE WHEN {u("divorce", "0", "husband")}
                                < CASE WHEN registered_on >= DATE '2000-01-01' THEN 0.22
                                       ELSE 0.08 END
                           THEN registered_on + 180 + CAST(floor(
                                pow({u("divorce_on", "0", "husband")}, 1.5) * 25 * 365.25)
                                AS INTEGER) END AS divorce_on
            FROM paired
            WHERE registered_on < least(first_death, {ref} + 1)
        )
        SELECT c, husband, wife, registered_on,
               least(first_death, CASE WHEN divorce_on <= {ref} THEN divorce_on END)
                   AS dissolved_on
        FROM divorced
    """)


def _remarriages(con: duckdb.DuckDBPyConnection) -> None:
    """Some of those whose first marriage ended, and who outlived it, marry again: paired like
    first marriages, a quarter of them in another member city than the one they live in."""
    ref = _date(REFERENCE_DATE)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE remarriages AS
        WITH ended AS (
            SELECT husband AS g, dissolved_on FROM first_marriages WHERE dissolved_on IS NOT NULL
            UNION ALL
            SELECT wife, dissolved_on FROM first_marriages WHERE dissolved_on IS NOT NULL
        ), free AS (
            SELECT g, male, deceased_on, dissolved_on AS free_since,
                   CASE WHEN {u("remarry_away", "c", "i")} < 0.25
                        THEN {_other_member("c", u("remarry_city", "c", "i"))}
                        ELSE c END AS market,
                   birth_date + CASE WHEN male THEN 1100 ELSE 0 END AS match_on
            FROM ended JOIN people USING (g)
            WHERE coalesce(deceased_on > dissolved_on, true)
              AND {u("remarries", "c", "i")} < 0.45
        ), ranked AS (
            SELECT *, year(match_on) // 10 AS cohort,
                   row_number() OVER (PARTITION BY market, year(match_on) // 10, male
                                      ORDER BY match_on, g) AS r
            FROM free
        ), paired AS (
            SELECT h.market AS c, h.g AS husband, w.g AS wife,
                   least(h.deceased_on, w.deceased_on) AS first_death,
                   greatest(h.free_since, w.free_since) + 60 + CAST(floor(
                       pow({u("rewedding", "0", "h.g")}, 1.5) * 8 * 365.25) AS INTEGER)
                       AS registered_on
            FROM ranked h JOIN ranked w USING (market, cohort, r)
            WHERE h.male AND NOT w.male
        )
        SELECT c, husband, wife, registered_on, first_death AS dissolved_on
        FROM paired
        WHERE registered_on < least(first_death, {ref} + 1)
    """)


def _plant_bigamy(con: duckdb.DuckDBPyConnection) -> None:
    """Bigamists: one spouse of some lasting marriage registers another marriage in another
    member city (the one they live in, when that is not where the first was registered), with
    a never-married adult living there."""
    ref = _date(REFERENCE_DATE)
    lasting = """SELECT c, husband, wife, registered_on FROM first_marriages
                 WHERE dissolved_on IS NULL
                 UNION ALL
                 SELECT c, husband, wife, registered_on FROM remarriages
                 WHERE dissolved_on IS NULL"""
    (lasting_count,) = con.execute(f"SELECT count(*) FROM ({lasting})").fetchone()
    plants = max(MIN_PLANTED, round(PLANTED_BIGAMY_SHARE * lasting_count))
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE bigamies AS
        WITH chosen AS (
            SELECT c AS first_city, registered_on AS first_on,
                   CASE WHEN {u("bigamist", "0", "husband")} < 0.5 THEN husband ELSE wife END
                       AS g
            FROM ({lasting})
            WHERE registered_on <= {ref} - 730
        ), planted AS (
            SELECT b.*, p.male,
                   CASE WHEN p.c <> b.first_city THEN p.c
                        ELSE {_other_member("b.first_city", u("bigamy_city", "0", "b.g"))}
                   END AS second_city,
                   row_number() OVER (ORDER BY {u("plant_bigamy", "0", "b.g")}, b.g) AS pick
            FROM chosen b JOIN people p USING (g)
        ), ranked AS (
            SELECT *, row_number() OVER (PARTITION BY second_city, male ORDER BY g) AS r
            FROM planted WHERE pick <= {plants}
        ), unwed AS (
            SELECT g, c, male, {_of_age("birth_date", "male")} AS of_age,
                   row_number() OVER (PARTITION BY c, male
                                      ORDER BY {u("bigamy_spouse", "c", "i")}, g) AS r
            FROM people
            WHERE alive AND {_of_age("birth_date", "male")} <= {ref} - 365
              AND g NOT IN (SELECT husband FROM first_marriages
                            UNION ALL SELECT wife FROM first_marriages)
        ), dated AS (
            SELECT b.second_city AS c, b.g AS bigamist,
                   CASE WHEN b.male THEN b.g ELSE s.g END AS husband,
                   CASE WHEN b.male THEN s.g ELSE b.g END AS wife,
                   greatest(b.first_on + 365, s.of_age) AS earliest
            FROM ranked b JOIN unwed s ON s.c = b.second_city AND s.male <> b.male AND s.r = b.r
        )
        SELECT c, bigamist, husband, wife,
               earliest + CAST(floor({u("bigamy_on", "0", "bigamist")}
                                     * ({ref} - earliest + 1)) AS INTEGER) AS registered_on,
               CAST(NULL AS DATE) AS dissolved_on
        FROM dated
    """)
    (planted,) = con.execute("SELECT count(*) FROM bigamies").fetchone()
    if planted < plants:
        raise ValueError("too few lasting marriages and unmarried adults to plant bigamy")


def _register_marriages(con: duckdb.DuckDBPyConnection) -> None:
    """Every marriage with its registration number (J, the registry's division code, the year
    and a number within the city and year) and its spouses; which one is spouse1 is drawn."""
    q = Statement()
    district = q.choose_in("c", u("registry", "kind", "husband"), _district_rows(MEMBER_CITIES))
    q.run(con, f"""
        CREATE OR REPLACE TEMP TABLE marriages AS
        WITH unions AS (
            SELECT 0 AS kind, c, husband, wife, registered_on, dissolved_on FROM first_marriages
            UNION ALL
            SELECT 1, c, husband, wife, registered_on, dissolved_on FROM remarriages
            UNION ALL
            SELECT 2, c, husband, wife, registered_on, dissolved_on FROM bigamies
        ), numbered AS (
            SELECT *, {q.pick(district, [d.code for d in _DISTRICTS])} AS registry,
                   row_number() OVER (PARTITION BY c, year(registered_on)
                                      ORDER BY registered_on, kind, husband) AS serial
            FROM unions
        )
        SELECT n.c, n.husband, n.wife,
               'J' || n.registry || '-' || CAST(year(n.registered_on) AS VARCHAR) || '-'
                   || lpad(CAST(n.serial AS VARCHAR), 6, '0') AS registration_id,
               CASE WHEN {u("spouse_order", "kind", "husband")} < 0.5 THEN h.person_id
                    ELSE w.person_id END AS spouse1_id,
               CASE WHEN {u("spouse_order", "kind", "husband")} < 0.5 THEN w.person_id
                    ELSE h.person_id END AS spouse2_id,
               n.registered_on, n.dissolved_on
        FROM numbered n JOIN people h ON h.g = n.husband JOIN people w ON w.g = n.wife
    """)
    con.execute("DROP TABLE first_marriages")
    con.execute("DROP TABLE remarriages")


# --- city files -------------------------------------------------------------------------------


def _write_city(con: duckdb.DuckDBPyConnection, path: Path, x: int,
                scale: RegionScale) -> dict[str, int]:
    for stale in (path, path.with_name(path.name + ".wal")):
        stale.unlink(missing_ok=True)
    with owner_only():  # the file and its write-ahead log, created as DuckDB writes them
        counts = _fill_city(con, path, x, scale)
    os.chmod(path, PRIVATE_FILE)
    return counts


def _fill_city(con: duckdb.DuckDBPyConnection, path: Path, x: int,
               scale: RegionScale) -> dict[str, int]:
    quoted = str(path).replace("'", "''")
    con.execute(f"ATTACH '{quoted}' AS city_db")
    try:
        con.execute("USE city_db")
        for dataset in DATASETS.values():
            con.execute(create_table_sql(dataset))
        con.execute("USE memory")
        _write_population(con, x)
        _write_insurance(con, x)
        _write_trips(con, x, scale.trips_per_city)
        _write_visits(con, x, scale.visits_per_city)
        _write_marriages(con, x)
        return {
            name: con.execute(f'SELECT count(*) FROM city_db."{name}"').fetchone()[0]
            for name in DATASETS
        }
    finally:
        con.execute("USE memory")
        con.execute("DETACH city_db")


def _write_population(con: duckdb.DuckDBPyConnection, x: int) -> None:
    con.execute(f"""
        INSERT INTO city_db.population
        SELECT person_id, name, CASE WHEN male THEN 'M' ELSE 'F' END, birth_date, district_code,
               hukou_city, registered_on, deceased_on
        FROM people WHERE c = {x} ORDER BY i
    """)


def _write_insurance(con: duckdb.DuckDBPyConnection, x: int) -> None:
    con.execute(f"""
        INSERT INTO city_db.social_insurance
        SELECT person_id, scheme, status, enrolled_on, CAST(amount AS DECIMAL(12,2)), last_paid_on
        FROM insurance WHERE c = {x} ORDER BY g, ord
    """)


def _write_marriages(con: duckdb.DuckDBPyConnection, x: int) -> None:
    con.execute(f"""
        INSERT INTO city_db.marriages
        SELECT registration_id, spouse1_id, spouse2_id, registered_on, dissolved_on,
               '{CITY_CODES[x]}'
        FROM marriages WHERE c = {x} ORDER BY registered_on, registration_id
    """)


def _days(start: dt.date, end: dt.date) -> list[dt.date]:
    return [start + dt.timedelta(days=k) for k in range((end - start).days + 1)]


def _is_holiday(day: dt.date) -> bool:
    return any(first <= day <= last for first, last in HOLIDAYS)


def _transit_day_weight(day: dt.date) -> float:
    if _is_holiday(day):
        return 0.6
    return (1.0, 1.0, 1.0, 1.0, 1.0, 0.72, 0.65)[day.weekday()]


def _visit_day_weight(day: dt.date) -> float:
    if _is_holiday(day):
        return 0.35
    return (1.0, 1.0, 1.0, 1.0, 1.0, 0.7, 0.45)[day.weekday()]


def _mixture(peaks: Sequence[tuple[float, float, float]], mix: str, z: str) -> str:
    cases, cumulative = [], 0.0
    for share, mean, sd in peaks[:-1]:
        cumulative += share
        cases.append(f"WHEN {mix} < {cumulative} THEN {mean} + {sd} * {z}")
    _, mean, sd = peaks[-1]
    return f"CASE {' '.join(cases)} ELSE {mean} + {sd} * {z} END"


def _create_pool(con: duckdb.DuckDBPyConnection, q: Statement, table: str,
                 sources: Sequence[str]) -> list[int]:
    """People (or cards) keyed segment * SEGMENT + rank; returns the size of each segment.

    Sources yield (seg, g, rank_key, ...); a lower rank_key means a more frequent user.
    """
    q.run(con, f"""
        CREATE OR REPLACE TEMP TABLE {table} AS
        SELECT seg * {SEGMENT} + row_number() OVER (PARTITION BY seg ORDER BY rank_key, g) - 1
                   AS key, * EXCLUDE (rank_key)
        FROM ({" UNION ALL ".join(sources)})
    """)
    sizes = [0] * (ANONYMOUS + 1)
    for seg, size in con.execute(f"SELECT seg, count(*) FROM {table} GROUP BY seg").fetchall():
        sizes[seg] = size
    return sizes


def _visitor_quota(x: int, shares: dict[str, float], per_person: float, n: int) -> list[int]:
    return [0 if k == x else math.ceil(shares.get(city, 0.0) * n / per_person)
            for k, city in enumerate(CITIES)]


def _segment_weights(sizes: list[int], shares: dict[str, float], anonymous: float) -> list[float]:
    """Shares of locals, of visitors from each member city and of anonymous cards."""
    visitors = [shares.get(city, 0.0) if sizes[k + 1] else 0.0 for k, city in enumerate(CITIES)]
    weights = [max(0.0, 1.0 - anonymous - sum(visitors)), *visitors, anonymous]
    if not sizes[0]:
        weights[0] = 0.0
    return weights


def _card_id(city_code: str, holder: str) -> str:
    return (f"'3104' || left({city_code}, 4) || CASE WHEN {holder} < 0 THEN '0' ELSE '1' END"
            f" || lpad(CAST((abs({holder}) * 7919 + 104729) % 10000000000 AS VARCHAR), 10, '0')")


def _build_riders(con: duckdb.DuckDBPyConnection, x: int, n: int) -> list[int]:
    q = Statement()
    code = f"'{CITY_CODES[x]}'"
    quota = _visitor_quota(x, COMMUTER_TAPS[CITIES[x]], TAPS_PER_COMMUTER, n)
    anonymous = math.ceil(PROFILES[CITIES[x]].anonymous_taps * n / TAPS_PER_ANONYMOUS_CARD)
    home_code = q.pick("c", CITY_CODES)
    return _create_pool(con, q, "riders", (
        f"""SELECT 0 AS seg, g, {u("rider_rank", str(x), "g")}
                   / CASE WHEN age_now BETWEEN 18 AND 59 THEN 3.0 WHEN age_now < 18 THEN 2.0
                          ELSE 1.0 END AS rank_key,
                   person_id, {code} AS card_city, {_card_id(code, "g")} AS card_id,
                   age_now AS age
            FROM people
            WHERE c = {x} AND alive AND age_now BETWEEN 6 AND 89
              AND {u("rides", str(x), "g")} < CASE WHEN age_now < 18 THEN 0.7
                  WHEN age_now < 60 THEN 0.8 WHEN age_now < 80 THEN 0.5 ELSE 0.15 END""",
        f"""SELECT c + 1, g, rank_key, person_id, {home_code}, {_card_id(home_code, "g")},
                   age_now
            FROM (SELECT *, {u("commuter_rank", str(x), "g")} AS rank_key,
                         row_number() OVER (PARTITION BY c ORDER BY rank_key, g) AS r
                  FROM people WHERE c <> {x} AND alive AND age_now BETWEEN 20 AND 59)
            WHERE r <= {q.pick("c", quota)}""",
        f"""SELECT {ANONYMOUS}, -1 - k, k, NULL, {code}, {_card_id(code, "-1 - k")}, NULL
            FROM range({anonymous}) t(k)""",
    ))


def _stations(city: str) -> list[tuple[int, str, str, float]]:
    """(line index, station, district, share of taps) for every stop of every line."""
    rows = []
    for k, line in enumerate(LINES[city]):
        total = sum(stop.weight for stop in line.stops)
        rows += [(k, s.name, s.district, line.weight * s.weight / total) for s in line.stops]
    return rows


def _write_trips(con: duckdb.DuckDBPyConnection, x: int, n: int) -> None:
    if n == 0:
        return
    city = CITIES[x]
    sizes = _build_riders(con, x, n)
    weights = _segment_weights(sizes, COMMUTER_TAPS[city], PROFILES[city].anonymous_taps)
    skews = [1.6, *[1.0] * ANONYMOUS]
    lines, stations = LINES[city], _stations(city)
    days = _days(TRANSIT_START, TRANSIT_START + dt.timedelta(days=TRANSIT_DAYS - 1))
    start_us = (dt.datetime.combine(TRANSIT_START, dt.time()) - dt.datetime(1970, 1, 1)) \
        // dt.timedelta(microseconds=1)
    q = Statement()
    fares = q.bind([list(line.fares) for line in lines])
    line_of = q.pick("st", [s[0] for s in stations])
    q.run(con, f"""
        INSERT INTO city_db.transit_trips
        WITH draws AS (
            SELECT j,
                   {q.choose(u("tap_segment", str(x), "j"), weights)} AS seg,
                   {q.choose(u("tap_station", str(x), "j"), [s[3] for s in stations])} AS st,
                   {q.choose(u("tap_day", str(x), "j"), [_transit_day_weight(d) for d in days])}
                       AS day,
                   {u("tap_mix", str(x), "j")} AS mix,
                   {gauss("tap_time", str(x), "j")} AS z,
                   {u("tap_rider", str(x), "j")} AS rider_draw,
                   {u("tap_fare", str(x), "j")} AS fare_draw
            FROM range({n}) r(j)
        ), timed AS (
            SELECT *, {line_of} AS line_i,
                   seg * {SEGMENT} + CAST(floor(pow(rider_draw, {q.pick("seg", skews)})
                                               * {q.pick("seg", sizes)}) AS BIGINT) AS key,
                   CASE WHEN {q.pick("day", [d.weekday() >= 5 or _is_holiday(d) for d in days])}
                        THEN {_mixture(WEEKEND_HOURS, "mix", "z")}
                        ELSE {_mixture(WEEKDAY_HOURS, "mix", "z")} END AS hour
            FROM draws
        ), taps AS (
            SELECT *, {q.pick("line_i", [line.mode for line in lines])} AS mode,
                   CASE WHEN hour >= 5 AND hour < 24 THEN hour
                        ELSE 6 + 16 * {u("tap_hour", str(x), "j")} END AS h,
                   list_extract({fares}, 1 + line_i) AS line_fares
            FROM timed
        )
        SELECT r.card_id, r.person_id,
               make_timestamp(CAST({start_us} + day * 86400000000
                                   + floor(h * 3600) * 1000000 AS BIGINT)),
               mode, {q.pick("line_i", [line.name for line in lines])},
               {q.pick("st", [s[1] for s in stations])}, {q.pick("st", [s[2] for s in stations])},
               CAST(CASE WHEN mode = 'bus' AND r.age >= {PROFILES[city].free_bus_age} THEN 0
                         ELSE list_extract(line_fares, 1 + CAST(floor(pow(fare_draw, 2)
                              * len(line_fares)) AS INTEGER)) END AS DECIMAL(8,2)),
               r.card_city
        FROM taps JOIN riders r USING (key)
        ORDER BY j
    """)


def _visit_intensity(age: str) -> str:
    return (f"CASE WHEN {age} < 5 THEN 3.0 WHEN {age} < 15 THEN 1.5 WHEN {age} < 45 THEN 1.0"
            f" WHEN {age} < 60 THEN 2.0 WHEN {age} < 75 THEN 4.0 ELSE 6.0 END")


def _build_patients(con: duckdb.DuckDBPyConnection, x: int, n: int) -> list[int]:
    q = Statement()
    quota = _visitor_quota(x, OUT_OF_CITY_VISITS[CITIES[x]], VISITS_PER_VISITOR, n)
    return _create_pool(con, q, "patients", (
        f"""SELECT 0 AS seg, g, {u("patient_rank", str(x), "g")} / {_visit_intensity("age_now")}
                   AS rank_key, person_id, c AS insured_in, male, age_now AS age,
                   medical_since AS insured_since
            FROM people WHERE c = {x} AND medical_active""",
        f"""SELECT c + 1, g, rank_key, person_id, c, male, age_now, medical_since
            FROM (SELECT *, {u("visitor_rank", str(x), "g")} / {_visit_intensity("age_now")}
                             AS rank_key,
                         row_number() OVER (PARTITION BY c ORDER BY rank_key, g) AS r
                  FROM people WHERE c <> {x} AND medical_active)
            WHERE r <= {q.pick("c", quota)}""",
    ))


def _diagnosis_weight(d: Diagnosis, band: int, male: int, winter: int, outside: int) -> float:
    if d.sex and d.sex != ("M" if male else "F"):
        return 0.0
    seasonal = d.winter if winter else 1.0
    referred = 3.0 if outside and d.cost_high >= 10_000 else 1.0
    return d.weight(band) * seasonal * referred


def _diagnosis_rows() -> list[list[float]]:
    """Indexed band * 8 + male * 4 + winter * 2 + outside."""
    return [[_diagnosis_weight(d, band, male, winter, outside) for d in DIAGNOSES]
            for band in range(3) for male in range(2) for winter in range(2)
            for outside in range(2)]


def _write_visits(con: duckdb.DuckDBPyConnection, x: int, n: int) -> None:
    if n == 0:
        return
    city = CITIES[x]
    sizes = _build_patients(con, x, n)
    weights = _segment_weights(sizes, OUT_OF_CITY_VISITS[city], 0.0)
    skews = [1.3, *[1.0] * ANONYMOUS]
    hospitals = HOSPITALS[city]
    days = _days(VISITS_START, REFERENCE_DATE)
    q = Statement()
    low = q.bind([d.cost_low for d in DIAGNOSES])
    high = q.bind([d.cost_high for d in DIAGNOSES])
    q.run(con, f"""
        INSERT INTO city_db.medical_visits
        WITH draws AS (
            SELECT j, {q.choose(u("visit_segment", str(x), "j"), weights)} AS seg,
                   {q.choose(u("visit_day", str(x), "j"), [_visit_day_weight(d) for d in days])}
                       AS day,
                   {u("visit_patient", str(x), "j")} AS patient_draw
            FROM range({n}) r(j)
        ), keyed AS (
            SELECT *, seg * {SEGMENT} + CAST(floor(pow(patient_draw, {q.pick("seg", skews)})
                                             * {q.pick("seg", sizes)}) AS BIGINT) AS key,
                   {_date(VISITS_START)} + day AS drawn_on
            FROM draws
        ), seen AS (
            SELECT v.j, p.person_id, p.insured_in, p.age,
                   CASE WHEN v.drawn_on >= p.insured_since THEN v.drawn_on
                        ELSE p.insured_since + CAST(floor({u("visit_late", str(x), "v.j")}
                             * ({_date(REFERENCE_DATE)} - p.insured_since + 1)) AS INTEGER)
                   END AS visited_on,
                   CAST(v.seg > 0 AS INTEGER) AS outside,
                   {q.choose_in(
                       "(CASE WHEN p.age < 14 THEN 0 WHEN p.age < 60 THEN 1 ELSE 2 END) * 8"
                       " + CAST(p.male AS INTEGER) * 4"
                       " + CAST(month(v.drawn_on) <= 3 AS INTEGER) * 2"
                       " + CAST(v.seg > 0 AS INTEGER)",
                       u("diagnosis", str(x), "v.j"), _diagnosis_rows())} AS dx
            FROM keyed v JOIN patients p USING (key)
        ), costed AS (
            SELECT *, round({PROFILES[city].care_prices} * list_extract({low}, 1 + dx)
                            * pow(list_extract({high}, 1 + dx) / list_extract({low}, 1 + dx),
                                  pow({u("visit_cost", str(x), "j")}, 1.8)), 2) AS cost
            FROM seen
        ), settled AS (
            SELECT *, CASE WHEN {u("self_paid", str(x), "j")} < 0.06 THEN 0.0
                      ELSE least(0.95, greatest(0.0,
                           CASE WHEN cost >= 3000 THEN 0.80 ELSE 0.55 END
                           - CASE WHEN outside = 1 THEN 0.12 ELSE 0.0 END
                           + CASE WHEN age >= 60 THEN 0.08 ELSE 0.0 END
                           + 0.1 * ({u("visit_ratio", str(x), "j")} - 0.5))) END AS ratio
            FROM costed
        )
        SELECT CASE WHEN cost >= 5000 THEN 'ZY' ELSE 'MZ' END || strftime(visited_on, '%Y%m%d')
                   || lpad(CAST(j + 1 AS VARCHAR), 9, '0'),
               person_id, {q.pick("insured_in", CITY_CODES)}, visited_on,
               {q.pick(q.choose_in("outside", u("hospital", str(x), "j"),
                                   [[h.weight for h in hospitals],
                                    [h.weight ** 2 for h in hospitals]]),
                       [h.code for h in hospitals])},
               CASE WHEN age < 14 AND {q.pick("dx", [d.department in PAEDIATRIC
                                                     for d in DIAGNOSES])}
                    THEN 'pediatrics' ELSE {q.pick("dx", [d.department for d in DIAGNOSES])} END,
               {q.pick("dx", [d.code for d in DIAGNOSES])},
               CAST(cost AS DECIMAL(12,2)),
               CAST(least(cost, round(cost * ratio, 2)) AS DECIMAL(12,2))
        FROM settled
        ORDER BY j
    """)


# --- ground truth -----------------------------------------------------------------------------


def _ground_truth(con: duckdb.DuckDBPyConnection, seed: int, scale: RegionScale,
                  cities: tuple[str, ...], counts: dict[str, dict[str, int]]) -> dict:
    written = {CITIES.index(c) for c in cities}
    pensions = con.execute("""
        SELECT p.person_id, p.c, p.deceased_on, i.c, i.last_paid_on
        FROM people p JOIN insurance i ON i.g = p.g AND i.scheme = 'pension'
        WHERE p.planted_pension ORDER BY p.person_id
    """).fetchall()
    medical = con.execute("""
        SELECT person_id, c, second_city FROM people WHERE planted_medical ORDER BY person_id
    """).fetchall()
    bigamies = con.execute("""
        SELECT p.person_id, list((m.c, m.registration_id))
        FROM bigamies b JOIN people p ON p.g = b.bigamist
        JOIN marriages m ON b.bigamist IN (m.husband, m.wife) AND m.dissolved_on IS NULL
        GROUP BY p.person_id ORDER BY p.person_id
    """).fetchall()
    married = [(person, sorted((CITIES[k], registration) for k, registration in found))
               for person, found in bigamies]
    return {
        "seed": seed,
        "scale": asdict(scale),
        "reference_date": REFERENCE_DATE.isoformat(),
        "cities": {
            city.id: {"name": city.name, "code": city.code, "file": f"{city.id}.duckdb"}
            for city in MEMBER_CITIES if city.id in cities
        },
        "counts": counts,
        "deceased_with_active_pension": [
            {"person_id": person, "deceased_in": CITIES[a], "deceased_on": died.isoformat(),
             "pension_city": CITIES[b], "last_paid_on": paid.isoformat()}
            for person, a, died, b, paid in pensions if {a, b} <= written
        ],
        "medical_insurance_in_two_cities": [
            {"person_id": person, "cities": [CITIES[k] for k in sorted((a, b))]}
            for person, a, b in medical if {a, b} <= written
        ],
        "married_in_two_cities": [
            {"person_id": person, "cities": [city for city, _ in found],
             "registration_ids": [registration for _, registration in found]}
            for person, found in married if {city for city, _ in found} <= set(cities)
        ],
    }
