"""The region's standard fraud checks, each a linkage between an owner city and a partner city.

Run for every ordered pair of cities, they find what the generator plants (ground_truth.json):
pensions still paid for people recorded deceased elsewhere, medical insurance active in two
cities at once, and people married in two cities at once.
"""

from __future__ import annotations

from dataclasses import dataclass

from cityfed.v1 import linkage_pb2

from federation.errors import InvalidArgument
from federation.linkage.plan import MODE_NAMES, check_linkage_plan, new_linkage_id
from federation.query.sql import parse_query


@dataclass(frozen=True)
class SideSpec:
    dataset: str
    key_columns: tuple[str, ...]
    condition: str  # a WHERE condition in cityfed's SQL subset


@dataclass(frozen=True)
class Check:
    name: str
    summary: str
    owner: SideSpec
    partner: SideSpec
    # The purpose registered for it, and where ground_truth.json lists the planted cases.
    purpose: str
    ground_truth: str


_ACTIVE_PENSION = SideSpec("social_insurance", ("person_id",),
                           "scheme = 'pension' AND status = 'active'")
_ACTIVE_MEDICAL = SideSpec("social_insurance", ("person_id",),
                           "scheme = 'medical' AND status = 'active'")
_MARRIED = SideSpec("marriages", ("spouse1_id", "spouse2_id"), "dissolved_on IS NULL")

CHECKS: dict[str, Check] = {check.name: check for check in (
    Check("deceased-pension",
          "pensions the owner city still pays to people the partner city records as deceased",
          _ACTIVE_PENSION,
          SideSpec("population", ("person_id",), "deceased_on IS NOT NULL"),
          "pension-fraud-check", "deceased_with_active_pension"),
    Check("medical-two-cities",
          "people whose medical insurance is active in both cities",
          _ACTIVE_MEDICAL, _ACTIVE_MEDICAL, "medical-insurance-check",
          "medical_insurance_in_two_cities"),
    Check("bigamy",
          "people with a marriage registered in each city and neither dissolved",
          _MARRIED, _MARRIED, "marriage-registry-check", "married_in_two_cities"),
)}


def side(city: str, spec: SideSpec) -> linkage_pb2.LinkageSide:
    """A linkage side from a dataset, its key columns and a condition in SQL."""
    built = linkage_pb2.LinkageSide(city=city, dataset=spec.dataset,
                                    key_columns=spec.key_columns)
    if spec.condition:
        query = parse_query(f'SELECT count(*) FROM "{spec.dataset}" WHERE {spec.condition}')
        built.filter.CopyFrom(query.plan.filter)
    return built


def build_plan(check: str, *, owner: str, partner: str, mode: str) -> linkage_pb2.LinkagePlan:
    found = CHECKS.get(check)
    if found is None:
        raise InvalidArgument(f"unknown check {check[:64]!r}; the checks are: "
                              f"{', '.join(CHECKS)}")
    return plan_for(owner=side(owner, found.owner), partner=side(partner, found.partner),
                    mode=mode, check=found.name)


def plan_for(*, owner: linkage_pb2.LinkageSide, partner: linkage_pb2.LinkageSide, mode: str,
             check: str = "") -> linkage_pb2.LinkagePlan:
    if mode not in MODE_NAMES:
        raise InvalidArgument(f"unknown mode {mode[:32]!r}; the modes are: "
                              f"{', '.join(MODE_NAMES)}")
    plan = linkage_pb2.LinkagePlan(linkage_id=new_linkage_id(), mode=MODE_NAMES[mode],
                                   owner=owner, partner=partner, check=check)
    check_linkage_plan(plan)
    return plan
