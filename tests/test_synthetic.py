"""The synthetic region: schema conformance, realistic ids and flows, planted facts, determinism."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import re
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from federation.query.datasets import DATASETS
from federation.synthetic import CITIES, RegionScale, generate_region
from federation.synthetic.divisions import MEMBER_CITIES, known_division_codes, member
from federation.synthetic.icd10 import DIAGNOSES, chapter_of
from federation.synthetic.networks import HOSPITALS, LINES

SCALE = RegionScale(people_per_city=2_000, trips_per_city=20_000, visits_per_city=4_000)
TINY = RegionScale(people_per_city=300, trips_per_city=2_000, visits_per_city=500)
WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CODE = {c.id: c.code for c in MEMBER_CITIES}


@pytest.fixture(scope="module")
def region(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    directory = tmp_path_factory.mktemp("region")
    truth_path = generate_region(directory, SCALE, seed=7)
    return directory, json.loads(truth_path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def con(region: tuple[Path, dict]) -> Iterator[duckdb.DuckDBPyConnection]:
    directory, _ = region
    connection = duckdb.connect()
    for city in CITIES:
        connection.execute(f"ATTACH '{directory / city}.duckdb' AS {city} (READ_ONLY)")
    yield connection
    connection.close()


def _union(table: str, columns: str = "*") -> str:
    return " UNION ALL ".join(
        f"SELECT '{city}' AS city, {columns} FROM {city}.{table}" for city in CITIES)


def _check_char(body: str) -> str:
    return "10X98765432"[sum(int(d) * w for d, w in zip(body, WEIGHTS, strict=True)) % 11]


def _table_digests(directory: Path, cities: tuple[str, ...] = CITIES) -> dict[str, str]:
    digests = {}
    with duckdb.connect() as connection:
        for city in cities:
            connection.execute(f"ATTACH '{directory / city}.duckdb' AS {city} (READ_ONLY)")
            for table in DATASETS:
                (digest,) = connection.execute(
                    f"SELECT md5(string_agg(CAST(t AS VARCHAR), chr(10) ORDER BY rowid))"
                    f" FROM {city}.{table} t").fetchone()
                digests[f"{city}.{table}"] = digest
    return digests


def test_reference_data_is_consistent() -> None:
    for city in MEMBER_CITIES:
        assert len(city.districts) >= 6
        assert all(re.fullmatch(r"[0-9]{6}", d.code) for d in city.districts)
        prefix = city.code[:2] if city.code.endswith("0000") else city.code[:4]
        assert all(d.code.startswith(prefix) for d in city.districts)
        codes = {d.code for d in city.districts}
        for line in LINES[city.id]:
            assert line.mode in ("metro", "bus", "rail") and line.fares
            assert {stop.district for stop in line.stops} <= codes, line.name
        assert {h.district for h in HOSPITALS[city.id]} <= codes
    icd = DATASETS["medical_visits"].column("icd10").pattern
    for diagnosis in DIAGNOSES:
        assert re.fullmatch(icd, diagnosis.code)
        assert chapter_of(diagnosis.code) is diagnosis.chapter
        assert 0 < diagnosis.cost_low < diagnosis.cost_high


def test_tables_have_the_standard_schema(con: duckdb.DuckDBPyConnection) -> None:
    for city in CITIES:
        for dataset in DATASETS.values():
            rows = con.execute(
                "SELECT column_name, data_type, is_nullable FROM information_schema.columns"
                " WHERE table_catalog = ? AND table_name = ? ORDER BY ordinal_position",
                [city, dataset.name]).fetchall()
            expected = [(c.name, c.type, "YES" if c.nullable else "NO") for c in dataset.columns]
            assert rows == expected, (city, dataset.name)


def test_every_value_conforms_to_its_column(con: duckdb.DuckDBPyConnection) -> None:
    for city in CITIES:
        for dataset in DATASETS.values():
            for column in dataset.columns:
                checks = [] if column.nullable else [f'"{column.name}" IS NULL']
                if column.allowed:
                    values = ", ".join(f"'{v}'" for v in column.allowed)
                    checks.append(f'"{column.name}" NOT IN ({values})')
                if column.pattern:
                    checks.append(
                        f"NOT regexp_full_match(\"{column.name}\", '{column.pattern}')")
                if not checks:
                    continue
                (bad,) = con.execute(
                    f"SELECT count(*) FROM {city}.{dataset.name} WHERE {' OR '.join(checks)}"
                ).fetchone()
                assert bad == 0, (city, dataset.name, column.name)


def test_every_table_has_rows_and_counts_match(
    con: duckdb.DuckDBPyConnection, region: tuple[Path, dict]
) -> None:
    _, truth = region
    for city in CITIES:
        for table in DATASETS:
            (rows,) = con.execute(f"SELECT count(*) FROM {city}.{table}").fetchone()
            assert rows > 0 and rows == truth["counts"][city][table], (city, table)
    assert {c: truth["counts"][c]["population"] for c in CITIES} == dict.fromkeys(
        CITIES, SCALE.people_per_city)


def test_resident_ids_are_valid_gb11643(con: duckdb.DuckDBPyConnection) -> None:
    rows = con.execute(
        f"SELECT person_id, sex, birth_date FROM ({_union('population')})").fetchall()
    known = known_division_codes()
    assert len({r[0] for r in rows}) == len(rows)
    for person_id, sex, birth_date in rows:
        assert person_id[17] == _check_char(person_id[:17]), person_id
        assert person_id[:6] in known, person_id
        assert person_id[6:14] == birth_date.strftime("%Y%m%d"), person_id
        assert int(person_id[16]) % 2 == (1 if sex == "M" else 0), person_id


def test_former_division_codes_appear_for_older_people(con: duckdb.DuckDBPyConnection) -> None:
    (old_codes,) = con.execute(
        "SELECT count(*) FROM beijing.population"
        " WHERE left(person_id, 6) IN ('110103', '110104', '110221', '110224', '110228')"
    ).fetchone()
    (late,) = con.execute(
        "SELECT count(*) FROM beijing.population"
        " WHERE left(person_id, 6) IN ('110103', '110104') AND year(birth_date) > 2010"
    ).fetchone()
    assert old_codes > 0 and late == 0


def test_every_person_reference_exists(con: duckdb.DuckDBPyConnection) -> None:
    people = f"SELECT person_id FROM ({_union('population', 'person_id')})"
    for table, column in (("social_insurance", "person_id"), ("transit_trips", "person_id"),
                          ("medical_visits", "person_id"), ("marriages", "spouse1_id"),
                          ("marriages", "spouse2_id")):
        (missing,) = con.execute(
            f"SELECT count(*) FROM ({_union(table, column)})"
            f" WHERE {column} IS NOT NULL AND {column} NOT IN ({people})").fetchone()
        assert missing == 0, (table, column)


def test_one_enrolment_per_person_and_scheme(con: duckdb.DuckDBPyConnection) -> None:
    (duplicates,) = con.execute(
        f"SELECT count(*) FROM (SELECT city, person_id, scheme FROM"
        f" ({_union('social_insurance')}) GROUP BY ALL HAVING count(*) > 1)").fetchone()
    assert duplicates == 0


def test_enrolment_and_visit_invariants(con: duckdb.DuckDBPyConnection) -> None:
    (late_paid,) = con.execute(
        f"SELECT count(*) FROM ({_union('social_insurance')})"
        f" WHERE last_paid_on < enrolled_on OR last_paid_on > DATE '2026-09-30'"
        f" OR enrolled_on > DATE '2026-09-30'").fetchone()
    (overpaid,) = con.execute(
        f"SELECT count(*) FROM ({_union('medical_visits')})"
        f" WHERE insurance_paid > total_cost OR insurance_paid < 0 OR total_cost <= 0").fetchone()
    (duplicate_visits,) = con.execute(
        f"SELECT count(*) - count(DISTINCT city || visit_id) FROM ({_union('medical_visits')})"
    ).fetchone()
    (impossible_visits,) = con.execute(f"""
        SELECT count(*) FROM ({_union('medical_visits')}) v
        JOIN ({_union('population')}) p USING (person_id)
        WHERE v.visited_on < greatest(p.birth_date, DATE '2026-01-01')
           OR v.visited_on > coalesce(p.deceased_on, DATE '2026-09-30')
    """).fetchone()
    assert late_paid == overpaid == duplicate_visits == impossible_visits == 0


def test_deceased_with_active_pension_is_planted_and_complete(
    con: duckdb.DuckDBPyConnection, region: tuple[Path, dict]
) -> None:
    _, truth = region
    planted = truth["deceased_with_active_pension"]
    assert len(planted) >= 3
    found = con.execute(f"""
        SELECT p.person_id, p.city, p.deceased_on, s.city, s.last_paid_on
        FROM ({_union('population')}) p
        JOIN ({_union('social_insurance')}) s USING (person_id)
        WHERE s.scheme = 'pension' AND s.status = 'active' AND p.deceased_on IS NOT NULL
          AND s.last_paid_on > p.deceased_on
        ORDER BY p.person_id
    """).fetchall()
    assert all(row[1] != row[3] for row in found)
    expected = [(e["person_id"], e["deceased_in"], dt.date.fromisoformat(e["deceased_on"]),
                 e["pension_city"], dt.date.fromisoformat(e["last_paid_on"])) for e in planted]
    assert found == expected


def test_medical_insurance_in_two_cities_is_planted_and_complete(
    con: duckdb.DuckDBPyConnection, region: tuple[Path, dict]
) -> None:
    _, truth = region
    planted = truth["medical_insurance_in_two_cities"]
    assert len(planted) >= 3
    found = con.execute(f"""
        SELECT person_id, list(city ORDER BY city)
        FROM ({_union('social_insurance')})
        WHERE scheme = 'medical' AND status = 'active'
        GROUP BY person_id HAVING count(*) > 1 ORDER BY person_id
    """).fetchall()
    assert found == [(e["person_id"], sorted(e["cities"])) for e in planted]
    assert all(len(set(e["cities"])) == 2 for e in planted)


# What each city contributes to a cross-city check, as private set intersection sees it: the
# distinct keys of one side, computed by that city alone.
PENSION_STILL_PAID = ("SELECT person_id FROM {city}.social_insurance"
                      " WHERE scheme = 'pension' AND status = 'active'")
DECEASED = "SELECT person_id FROM {city}.population WHERE deceased_on IS NOT NULL"
MEDICAL_ACTIVE = ("SELECT person_id FROM {city}.social_insurance"
                  " WHERE scheme = 'medical' AND status = 'active'")
MARRIED = ("SELECT spouse1_id FROM {city}.marriages WHERE dissolved_on IS NULL"
           " UNION SELECT spouse2_id FROM {city}.marriages WHERE dissolved_on IS NULL")


def _intersection(con: duckdb.DuckDBPyConnection, owner: str, a: str, partner: str,
                  b: str) -> set[str]:
    rows = con.execute(f"({owner.format(city=a)}) INTERSECT ({partner.format(city=b)})")
    return {person for (person,) in rows.fetchall()}


def test_every_pair_of_cities_finds_exactly_the_planted_cases(
    con: duckdb.DuckDBPyConnection, region: tuple[Path, dict]
) -> None:
    _, truth = region
    pensions = truth["deceased_with_active_pension"]
    medical = truth["medical_insurance_in_two_cities"]
    married = truth["married_in_two_cities"]
    for a, b in itertools.permutations(CITIES, 2):
        assert _intersection(con, PENSION_STILL_PAID, a, DECEASED, b) == {
            e["person_id"] for e in pensions if (e["pension_city"], e["deceased_in"]) == (a, b)
        }, (a, b)
        assert _intersection(con, MEDICAL_ACTIVE, a, MEDICAL_ACTIVE, b) == {
            e["person_id"] for e in medical if set(e["cities"]) == {a, b}}, (a, b)
        assert _intersection(con, MARRIED, a, MARRIED, b) == {
            e["person_id"] for e in married if set(e["cities"]) == {a, b}}, (a, b)


def test_married_in_two_cities_is_planted_with_its_registrations(
    con: duckdb.DuckDBPyConnection, region: tuple[Path, dict]
) -> None:
    _, truth = region
    planted = truth["married_in_two_cities"]
    assert len(planted) >= 3
    assert len({e["person_id"] for e in planted}) == len(planted)
    for entry in planted:
        assert entry["cities"] == sorted(entry["cities"]) and len(set(entry["cities"])) == 2
        for city, registration in zip(entry["cities"], entry["registration_ids"], strict=True):
            (row,) = con.execute(
                f"SELECT spouse1_id, spouse2_id, dissolved_on FROM {city}.marriages"
                f" WHERE registration_id = ?", [registration]).fetchall()
            assert entry["person_id"] in row[:2] and row[2] is None, (entry, city)


def test_marriages_are_lawful_except_the_planted_ones(
    con: duckdb.DuckDBPyConnection, region: tuple[Path, dict]
) -> None:
    _, truth = region
    marriages = _union("marriages")
    for city in CITIES:
        codes, duplicates = con.execute(
            f"SELECT list(DISTINCT registering_city), count(*) - count(DISTINCT registration_id)"
            f" FROM {city}.marriages").fetchone()
        assert codes == [CODE[city]] and duplicates == 0, city
    spouses = f"""
        SELECT m.*, m.spouse1_id AS spouse, p.sex, p.birth_date, p.deceased_on, p.city AS lives_in
        FROM ({marriages}) m JOIN ({_union('population')}) p ON p.person_id = m.spouse1_id
        UNION ALL
        SELECT m.*, m.spouse2_id, p.sex, p.birth_date, p.deceased_on, p.city
        FROM ({marriages}) m JOIN ({_union('population')}) p ON p.person_id = m.spouse2_id
    """
    (impossible,) = con.execute(f"""
        SELECT count(*) FROM ({spouses})
        WHERE registered_on < birth_date + INTERVAL (CASE sex WHEN 'M' THEN 22 ELSE 20 END) YEAR
           OR registered_on >= coalesce(deceased_on, DATE '2026-10-01')
           OR dissolved_on <= registered_on OR dissolved_on > DATE '2026-09-30'
           OR dissolved_on > deceased_on OR (deceased_on IS NOT NULL AND dissolved_on IS NULL)
    """).fetchone()
    (same_sex,) = con.execute(f"""
        SELECT count(*) FROM (SELECT city, registration_id FROM ({spouses})
                              GROUP BY ALL HAVING count(DISTINCT sex) <> 2)
    """).fetchone()
    assert impossible == same_sex == 0
    # Nobody is married twice at a time, but the bigamists, once each.
    overlapping = dict(con.execute(f"""
        SELECT spouse, count(*) FROM ({spouses}) a JOIN ({spouses}) b USING (spouse)
        WHERE a.registered_on < b.registered_on
          AND coalesce(a.dissolved_on, DATE '2026-10-01') > b.registered_on
        GROUP BY spouse
    """).fetchall())
    assert overlapping == {e["person_id"]: 1 for e in truth["married_in_two_cities"]}
    # Widowed on the day of the death; lawful remarriages in another city; spouses from away.
    by_death, remarried_away, from_away = con.execute(f"""
        SELECT count(*) FILTER (a.dissolved_on = a.deceased_on),
               count(DISTINCT a.spouse) FILTER (a.city <> b.city AND a.dissolved_on IS NOT NULL
                                                AND b.registered_on > a.dissolved_on),
               count(*) FILTER (a.lives_in <> a.city)
        FROM ({spouses}) a LEFT JOIN ({spouses}) b USING (spouse)
    """).fetchone()
    assert by_death > 0 and remarried_away > 0 and from_away > 0


def test_transit_taps_come_partly_from_other_cities(con: duckdb.DuckDBPyConnection) -> None:
    for city in CITIES:
        foreign, anonymous, total = con.execute(
            f"SELECT count(*) FILTER (card_city <> '{CODE[city]}'),"
            f" count(*) FILTER (person_id IS NULL), count(*) FROM {city}.transit_trips"
        ).fetchone()
        assert 0.005 < foreign / total < 0.2, city
        assert 0.01 < anonymous / total < 0.2, city
    (langfang_in_beijing,) = con.execute(
        "SELECT count(*) FROM beijing.transit_trips t JOIN langfang.population p"
        " USING (person_id) WHERE t.card_city = '131000'").fetchone()
    assert langfang_in_beijing > 0.01 * SCALE.trips_per_city
    for city in CITIES:
        (foreign_anonymous,) = con.execute(
            f"SELECT count(*) FROM {city}.transit_trips"
            f" WHERE person_id IS NULL AND card_city <> '{CODE[city]}'").fetchone()
        assert foreign_anonymous == 0, city


def test_taps_follow_a_daily_profile(con: duckdb.DuckDBPyConnection) -> None:
    hours = dict(con.execute(
        "SELECT hour(tapped_at), count(*) FROM beijing.transit_trips"
        " WHERE dayofweek(tapped_at) BETWEEN 1 AND 5 GROUP BY ALL").fetchall())
    assert all(h >= 5 for h in hours)
    assert hours[8] > 1.5 * hours[11] and hours[18] > 1.3 * hours[14]
    first, last = con.execute(
        f"SELECT min(tapped_at), max(tapped_at) FROM ({_union('transit_trips')})").fetchone()
    assert first >= dt.datetime(2026, 9, 1) and last < dt.datetime(2026, 10, 1)


def test_medical_visits_include_patients_insured_elsewhere(
    con: duckdb.DuckDBPyConnection,
) -> None:
    for city in CITIES:
        (outside,) = con.execute(
            f"SELECT count(*) FROM {city}.medical_visits WHERE card_city <> '{CODE[city]}'"
        ).fetchone()
        assert outside > 0, city
    insuring_code = " ".join(f"WHEN '{c}' THEN '{code}'" for c, code in CODE.items())
    (mismatched,) = con.execute(f"""
        SELECT count(*) FROM ({_union('medical_visits')}) v
        JOIN ({_union('population')}) p USING (person_id)
        WHERE v.card_city <> CASE p.city {insuring_code} END
    """).fetchone()
    assert mismatched == 0


def test_ages_follow_a_population_pyramid(con: duckdb.DuckDBPyConnection) -> None:
    youngest, oldest, working, very_old = con.execute(f"""
        SELECT min(age), max(age), count(*) FILTER (age BETWEEN 15 AND 64),
               count(*) FILTER (age >= 85)
        FROM (SELECT date_sub('year', birth_date, DATE '2026-09-30') AS age
              FROM ({_union('population')}) WHERE deceased_on IS NULL)
    """).fetchone()
    assert youngest == 0 and 95 <= oldest <= 105
    assert working > 20 * very_old
    died_old, died_young = con.execute(f"""
        SELECT avg(CASE WHEN age >= 75 THEN dead END), avg(CASE WHEN age < 50 THEN dead END)
        FROM (SELECT date_sub('year', birth_date, DATE '2026-09-30') AS age,
                     CAST(deceased_on IS NOT NULL AS DOUBLE) AS dead
              FROM ({_union('population')}))
    """).fetchone()
    assert died_old > 10 * died_young


def test_hukou_is_mostly_local(con: duckdb.DuckDBPyConnection) -> None:
    for city in CITIES:
        (local,) = con.execute(
            f"SELECT avg(CAST(hukou_city = '{CODE[city]}' AS DOUBLE)) FROM {city}.population"
        ).fetchone()
        assert 0.55 < local < 0.97, city
        assert member(city).code == CODE[city]


def test_same_seed_gives_identical_tables(tmp_path: Path) -> None:
    first = _table_digests(generate_region(tmp_path / "a", TINY, seed=3).parent)
    again = _table_digests(generate_region(tmp_path / "b", TINY, seed=3).parent)
    assert first == again
    other = _table_digests(generate_region(tmp_path / "c", TINY, seed=4).parent)
    assert all(other[key] != digest for key, digest in first.items())
    alone = _table_digests(
        generate_region(tmp_path / "d", TINY, seed=3, cities=("langfang",)).parent,
        ("langfang",))
    assert alone == {key: d for key, d in first.items() if key.startswith("langfang.")}


def test_rewriting_overwrites(tmp_path: Path) -> None:
    generate_region(tmp_path, TINY, seed=3, cities=("baoding",))
    truth = json.loads(generate_region(tmp_path, TINY, seed=3, cities=("baoding",)).read_text())
    with duckdb.connect(str(tmp_path / "baoding.duckdb"), read_only=True) as connection:
        (rows,) = connection.execute("SELECT count(*) FROM population").fetchone()
    assert rows == TINY.people_per_city == truth["counts"]["baoding"]["population"]


def test_rejects_unknown_cities(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown"):
        generate_region(tmp_path, TINY, cities=("shanghai",))
