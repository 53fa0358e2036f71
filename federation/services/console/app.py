"""The console's web application: login, five pages and the JSON they load, over `core.Console`.

Every request but the login page and the static files needs a live session; every POST needs
the session's CSRF token (the login form: the token of its own cookie). Cookies are HttpOnly and
SameSite=Strict; every response forbids framing, sniffing and inline scripts."""

from __future__ import annotations

import csv
import io
import json
import logging
import secrets
import urllib.parse
from pathlib import Path
from typing import Any

import grpc
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from federation.errors import CityfedError, InvalidArgument
from federation.services.console.core import Console, error_at
from federation.services.console.sessions import Session, Sessions
from federation.services.console.users import Users

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
SESSION_COOKIE = "cityfed_console"
LOGIN_COOKIE = "cityfed_login"
MAX_BODY = 64 * 1024
PAGES = ("region", "ask", "budget", "audit", "checks")
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
                               "img-src 'self' data:; connect-src 'self'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",  # "no-referrer" makes form posts say Origin: null
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=()",
}
_HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400, grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 403, grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429, grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.UNAVAILABLE: 503, grpc.StatusCode.FAILED_PRECONDITION: 409,
}


def build_app(console: Console, users: Users, *, sessions: Sessions | None = None,
              secure_cookies: bool = False) -> Starlette:
    sessions = sessions or Sessions()
    templates = Environment(loader=FileSystemLoader(HERE / "templates"),
                            autoescape=select_autoescape(default=True))

    def page(name: str, status: int = 200, **values) -> HTMLResponse:
        body = templates.get_template(f"{name}.html").render(
            region=console.manifest.region, member=console.member, pages=PAGES, **values)
        return _secured(HTMLResponse(body, status))

    def set_cookie(response: Response, name: str, value: str, max_age: int | None) -> None:
        response.set_cookie(name, value, max_age=max_age, httponly=True, samesite="strict",
                            secure=secure_cookies, path="/")

    def session_of(request: Request) -> Session | None:
        return sessions.get(request.cookies.get(SESSION_COOKIE))

    async def login_form(request: Request) -> Response:
        if session_of(request):
            return _secured(RedirectResponse("/region", 303))
        # Kept while it lives: a second tab, or the browser's favicon request redirected
        # here, must not void the form already shown.
        token = request.cookies.get(LOGIN_COOKIE, "")
        if len(token) != 43:
            token = secrets.token_urlsafe(32)
        response = page("login", token=token, error=request.query_params.get("error", ""))
        set_cookie(response, LOGIN_COOKIE, token, 600)
        return response

    async def login(request: Request) -> Response:
        body = await request.body()
        if len(body) > MAX_BODY:
            return _secured(Response("request too large", 413))
        form = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
        field = {k: v[0] for k, v in form.items() if v}
        token, cookie = field.get("csrf", ""), request.cookies.get(LOGIN_COOKIE, "")
        if not cookie or not secrets.compare_digest(token, cookie):
            return _secured(RedirectResponse("/login?error=expired", 303))
        user, password = field.get("user", "")[:64], field.get("password", "")[:1024]
        if not sessions.may_try(user):
            return _secured(RedirectResponse("/login?error=wait", 303))
        ok = await _threaded(users.check, user, password)
        if not ok:
            sessions.failed(user)
            log.warning("console: failed login for %r", user)
            return _secured(RedirectResponse("/login?error=wrong", 303))
        session = sessions.create(user)
        log.info("console: %s logged in", user)
        response = _secured(RedirectResponse("/region", 303))
        set_cookie(response, SESSION_COOKIE, session.id, None)
        response.delete_cookie(LOGIN_COOKIE, path="/")
        return response

    async def logout(request: Request) -> Response:
        sessions.end(request.cookies.get(SESSION_COOKIE))
        response = _secured(RedirectResponse("/login", 303))
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    async def show_page(request: Request) -> Response:
        name = request.path_params["page"]
        if name not in PAGES:
            return _secured(Response("not found", 404))
        session = request.state.session
        return page(name, user=session.user, csrf=session.csrf, page=name,
                    purposes=console.purposes())

    async def root(request: Request) -> Response:
        return _secured(RedirectResponse("/region", 303))

    async def api(request: Request) -> Response:
        name = request.path_params["call"]
        session = request.state.session
        try:
            if request.method == "POST":
                body = await _json_body(request)
            else:
                body = dict(request.query_params)
            return _secured(JSONResponse(await _threaded(_call, console, name, body,
                                                         session.user)))
        except CityfedError as error:
            reply: dict[str, Any] = {"error": str(error), "code": error.status.name,
                                     "reason": error.reason}
            if name == "ask" and isinstance(body, dict):
                reply["position"] = error_at(str(body.get("sql", "")), str(error))
            return _secured(JSONResponse(reply, _HTTP_STATUS.get(error.status, 400)))
        except grpc.RpcError as error:
            return _secured(JSONResponse({"error": error.details() or error.code().name,
                                          "code": error.code().name},
                                         _HTTP_STATUS.get(error.code(), 502)))

    async def export_csv(request: Request) -> Response:
        try:
            asked = console.answer(int(request.path_params["answer"]))
        except (CityfedError, ValueError):
            return _secured(Response("no such answer", 404))
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(asked.body["columns"])
        for row in asked.body["rows"]:
            writer.writerow(["" if v is None else v for v in row])
        return _secured(Response(out.getvalue(), 200, media_type="text/csv", headers={
            "content-disposition": f'attachment; filename="answer-{asked.id}.csv"'}))

    async def guard(request: Request, call_next):
        path = request.url.path
        if path.startswith("/static/"):
            return _secured(await call_next(request))
        if request.method == "POST" and not _same_origin(request):
            return _secured(Response("cross-origin request refused", 403))
        if path == "/login":
            return await call_next(request)
        session = session_of(request)
        if session is None:
            if path.startswith("/api/") or request.method == "POST":
                return _secured(JSONResponse({"error": "log in first", "code": "UNAUTHENTICATED"},
                                             401))
            return _secured(RedirectResponse("/login", 303))
        if request.method == "POST" and not secrets.compare_digest(
                request.headers.get("x-csrf-token", ""), session.csrf):
            return _secured(JSONResponse({"error": "the form is stale: reload the page",
                                          "code": "CSRF"}, 403))
        request.state.session = session
        return await call_next(request)

    return Starlette(routes=[
        Route("/", root),
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/api/{call}", api, methods=["GET", "POST"]),
        Route("/answers/{answer}.csv", export_csv),
        Route("/{page}", show_page),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ], middleware=[Middleware(BaseHTTPMiddleware, dispatch=guard)])


def _call(console: Console, name: str, body: dict, user: str) -> Any:
    def text(key: str) -> str:
        value = body.get(key, "")
        if not isinstance(value, str):
            raise InvalidArgument(f"{key} must be text")
        return value

    if name == "region":
        return console.region_status()
    if name == "catalog":
        return console.catalog(text("purpose"))
    if name == "ask":
        return console.ask(text("sql"), text("purpose"), user)
    if name == "budget":
        return console.budget(text("purpose"))
    if name == "audit":
        return console.audit()
    if name == "verify":
        try:
            answer_id = int(body.get("answer", 0))
        except (TypeError, ValueError):
            raise InvalidArgument("answer must be a number") from None
        return {"answer": answer_id, "findings": console.verify(answer_id)}
    if name == "checks":
        return console.checks()
    if name == "run-check":
        return console.run_check(text("check"), text("owner"), text("partner"), user)
    raise InvalidArgument("no such call")


async def _threaded(function, *args):
    return await run_in_threadpool(function, *args)


async def _json_body(request: Request) -> dict:
    body = await request.body()
    if len(body) > MAX_BODY:
        raise InvalidArgument("the request is larger than 64 KiB")
    try:
        parsed = json.loads(body or b"{}")
    except ValueError:
        raise InvalidArgument("the request is not JSON") from None
    if not isinstance(parsed, dict):
        raise InvalidArgument("the request is not a JSON object")
    return parsed


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if origin is None:
        return True  # SameSite=Strict and the CSRF token cover clients that send none
    host = request.headers.get("host", "")
    return origin in (f"http://{host}", f"https://{host}")


def _secured(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    response.headers.setdefault("cache-control", "no-store")
    return response
