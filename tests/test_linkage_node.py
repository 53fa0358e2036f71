"""A city's side of a linkage, without a network: who may take part at what level, how long a
session lives and how many one member may hold, and how many dummies pad a set."""

from __future__ import annotations

import statistics

import pytest

from federation.errors import LinkageSessionUnknown, Overloaded, PolicyDenied, TooManyCalls
from federation.linkage.checks import build_plan
from federation.linkage.plan import OWNER, PARTNER, Counterpart
from federation.privacy.noise import padding_bound, padding_size
from node.linkage import LinkageLimits, Session, Sessions, decide_linkage
from node.policy import Caller, load_policy

TIANJIN = Caller("tianjin", "city")
AUTHORITY = Caller("jjj-health", "authority", ("authorities",))
PURPOSE = "pension-fraud-check"
POLICY = f"""
[[rules]]
dataset = "population"
columns = ["person_id", "deceased_on"]
callers = ["role:city", "group:authorities"]
purposes = ["{PURPOSE}"]
level = "match"

[[rules]]
dataset = "social_insurance"
columns = ["person_id", "scheme", "status"]
callers = ["group:authorities"]
purposes = ["{PURPOSE}"]
level = "match"

[[rules]]
dataset = "social_insurance"
columns = ["*"]
callers = ["tianjin"]
purposes = ["{PURPOSE}"]
level = "row"
"""


@pytest.fixture
def policy(tmp_path):
    path = tmp_path / "policy.toml"
    path.write_text(POLICY)
    return load_policy(path)


def plan(mode: str):
    return build_plan("deceased-pension", owner="tianjin", partner="beijing", mode=mode)


def test_the_owner_reveals_its_own_records_to_itself_only(policy):
    revealing = plan("reveal-to-owner")
    assert decide_linkage(policy, TIANJIN, PURPOSE, "tianjin", revealing, OWNER) is False
    assert decide_linkage(policy, TIANJIN, PURPOSE, "beijing", revealing, PARTNER) is True
    for city, role in (("tianjin", OWNER), ("beijing", PARTNER)):
        with pytest.raises(PolicyDenied, match="only tianjin may ask it"):
            decide_linkage(policy, AUTHORITY, PURPOSE, city, revealing, role)


def test_a_count_needs_match_on_every_key_and_condition_column(policy):
    counting = plan("count")
    assert decide_linkage(policy, AUTHORITY, PURPOSE, "tianjin", counting, OWNER) is True
    assert decide_linkage(policy, AUTHORITY, PURPOSE, "beijing", counting, PARTNER) is True
    with pytest.raises(PolicyDenied, match=r"social_insurance\.person_id needs match"):
        decide_linkage(policy, Caller("beijing", "city"), PURPOSE, "tianjin", counting, OWNER)
    with pytest.raises(PolicyDenied, match="needs match"):  # no rule names this purpose
        decide_linkage(policy, AUTHORITY, "transit-planning", "beijing", counting, PARTNER)


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def session(sessions: Sessions, caller: str, number: int) -> Session:
    linkage_id = number.to_bytes(16, "big")
    return Session(linkage_id, b"", plan("count"), PARTNER, caller, PURPOSE,
                   Counterpart(linkage_id, "tianjin", None), sessions.expiry())


def test_sessions_expire_and_no_member_holds_more_than_half():
    clock = Clock()
    sessions = Sessions(LinkageLimits(session_seconds=60, max_sessions=4), clock)
    first = session(sessions, "jjj-health", 1)
    sessions.add(first)
    sessions.add(session(sessions, "jjj-health", 2))
    with pytest.raises(TooManyCalls):
        sessions.add(session(sessions, "jjj-health", 3))
    sessions.add(session(sessions, "tianjin", 4))
    sessions.add(session(sessions, "tianjin", 5))
    with pytest.raises(Overloaded):
        sessions.add(session(sessions, "beijing", 6))
    assert sessions.get(first.linkage_id, "jjj-health", PARTNER) is first
    with pytest.raises(LinkageSessionUnknown):  # another member's session
        sessions.get(first.linkage_id, "tianjin", PARTNER)
    with pytest.raises(LinkageSessionUnknown):  # the wrong role
        sessions.get(first.linkage_id, "jjj-health", OWNER)
    clock.now = 61
    with pytest.raises(LinkageSessionUnknown):
        sessions.get(first.linkage_id, "jjj-health", PARTNER)
    assert first.scalar == b""  # an expired session's scalar is dropped
    sessions.add(session(sessions, "beijing", 7))


def test_padding_stays_in_its_range_around_its_centre():
    bound = padding_bound(0.5, 1e-9)
    assert bound == 44
    draws = [padding_size(0.5, 1e-9) for _ in range(400)]
    assert all(0 <= d <= 2 * bound for d in draws)
    assert abs(statistics.mean(draws) - bound) < 1
    assert len(set(draws)) > 5
