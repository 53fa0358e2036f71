"""The console's security rules and its answers, over HTTP against a real region: no anonymous
access, CSRF-safe posts, sessions that expire, security headers, and the same values as the CLI."""

from __future__ import annotations

import json
import urllib.parse

import pytest

from federation.coordination.answers import answer_to_json
from federation.errors import ConfigError
from federation.services.console.core import error_at
from federation.services.console.server import start_console
from federation.services.console.sessions import Sessions
from tests.consolekit import PURPOSE, SMALL_BUDGET_POLICY, Client, console_for
from tests.regionkit import AUDITOR, start_region


@pytest.fixture(scope="module")
def region(tmp_path_factory):
    running = start_region(tmp_path_factory.mktemp("console"), ("tianjin", "beijing"), rows=200,
                           policy_text=SMALL_BUDGET_POLICY)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def console(region):
    running = console_for(region, region.directory / "users.json")
    yield running
    running.stop()


def test_no_anonymous_access(console):
    client = Client(console.url)
    for page in ("/", "/region", "/ask", "/audit", "/answers/1.csv"):
        url = client.request(page)[3]
        assert url.endswith("/login"), page
    assert client.get("region")[0] == 401
    assert client.post("ask", {"sql": "SELECT count(*) FROM population",
                               "purpose": PURPOSE}, csrf="x")[0] == 401


def test_a_wrong_password_is_refused_and_guessing_is_braked(console):
    client = Client(console.url)
    assert client.login(password="not the password").endswith("/login?error=wrong")
    for _ in range(5):
        client.login(user="guessed", password="wrong password 1")
    assert client.login(user="guessed", password="wrong password 1").endswith("error=wait")


def test_login_needs_its_form_token(console):
    client = Client(console.url)
    form = urllib.parse.urlencode({"csrf": "forged", "user": "ops",
                                   "password": "correct horse battery"}).encode()
    assert client.request("/login", form)[3].endswith("error=expired")


def test_a_post_without_the_session_token_is_refused(console):
    client = Client(console.url)
    assert client.login().endswith("/region")
    status, body = client.post("ask", {"sql": "SELECT count(*) FROM population",
                                       "purpose": PURPOSE}, csrf="")
    assert (status, body["code"]) == (403, "CSRF")
    status, _, _, _ = client.request("/api/ask", b"{}", {
        "content-type": "application/json", "x-csrf-token": client.csrf,
        "origin": "http://evil.example"})
    assert status == 403


def test_session_cookie_is_httponly_and_strict(console):
    client = Client(console.url)
    client.login()
    cookie = next(c for c in client.jar if c.name == "cityfed_console")
    assert cookie.has_nonstandard_attr("HttpOnly")
    assert cookie._rest.get("SameSite", cookie._rest.get("samesite")).lower() == "strict"


def test_every_response_carries_the_security_headers(console):
    client = Client(console.url)
    client.login()
    for path in ("/login", "/region", "/api/region", "/static/console.js"):
        _, headers, _, _ = client.request(path)
        csp = headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp, path
        assert headers["x-frame-options"] == "DENY"
        assert headers["x-content-type-options"] == "nosniff"


def test_pages_have_no_inline_script(console):
    client = Client(console.url)
    client.login()
    for page in ("region", "ask", "budget", "audit", "checks"):
        _, _, body, _ = client.request(f"/{page}")
        assert b"<script>" not in body and b"<script src=" in body and b"onclick" not in body


def test_sessions_expire_when_idle(region, tmp_path):
    clock = [1000.0]
    sessions = Sessions(idle_seconds=60, clock=lambda: clock[0])
    running = console_for(region, tmp_path / "users.json", sessions=sessions)
    try:
        client = Client(running.url)
        client.login()
        assert client.get("region")[0] == 200
        clock[0] += 61
        assert client.get("region")[0] == 401
    finally:
        running.stop()


def test_the_console_refuses_to_listen_beyond_loopback(region, tmp_path):
    manifest, identity = region.trusted.directory.open_as(AUDITOR)
    (tmp_path / "users.json").write_text('{"users": {}}')
    with pytest.raises(ConfigError):
        start_console(manifest, identity, users_file=tmp_path / "users.json",
                      listen="0.0.0.0:0")


def test_an_answer_is_what_the_cli_prints_and_its_receipts_verify(console, region):
    client = Client(console.url)
    client.login()
    sql = "SELECT sex, count(*) AS people FROM population GROUP BY sex ORDER BY sex"
    status, answer = client.post("ask", {"sql": sql, "purpose": PURPOSE})
    assert status == 200
    saved = console.console.answer(answer["id"]).body
    assert answer["rows"] == saved["rows"] and saved["plan"] and saved["query"]
    assert set(saved) == set(answer_to_json(region.ask(sql)))  # the CLI's --json fields
    assert [s["values"] for s in answer["chart"]["series"]] == [
        [float(row[1]) for row in answer["rows"]]]
    assert answer["chart"]["series"][0]["errors"] == answer["accuracy"][1]["half_widths_95"]
    status, verified = client.post("verify", {"answer": answer["id"]})
    assert status == 200 and all(f["ok"] for f in verified["findings"])
    body = client.request(f"/answers/{answer['id']}.csv")[2]
    assert body.decode().splitlines()[0] == "sex,people"


def test_a_subset_error_says_where(console):
    client = Client(console.url)
    client.login()
    sql = "SELECT sex, count(*) FROM population WHERE agee > 3 GROUP BY sex"
    status, body = client.post("ask", {"sql": sql, "purpose": PURPOSE})
    assert status == 400 and body["position"] == sql.index("agee")
    assert error_at("SELECT sum(sex) FROM population",
                    "sum(VARCHAR) is not defined (at character 8 of the SQL)") == 7


def test_an_unregistered_purpose_is_refused(console):
    client = Client(console.url)
    client.login()
    status, body = client.post("ask", {"sql": "SELECT count(*) FROM population",
                                       "purpose": "curiosity"})
    assert status == 400 and "purpose" in body["error"]
    assert json.dumps(body).count("Traceback") == 0
