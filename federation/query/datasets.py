"""The region's standard datasets: defined once, here, and shared by every member.

Every city stores these tables with exactly these columns. Nodes compile plans only against
these definitions (identifiers never come from a caller), ingest validates files against
them, and the catalog publishes them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from typing import Any


class Sensitivity(Enum):
    """How much harm a column can do if it leaves the city, most harmful last."""

    PUBLIC = "public"
    QUASI_IDENTIFIER = "quasi_identifier"
    IDENTIFIER = "identifier"
    SENSITIVE = "sensitive"

    @property
    def meaning(self) -> str:
        return _SENSITIVITY_MEANINGS[self]


_SENSITIVITY_MEANINGS = {
    Sensitivity.PUBLIC: "codes and categories anyone may know (district, mode, scheme)",
    Sensitivity.QUASI_IDENTIFIER: "identifying in combination (birth date, station)",
    Sensitivity.IDENTIFIER: "names a person or card on its own (person_id, name, card_id)",
    Sensitivity.SENSITIVE: "health, money and deaths (icd10, costs, pension amounts, dates of "
                           "death)",
}

# What a value of a type must look like in a loaded file (DuckDB casts the file's text).
_TYPE_FORMATS = {"DATE": "YYYY-MM-DD", "TIMESTAMP": "YYYY-MM-DD hh:mm:ss[.ffffff]"}
_DECIMAL = re.compile(r"DECIMAL\((\d+),(\d+)\)")


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # a DuckDB type
    description: str
    sensitivity: Sensitivity
    unit: str = ""
    nullable: bool = False
    allowed: tuple[str, ...] = ()  # the only values a VARCHAR column may hold, when set
    pattern: str = ""  # a regular expression every non-null VARCHAR value must match fully
    # For a numeric column: the range every value is clamped to before it enters a private
    # statistic (docs/policy.md); a city's policy may narrow or widen it.
    bounds: tuple[Decimal, Decimal] | None = None

    @property
    def value_format(self) -> str:
        """What every non-null value must look like, as a person reads it."""
        if self.allowed:
            return "one of " + ", ".join(self.allowed)
        if self.pattern:
            return self.pattern
        decimal = _DECIMAL.fullmatch(self.type)
        if decimal:
            digits, places = map(int, decimal.groups())
            return f"{digits} digits, {places} after the point"
        return _TYPE_FORMATS.get(self.type, "")

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "nullable": self.nullable,
                "unit": self.unit, "format": self.value_format, "pattern": self.pattern,
                "allowed": list(self.allowed),
                "bounds": None if self.bounds is None else [str(b) for b in self.bounds],
                "sensitivity": self.sensitivity.value, "description": self.description}


@dataclass(frozen=True)
class Dataset:
    name: str
    description: str
    columns: tuple[Column, ...]
    # The privacy unit: the column naming the person a row is about.
    entity: str
    # How many of one person's rows a private answer uses at most, unless a policy says otherwise.
    max_rows_per_person: int
    # Where `entity` is NULL (an anonymous transport card), the column naming the unit instead.
    entity_fallback: str = ""

    @property
    def unit_name(self) -> str:
        """The privacy unit, for people: "person_id (card_id where it is empty)"."""
        if not self.entity_fallback:
            return self.entity
        return f"{self.entity} ({self.entity_fallback} where it is empty)"

    def unit_sql(self, alias: str) -> str:
        """SQL naming the privacy unit of a row of this table under `alias`."""
        entity = f'{alias}."{self.entity}"'
        if not self.entity_fallback:
            return entity
        fallback = f'{alias}."{self.entity_fallback}"'
        return f"coalesce({entity}, '{self.entity_fallback}:' || {fallback})"

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description,
                "privacy_unit": self.unit_name, "max_rows_per_person": self.max_rows_per_person,
                "columns": [c.to_json() for c in self.columns]}


def _cny(lower: int, upper: int) -> tuple[Decimal, Decimal]:
    return Decimal(lower), Decimal(upper)


RESIDENT_ID = r"[0-9]{17}[0-9X]"  # GB 11643: 17 digits and a check character
DIVISION_CODE = r"[0-9]{6}"  # GB/T 2260 administrative division code
CITY_CODE = r"[0-9]{4}00"  # GB/T 2260 code of a prefecture-level city

_PERSON_ID = Column(
    "person_id", "VARCHAR", "18-character resident identity number (GB 11643)",
    Sensitivity.IDENTIFIER, pattern=RESIDENT_ID,
)

POPULATION = Dataset(
    "population",
    "Residents on the city's household and residence register, one row per person.",
    (
        _PERSON_ID,
        Column("name", "VARCHAR", "Full name", Sensitivity.IDENTIFIER),
        Column("sex", "VARCHAR", "Sex as registered", Sensitivity.QUASI_IDENTIFIER,
               allowed=("F", "M")),
        Column("birth_date", "DATE", "Date of birth", Sensitivity.QUASI_IDENTIFIER),
        Column("district_code", "VARCHAR", "District of residence: GB/T 2260 district code",
               Sensitivity.PUBLIC, pattern=DIVISION_CODE),
        Column("hukou_city", "VARCHAR",
               "City of household registration (hukou): GB/T 2260 city code",
               Sensitivity.QUASI_IDENTIFIER, pattern=CITY_CODE),
        Column("registered_on", "DATE", "Date the person was registered in this city",
               Sensitivity.QUASI_IDENTIFIER),
        Column("deceased_on", "DATE", "Date of death; NULL while alive",
               Sensitivity.SENSITIVE, nullable=True),
    ),
    entity="person_id",
    max_rows_per_person=1,
)

SOCIAL_INSURANCE = Dataset(
    "social_insurance",
    "Social-insurance enrolments: one row per person and scheme.",
    (
        _PERSON_ID,
        Column("scheme", "VARCHAR", "Insurance scheme", Sensitivity.PUBLIC,
               allowed=("pension", "medical", "unemployment", "work_injury", "maternity")),
        Column("status", "VARCHAR", "Enrolment status", Sensitivity.PUBLIC,
               allowed=("active", "suspended", "closed")),
        Column("enrolled_on", "DATE", "Date of enrolment", Sensitivity.QUASI_IDENTIFIER),
        Column("monthly_amount", "DECIMAL(12,2)",
               "Monthly benefit paid (pension) or contribution (other schemes)",
               Sensitivity.SENSITIVE, unit="CNY", bounds=_cny(0, 10_000)),
        Column("last_paid_on", "DATE", "Date of the last payment; NULL if never paid",
               Sensitivity.SENSITIVE, nullable=True),
    ),
    entity="person_id",
    max_rows_per_person=5,  # one row per scheme
)

TRANSIT_TRIPS = Dataset(
    "transit_trips",
    "Transport-card taps at gates and buses in the city, one row per tap.",
    (
        Column("card_id", "VARCHAR", "Transport card number", Sensitivity.IDENTIFIER),
        Column("person_id", "VARCHAR", "Card holder; NULL for an anonymous card",
               Sensitivity.IDENTIFIER, nullable=True, pattern=RESIDENT_ID),
        Column("tapped_at", "TIMESTAMP", "Local time of the tap", Sensitivity.QUASI_IDENTIFIER),
        Column("mode", "VARCHAR", "Mode of transport", Sensitivity.PUBLIC,
               allowed=("metro", "bus", "rail")),
        Column("line", "VARCHAR", "Line or route", Sensitivity.PUBLIC),
        Column("station", "VARCHAR", "Station or stop", Sensitivity.QUASI_IDENTIFIER),
        Column("district_code", "VARCHAR", "District of the station: GB/T 2260 district code",
               Sensitivity.PUBLIC, pattern=DIVISION_CODE),
        Column("fare", "DECIMAL(8,2)", "Fare charged", Sensitivity.PUBLIC, unit="CNY",
               bounds=_cny(0, 20)),
        Column("card_city", "VARCHAR", "City that issued the card: GB/T 2260 city code",
               Sensitivity.PUBLIC, pattern=CITY_CODE),
    ),
    entity="person_id",
    entity_fallback="card_id",  # an anonymous card is its own unit: nobody is known to hold it
    max_rows_per_person=100,  # about a month of commuting
)

MEDICAL_VISITS = Dataset(
    "medical_visits",
    "Hospital visits settled through a medical-insurance card, one row per visit.",
    (
        Column("visit_id", "VARCHAR", "Visit number, unique within the city",
               Sensitivity.IDENTIFIER),
        _PERSON_ID,
        Column("card_city", "VARCHAR", "City whose medical insurance covers the visit: "
               "GB/T 2260 city code", Sensitivity.PUBLIC, pattern=CITY_CODE),
        Column("visited_on", "DATE", "Date of the visit", Sensitivity.QUASI_IDENTIFIER),
        Column("hospital_id", "VARCHAR", "Hospital code", Sensitivity.QUASI_IDENTIFIER),
        Column("department", "VARCHAR", "Hospital department", Sensitivity.PUBLIC),
        Column("icd10", "VARCHAR", "Principal diagnosis (ICD-10 code)", Sensitivity.SENSITIVE,
               pattern=r"[A-Z][0-9]{2}(\.[0-9A-Z]{1,2})?"),
        Column("total_cost", "DECIMAL(12,2)", "Total cost of the visit", Sensitivity.SENSITIVE,
               unit="CNY", bounds=_cny(0, 20_000)),
        Column("insurance_paid", "DECIMAL(12,2)", "Part of the cost paid by insurance",
               Sensitivity.SENSITIVE, unit="CNY", bounds=_cny(0, 20_000)),
    ),
    entity="person_id",
    max_rows_per_person=10,
)

MARRIAGES = Dataset(
    "marriages",
    "Marriages registered in the city, one row per marriage.",
    (
        Column("registration_id", "VARCHAR", "Marriage registration number, unique within the "
               "city", Sensitivity.IDENTIFIER),
        Column("spouse1_id", "VARCHAR", "One spouse's 18-character resident identity number",
               Sensitivity.IDENTIFIER, pattern=RESIDENT_ID),
        Column("spouse2_id", "VARCHAR", "The other spouse's 18-character resident identity number",
               Sensitivity.IDENTIFIER, pattern=RESIDENT_ID),
        Column("registered_on", "DATE", "Date the marriage was registered",
               Sensitivity.QUASI_IDENTIFIER),
        # Sensitive like population.deceased_on: when a spouse died, this is the date of death.
        Column("dissolved_on", "DATE", "Date of the divorce or of a spouse's death; NULL while "
               "the marriage lasts", Sensitivity.SENSITIVE, nullable=True),
        Column("registering_city", "VARCHAR", "City that registered the marriage: GB/T 2260 city "
               "code",
               Sensitivity.PUBLIC, pattern=CITY_CODE),
    ),
    # A person also appears as spouse2 of other rows, which this bound does not count: a private
    # answer bounds each spouse1's rows only (docs/policy.md).
    entity="spouse1_id",
    max_rows_per_person=4,
)

DATASETS: dict[str, Dataset] = {
    d.name: d for d in (POPULATION, SOCIAL_INSURANCE, TRANSIT_TRIPS, MEDICAL_VISITS, MARRIAGES)
}


# A hidden column of every stored table: the row's rank among its person's rows, in an order
# drawn at random when the row is loaded. A private answer reads only rows ranked at most the
# dataset's max_rows_per_person, which bounds each person's contribution in one pass.
PERSON_ROW_RANK = "_person_row_rank"


def create_table_sql(dataset: Dataset) -> str:
    """The CREATE TABLE statement for a dataset; identifiers come only from this module."""
    columns = ", ".join(
        f'"{c.name}" {c.type}{"" if c.nullable else " NOT NULL"}' for c in dataset.columns
    )
    return f'CREATE TABLE IF NOT EXISTS "{dataset.name}" ({columns})'
