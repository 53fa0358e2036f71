"""A console over a running test region, and a logged-in HTTP client for it."""

from __future__ import annotations

import http.cookiejar
import json
import re
import urllib.error
import urllib.request
from pathlib import Path

from federation.services.console.server import RunningConsole, start_console
from federation.services.console.users import Users
from tests.regionkit import AUDITOR, RunningRegion, open_policy

USER, PASSWORD = "ops", "correct horse battery"
PURPOSE = "population-statistics"
# Private answers for the auditor, three questions a day at ε 1 each.
SMALL_BUDGET_POLICY = (
    '[privacy]\nepsilon_per_question = 1.0\ndelta_per_question = 1e-9\n'
    'epsilon_per_period = 3.0\ndelta_per_period = 1e-6\nperiod = "day"\n\n'
    + open_policy(AUDITOR, "aggregate"))


def console_for(region: RunningRegion, users_file: Path, **options) -> RunningConsole:
    Users(users_file).add(USER, PASSWORD)
    manifest, identity = region.trusted.directory.open_as(AUDITOR)
    return start_console(manifest, identity, users_file=users_file, listen="127.0.0.1:0",
                         region=region.trusted.directory, **options)


class Client:
    """A browser's requests without the browser: cookies kept, redirects followed."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))
        self.csrf = ""

    def request(self, path: str, data: bytes | None = None, headers: dict | None = None):
        request = urllib.request.Request(self.base + path, data=data, headers=headers or {})
        try:
            response = self.opener.open(request, timeout=30)
            return response.status, response.headers, response.read(), response.url
        except urllib.error.HTTPError as error:
            return error.code, error.headers, error.read(), error.url

    def login(self, user: str = USER, password: str = PASSWORD) -> str:
        _, _, body, _ = self.request("/login")
        token = re.search(rb'name="csrf" value="([^"]+)"', body).group(1).decode()
        form = urllib.parse.urlencode({"csrf": token, "user": user, "password": password})
        _, _, body, url = self.request("/login", form.encode())
        found = re.search(rb'name="csrf" content="([^"]+)"', body)
        self.csrf = found.group(1).decode() if found else ""
        return url

    def post(self, call: str, body: dict, csrf: str | None = None):
        status, _, data, _ = self.request(
            f"/api/{call}", json.dumps(body).encode(),
            {"content-type": "application/json",
             "x-csrf-token": self.csrf if csrf is None else csrf})
        return status, json.loads(data)

    def get(self, call: str):
        status, _, data, _ = self.request(f"/api/{call}")
        return status, json.loads(data)
