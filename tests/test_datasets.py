"""The standard datasets are described in one place, federation/query/datasets.py:
`cityfed datasets` prints them, docs/datasets.md is generated from them, and the README's list
is checked against them."""

from __future__ import annotations

import io
import json
import re

import pytest

from cli.main import main as cityfed
from federation.query.datasets import CITY_CODE, DATASETS, DIVISION_CODE
from scripts import datasets_reference

README = datasets_reference.ROOT / "README.md"


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cityfed(list(argv), out, err)
    return code, out.getvalue(), err.getvalue()


def readme_datasets_section() -> str:
    text = README.read_text()
    return text[text.index("### Datasets\n"):text.index("`cityfed region generate DIR`")]


def test_cityfed_datasets_prints_every_column_with_its_type_unit_format_and_sensitivity():
    code, out, _ = run("datasets")
    assert code == 0
    lines = out.splitlines()
    for dataset in DATASETS.values():
        assert any(line.startswith(f"{dataset.name}: ") for line in lines), dataset.name
        for column in dataset.columns:
            row = next(line for line in lines if line.split()[:1] == [column.name])
            for shown in (column.type, column.unit, column.sensitivity.value):
                assert shown in row, (dataset.name, column.name, shown)
    hukou = next(line for line in lines if line.startswith(" hukou_city "))
    assert "[0-9]{4}00" in hukou  # a pattern's brackets are not read as markup
    assert "GB/T 2260 city code" in out
    assert "YYYY-MM-DD" in out and "one of F, M" in out and "0 to 10000" in out


def test_cityfed_datasets_json_is_the_definitions():
    code, out, _ = run("datasets", "--json", "population", "medical_visits")
    assert code == 0
    document = json.loads(out)
    assert [d["name"] for d in document["datasets"]] == ["population", "medical_visits"]
    assert document["datasets"][0] == DATASETS["population"].to_json()
    hukou = next(c for c in document["datasets"][0]["columns"] if c["name"] == "hukou_city")
    assert hukou == {"name": "hukou_city", "type": "VARCHAR", "nullable": False, "unit": "",
                     "format": CITY_CODE, "pattern": CITY_CODE, "allowed": [], "bounds": None,
                     "sensitivity": "quasi_identifier",
                     "description": "City of household registration (hukou): GB/T 2260 city "
                                    "code"}
    cost = next(c for c in document["datasets"][1]["columns"] if c["name"] == "total_cost")
    assert (cost["unit"], cost["bounds"]) == ("CNY", ["0", "20000"])
    assert set(document["sensitivities"]) == {
        "public", "quasi_identifier", "identifier", "sensitive"}


def test_cityfed_datasets_names_the_datasets_when_asked_for_another():
    code, _, err = run("datasets", "people")
    assert code == 1
    assert "no standard dataset 'people'" in err and "population" in err


def test_the_datasets_reference_is_not_stale():
    assert datasets_reference.REFERENCE.read_text() == datasets_reference.render(), \
        "docs/datasets.md is stale: run `make docs`"


def test_the_readme_lists_every_dataset_with_its_columns_in_order():
    listed = dict(re.findall(r"^- `(\w+)`: ([^`]+?)\n(?=- |\n)", readme_datasets_section(),
                             re.M | re.S))
    assert {name: [c.strip() for c in columns.split(",")] for name, columns in listed.items()} \
        == {name: list(d.column_names) for name, d in DATASETS.items()}


@pytest.mark.parametrize(("pattern", "kind"), [(CITY_CODE, "city"), (DIVISION_CODE, "district")])
def test_the_readme_names_every_column_holding_gb_t_2260_codes_of_a_kind(pattern, kind):
    section = " ".join(readme_datasets_section().split())
    (columns,) = re.findall(rf"((?:`\w+`(?:, | and )?)+) a {kind} like `\d{{6}}`", section)
    holding = {c.name for d in DATASETS.values() for c in d.columns if c.pattern == pattern}
    assert set(re.findall(r"`(\w+)`", columns)) == holding


def test_the_readme_says_what_null_means_in_every_column_that_may_hold_it():
    section = " ".join(readme_datasets_section().split())
    said = section[section.index("A NULL means:"):]
    nullable = {c.name for d in DATASETS.values() for c in d.columns if c.nullable}
    named = {name.split(".")[-1] for name in re.findall(r"`([\w.]+)`", said)}
    assert named == nullable
