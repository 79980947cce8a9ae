"""Web security over HTTP, against an in-process instance (issue "Hardening", item 5).

XSRF on every state-changing route (enumerated from the application's own routing
table, so a new route is covered without touching this file), security headers on
pages, APIs and errors, session cookie flags, safe redirects after login, no user
enumeration at login, session fixation, and no secret in the logs.
"""

from __future__ import annotations

import itertools
import logging
import re
import statistics
import time
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlencode, urljoin, urlsplit

import bcrypt
import orjson
import pytest
import tornado.web
import tornado.websocket
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest, HTTPResponse
from tornado.routing import PathMatches

from app.handlers.base import SESSION_COOKIE
from app.runtime import Instance
from tests.conftest import MakeInstance
from tests.handlers.test_accounts_api import PASSWORD, Browser, assert_error, data
from tests.support import RedisProcess, free_port, ws_open

STATE_CHANGING = ("POST", "PUT", "PATCH", "DELETE")
HEX16 = "0123456789abcdef"  # fits every path parameter: game ids, user and guild names


@pytest.fixture
async def http() -> AsyncIterator[AsyncHTTPClient]:
    client = AsyncHTTPClient(force_instance=True, max_clients=64)
    yield client
    client.close()


def application(instance: Instance) -> tornado.web.Application:
    """The running instance's Application (what its HTTPServer calls)."""
    app = instance._server.request_callback  # type: ignore[attr-defined]
    assert isinstance(app, tornado.web.Application)
    return app


# --- route enumeration ---------------------------------------------------------------

_GROUP = re.compile(r"\((?!\?)([^()]*)\)")


def _fill(pattern: str) -> Iterator[str]:
    """Concrete paths for a route regex: each alternation group takes every alternative,
    every other group a plausible value."""
    body = pattern.removesuffix("$")
    groups = _GROUP.findall(body)
    choices = [g.split("|") if re.fullmatch(r"[\w-]+(\|[\w-]+)+", g) else [HEX16] for g in groups]
    for values in itertools.product(*choices):
        parts = iter(values)
        path = _GROUP.sub(lambda _, rest=parts: next(rest), body)
        yield re.sub(r"\\(.)", r"\1", path)


def state_changing_routes(app: tornado.web.Application) -> list[tuple[str, str, type]]:
    """``(method, path, handler)`` for every route whose handler implements a method
    that changes state."""
    found = []
    for rule in app.wildcard_router.rules:
        handler = rule.target
        if not isinstance(handler, type) or not issubclass(handler, tornado.web.RequestHandler):
            continue
        if issubclass(handler, (tornado.websocket.WebSocketHandler, tornado.web.StaticFileHandler)):
            continue
        assert isinstance(rule.matcher, PathMatches), rule
        for method in STATE_CHANGING:
            implemented = getattr(handler, method.lower())
            if implemented is getattr(tornado.web.RequestHandler, method.lower()):
                continue
            for path in _fill(rule.matcher.regex.pattern):
                assert rule.matcher.regex.match(path), (path, rule.matcher.regex.pattern)
                found.append((method, path, handler))
    return found


def is_api(path: str) -> bool:
    return path.startswith("/api/")


def xsrf_refused(response: HTTPResponse, path: str) -> str | None:
    """Why ``response`` is not a clean XSRF refusal (None when it is)."""
    if response.code != 403:
        return f"status {response.code}: {response.body[:120]!r}"
    if response.headers.get("Set-Cookie", "").startswith(f"{SESSION_COOKIE}="):
        return "set a session cookie"
    if is_api(path):
        try:
            body = orjson.loads(response.body)
        except orjson.JSONDecodeError:
            return f"not JSON: {response.body[:120]!r}"
        if body.get("error") != "xsrf":
            return f"error {body.get('error')!r}, not 'xsrf'"
    return None


async def test_route_enumeration_sees_every_known_state_changing_route(
    make_instance: MakeInstance,
) -> None:
    routes = state_changing_routes(application(await make_instance()))
    paths = {(method, path) for method, path, _ in routes}
    for expected in [
        ("POST", "/login"),
        ("POST", "/register"),
        ("POST", "/logout"),
        ("POST", "/admin"),
        ("POST", "/api/register"),
        ("POST", "/api/login"),
        ("POST", "/api/logout"),
        ("POST", "/api/admin/broadcast"),
        ("POST", "/api/guilds"),
        ("POST", f"/api/guilds/{HEX16}/join"),
        ("POST", f"/api/guilds/{HEX16}/owner"),
        ("POST", f"/api/guilds/{HEX16}/members/{HEX16}/remove"),
        ("POST", f"/api/games/{HEX16}/moves"),
        ("POST", f"/api/games/{HEX16}/chat"),
        ("POST", f"/api/games/{HEX16}/rematch"),
        ("POST", "/api/challenges"),
        ("POST", f"/api/challenges/{HEX16}/accept"),
    ]:
        assert expected in paths, f"{expected} not enumerated; found {sorted(paths)}"
    assert len(routes) >= 25, routes


XSRF_VARIANTS = ["no-cookie-no-header", "cookie-no-header", "header-no-cookie", "mismatch"]


async def test_every_state_changing_route_refuses_a_request_without_the_xsrf_token(
    make_instance: MakeInstance, http: AsyncHTTPClient
) -> None:
    """A signed-in victim (session cookie present): every POST without a matching XSRF
    token is 403 before the handler runs; with the token, none is refused as XSRF."""
    instance = await make_instance()
    routes = state_changing_routes(application(instance))
    victim = Browser(http, instance)
    assert (await victim.register("victim")).code == 201
    token = await victim.xsrf()
    other = Browser(http, instance)
    other_token = await other.xsrf()
    failures: list[str] = []
    for (method, path, handler), variant in itertools.product(routes, XSRF_VARIANTS):
        cookies = dict(victim.cookies)
        headers = {"Content-Type": "application/json"}
        if variant in ("no-cookie-no-header", "header-no-cookie"):
            cookies.pop("_xsrf")
        if variant == "header-no-cookie":
            headers["X-XSRFToken"] = token
        if variant == "mismatch":
            headers["X-XSRFToken"] = other_token
        headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
        response = await http.fetch(
            f"http://127.0.0.1:{instance.port}{path}",
            method=method,
            headers=headers,
            body=b"{}",
            follow_redirects=False,
            raise_error=False,
        )
        why = xsrf_refused(response, path)
        if why:
            failures.append(f"{method} {path} ({handler.__name__}, {variant}): {why}")
    assert not failures, "\n".join(failures)
    # Nothing went through: the victim is still signed in (POST /logout was refused).
    assert (await victim.me()).code == 200

    # Control: with the token, no route answers "xsrf" (the 403s above were the XSRF check).
    for method, path, handler in routes:
        if path in ("/logout", "/api/logout"):
            continue
        response = await victim.call(method, path, {})
        if response.code == 403 and is_api(path):
            assert data(response)["error"] != "xsrf", (method, path, handler)
        else:
            assert response.code != 403 or not is_api(path), (method, path, response.body)


async def test_unknown_paths_refuse_posts_without_xsrf_too(
    make_instance: MakeInstance, http: AsyncHTTPClient
) -> None:
    instance = await make_instance()
    browser = Browser(http, instance)
    # (An unknown /api/ path answers the 403 as the HTML error page: the XSRF check runs
    # before NotFoundHandler.prepare picks JSON for /api/. Refused either way.)
    for path in ("/api/nope", "/nope"):
        assert (await browser.call("POST", path, {}, xsrf=False)).code == 403


async def test_operator_token_skips_xsrf_only_with_the_right_token(
    make_instance: MakeInstance, http: AsyncHTTPClient
) -> None:
    """The bearer token is not an ambient credential (a browser never sends it by itself),
    so it stands in for the session and XSRF; a wrong one is 401 and nothing is sent."""
    instance = await make_instance(**{"admin.token": "operator-token-123"})
    browser = Browser(http, instance)
    wrong = await browser.call(
        "POST",
        "/api/admin/broadcast",
        {"text": "hi"},
        xsrf=False,
        headers={"Authorization": "Bearer nope"},
    )
    assert_error(wrong, 401, "bad_token")
    right = await browser.call(
        "POST",
        "/api/admin/broadcast",
        {"text": "hi"},
        xsrf=False,
        headers={"Authorization": "Bearer operator-token-123"},
    )
    assert right.code == 201, right.body


# --- headers -------------------------------------------------------------------------


def csp_directives(value: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for part in value.split(";"):
        words = part.split()
        if words:
            out[words[0].lower()] = words[1:]
    return out


def assert_security_headers(response: HTTPResponse, what: str) -> None:
    headers = response.headers
    csp = headers.get("Content-Security-Policy")
    assert csp, f"{what}: no Content-Security-Policy"
    directives = csp_directives(csp)
    scripts = directives.get("script-src", directives.get("default-src"))
    assert scripts is not None, f"{what}: CSP limits no scripts: {csp}"
    for unsafe in ("'unsafe-inline'", "'unsafe-eval'", "*", "data:", "http:", "https:"):
        assert unsafe not in scripts, f"{what}: script-src allows {unsafe}: {csp}"
    assert directives.get("frame-ancestors") == ["'none'"], f"{what}: frame-ancestors: {csp}"
    assert directives.get("object-src") == ["'none'"], f"{what}: object-src: {csp}"
    assert "base-uri" in directives, f"{what}: no base-uri: {csp}"
    assert headers.get("X-Content-Type-Options") == "nosniff", what
    assert headers.get("X-Frame-Options") == "DENY", what
    policy = headers.get("Referrer-Policy", "")
    assert policy in ("same-origin", "no-referrer", "strict-origin-when-cross-origin"), what


@pytest.mark.parametrize(
    ("method", "path", "status", "signed_in"),
    [
        pytest.param("GET", "/", 200, False, id="index"),
        pytest.param("GET", "/", 200, True, id="lobby"),
        pytest.param("GET", "/login", 200, False, id="login-page"),
        pytest.param("GET", "/register", 200, False, id="register-page"),
        pytest.param("GET", "/guilds", 302, False, id="redirect-to-login"),
        pytest.param("GET", "/guilds", 200, True, id="guilds-page"),
        pytest.param("GET", "/admin", 403, True, id="page-403"),
        pytest.param("GET", "/no/such/page", 404, False, id="page-404"),
        pytest.param("GET", "/game/nosuchgame", 404, True, id="game-404"),
        pytest.param("GET", "/api/xsrf", 200, False, id="api-200"),
        pytest.param("GET", "/api/me", 401, False, id="api-401"),
        pytest.param("GET", "/api/me", 200, True, id="api-me"),
        pytest.param("GET", "/api/nope", 404, False, id="api-404"),
        pytest.param("PUT", "/api/me", 405, True, id="api-405"),
        pytest.param("POST", "/api/login", 403, False, id="api-xsrf-403"),
        pytest.param("POST", "/login", 403, False, id="page-xsrf-403"),
        pytest.param("GET", "/healthz", 200, False, id="healthz"),
        pytest.param("GET", "/metrics", 200, False, id="metrics"),
    ],
)
async def test_security_headers_on_pages_apis_and_errors(
    make_instance: MakeInstance,
    http: AsyncHTTPClient,
    method: str,
    path: str,
    status: int,
    signed_in: bool,
) -> None:
    instance = await make_instance()
    browser = Browser(http, instance)
    if signed_in:
        assert (await browser.register("alice")).code == 201
    body = b"{}" if method in ("POST", "PUT") else None
    # PUT carries the token, so it reaches the method check (405) instead of the XSRF one.
    response = await browser.call(method, path, body=body, xsrf=method == "PUT")
    assert response.code == status, (response.code, response.body[:200])
    assert_security_headers(response, f"{method} {path} → {status}")


async def test_api_answers_are_json_and_not_cached(
    make_instance: MakeInstance, http: AsyncHTTPClient
) -> None:
    instance = await make_instance()
    browser = Browser(http, instance)
    assert (await browser.register("alice")).code == 201
    me = await browser.me()
    assert me.headers["Content-Type"].startswith("application/json")
    assert me.headers.get("Cache-Control") == "no-store"


async def test_refused_websocket_handshakes_reflect_nothing_as_html(
    make_instance: MakeInstance, http: AsyncHTTPClient
) -> None:
    """A refused socket (bad facility) answers text/plain; the bad name is not HTML."""
    instance = await make_instance()
    browser = Browser(http, instance)
    response = await browser.call("GET", "/ws/%3Cscript%3Ex%3C%2Fscript%3E?subscribe-broadcast")
    assert response.code in (400, 403, 404), response.code
    assert not response.headers.get("Content-Type", "").startswith("text/html"), response.headers


async def test_static_files_carry_nosniff(
    make_instance: MakeInstance, http: AsyncHTTPClient
) -> None:
    instance = await make_instance()
    response = await Browser(http, instance).call("GET", "/static/game.js")
    assert response.code == 200
    assert response.headers.get("X-Content-Type-Options") == "nosniff"


@pytest.mark.parametrize(
    ("origin", "opens"),
    [
        pytest.param(None, True, id="no-origin"),  # not a browser: nothing to hijack
        pytest.param("http://127.0.0.1:{port}", True, id="same-origin"),
        pytest.param("http://127.0.0.1:1", False, id="same-host-other-port"),
        pytest.param("http://evil.example", False, id="other-site"),
        pytest.param("null", False, id="null-origin"),
        pytest.param("http://127.0.0.1:{port}.evil.example", False, id="prefix-trick"),
    ],
)
async def test_socket_handshakes_check_the_origin(
    make_instance: MakeInstance, origin: str | None, opens: bool
) -> None:
    instance = await make_instance()
    headers = {} if origin is None else {"Origin": origin.format(port=instance.port)}
    request = HTTPRequest(
        f"ws://127.0.0.1:{instance.port}/ws/notifications?subscribe-broadcast", headers=headers
    )
    if opens:
        conn = await ws_open(request)  # type: ignore[arg-type]
        conn.close()
        return
    with pytest.raises(HTTPClientError) as refused:
        await ws_open(request)  # type: ignore[arg-type]
    assert refused.value.code == 403


# --- cookies -------------------------------------------------------------------------


def session_set_cookie(browser: Browser) -> list[str]:
    """The attributes (lower-cased) of the last session Set-Cookie."""
    headers = [h for h in browser.set_cookies if h.startswith(f"{SESSION_COOKIE}=")]
    assert headers, browser.set_cookies
    return [a.strip().lower() for a in headers[-1].split(";")[1:]]


async def test_session_cookie_flags_on_plain_http(
    make_instance: MakeInstance, http: AsyncHTTPClient
) -> None:
    instance = await make_instance()
    browser = Browser(http, instance)
    assert (await browser.register("alice")).code == 201
    attributes = session_set_cookie(browser)
    assert "httponly" in attributes
    assert "samesite=lax" in attributes or "samesite=strict" in attributes
    assert "path=/" in attributes
    assert not any(a.startswith("domain=") for a in attributes), "no Domain: host-only"
    assert "secure" not in attributes  # plain http, no proxy: a Secure cookie would be lost


async def test_the_xsrf_cookie_stays_on_this_site(
    make_instance: MakeInstance, http: AsyncHTTPClient
) -> None:
    instance = await make_instance()
    browser = Browser(http, instance)
    await browser.xsrf()
    xsrf = [c for c in browser.set_cookies if c.startswith("_xsrf=")]
    assert xsrf, browser.set_cookies
    attributes = [part.strip().lower() for part in xsrf[-1].split(";")[1:]]
    assert "samesite=strict" in attributes and "path=/" in attributes


@pytest.mark.parametrize("page", [False, True], ids=["api", "page"])
async def test_session_cookie_is_secure_behind_an_https_proxy(
    make_instance: MakeInstance, http: AsyncHTTPClient, page: bool
) -> None:
    instance = await make_instance(**{"server.xheaders": True})
    browser = Browser(http, instance)
    proxy = {"X-Forwarded-Proto": "https"}
    if page:
        token = await browser.xsrf()
        form = urlencode({"username": "alice", "password": PASSWORD, "password2": PASSWORD})
        response = await browser.call(
            "POST",
            "/register",
            body=form.encode(),
            headers={**proxy, "X-XSRFToken": token},
            xsrf=False,
        )
        assert response.code == 302, response.body
    else:
        response = await browser.call(
            "POST",
            "/api/register",
            {"username": "alice", "password": PASSWORD},
            headers=proxy,
        )
        assert response.code == 201, response.body
    attributes = session_set_cookie(browser)
    assert "secure" in attributes
    assert "httponly" in attributes
    assert "samesite=lax" in attributes


async def test_xheaders_off_ignores_a_forged_forwarded_proto(
    make_instance: MakeInstance, http: AsyncHTTPClient
) -> None:
    """Without ``server.xheaders`` a client cannot claim https (nor an IP) by header."""
    instance = await make_instance()
    browser = Browser(http, instance)
    response = await browser.call(
        "POST",
        "/api/register",
        {"username": "alice", "password": PASSWORD},
        headers={"X-Forwarded-Proto": "https"},
    )
    assert response.code == 201
    assert "secure" not in session_set_cookie(browser)


# --- redirects -----------------------------------------------------------------------

HOSTILE_NEXT = [
    "//evil.com",
    "//evil.com/path",
    "https://evil.com",
    "http://evil.com/",
    "/\\evil.com",
    "\\\\evil.com",
    "/\\/evil.com",
    "javascript:alert(1)",
    "JavaScript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "/\t/evil.com",
    "/\n/evil.com",
    " //evil.com",
    "///evil.com",
    "https:evil.com",
    "evil.com",
]


def lands_on_site(base: str, location: str) -> bool:
    # Browsers drop tabs and newlines from URLs and treat "\" as "/".
    cleaned = re.sub(r"[\t\n\r]", "", location).replace("\\", "/")
    target = urlsplit(urljoin(base, cleaned))
    return target.scheme == "http" and target.netloc == urlsplit(base).netloc


@pytest.mark.parametrize("hostile", HOSTILE_NEXT)
async def test_login_next_stays_on_site(
    make_instance: MakeInstance, http: AsyncHTTPClient, hostile: str
) -> None:
    instance = await make_instance()
    base = f"http://127.0.0.1:{instance.port}/login"
    browser = Browser(http, instance)
    assert (await browser.register("alice")).code == 201
    await browser.logout()

    form = await browser.call("GET", f"/login?{urlencode({'next': hostile})}")
    assert form.code == 200
    hidden = re.search(rb'name="next"[^>]*value="([^"]*)"', form.body) or re.search(
        rb'value="([^"]*)"[^>]*name="next"', form.body
    )
    assert hidden is not None, form.body[:500]
    assert lands_on_site(base, hidden.group(1).decode()), hidden.group(1)

    token = await browser.xsrf()
    body = urlencode({"username": "alice", "password": PASSWORD, "next": hostile})
    response = await browser.call(
        "POST", "/login", body=body.encode(), headers={"X-XSRFToken": token}, xsrf=False
    )
    assert response.code == 302, response.body[:300]
    location = response.headers["Location"]
    assert lands_on_site(base, location), location
    assert location == "/", location


@pytest.mark.parametrize("good", ["/guilds", "/game/abc123?x=1", "/users/alice/history"])
async def test_login_next_keeps_same_site_paths(
    make_instance: MakeInstance, http: AsyncHTTPClient, good: str
) -> None:
    instance = await make_instance()
    browser = Browser(http, instance)
    assert (await browser.register("alice")).code == 201
    await browser.logout()
    token = await browser.xsrf()
    body = urlencode({"username": "alice", "password": PASSWORD, "next": good})
    response = await browser.call(
        "POST", "/login", body=body.encode(), headers={"X-XSRFToken": token}, xsrf=False
    )
    assert response.code == 302
    assert response.headers["Location"] == good


async def test_signed_out_redirect_to_login_keeps_only_the_path(
    make_instance: MakeInstance, http: AsyncHTTPClient
) -> None:
    instance = await make_instance()
    browser = Browser(http, instance)
    response = await browser.call("GET", "/guilds")
    assert response.code == 302
    assert response.headers["Location"] == "/login?next=/guilds"


# --- user enumeration ----------------------------------------------------------------


async def test_login_unknown_user_and_wrong_password_look_alike(
    make_instance: MakeInstance, http: AsyncHTTPClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A real bcrypt cost, so a skipped hash would show in the timing.
    instance = await make_instance(**{"security.bcrypt_rounds": 10})
    browser = Browser(http, instance)
    assert (await browser.register("alice")).code == 201
    await browser.logout()

    checks: list[int] = []
    real_checkpw = bcrypt.checkpw

    def counting_checkpw(password: bytes, hashed: bytes) -> bool:
        checks.append(1)
        return bool(real_checkpw(password, hashed))

    monkeypatch.setattr("app.passwords.bcrypt.checkpw", counting_checkpw)

    async def attempt(name: str, password: str) -> tuple[HTTPResponse, float]:
        started = time.perf_counter()
        response = await browser.login(name, password)
        return response, time.perf_counter() - started

    unknown: list[float] = []
    wrong: list[float] = []
    answers: list[HTTPResponse] = []
    for round_ in range(4):  # interleaved; 8 attempts stay under the per-user limit of 10
        response, seconds = await attempt(f"nobody{round_}", PASSWORD)
        unknown.append(seconds)
        answers.append(response)
        response, seconds = await attempt("alice", "wrong password")
        wrong.append(seconds)
        answers.append(response)
    first_unknown, first_wrong = answers[0], answers[1]
    assert all(a.body == first_wrong.body for a in answers)
    assert len(checks) == 8, "bcrypt must run for unknown users too"
    assert first_unknown.code == first_wrong.code == 401
    assert first_unknown.body == first_wrong.body
    assert_error(first_unknown, 401, "bad_credentials")
    assert first_unknown.headers.get("Set-Cookie") is None
    ratio = statistics.median(unknown) / statistics.median(wrong)
    assert 1 / 3 < ratio < 3.0, (unknown, wrong)  # wide: the bcrypt count above is exact

    # A name that can never exist (bad characters) answers the same, too.
    odd = await browser.login("no such user!", PASSWORD)
    assert odd.code == 401 and odd.body == first_wrong.body


async def test_login_page_unknown_user_and_wrong_password_look_alike(
    make_instance: MakeInstance, http: AsyncHTTPClient
) -> None:
    instance = await make_instance()
    browser = Browser(http, instance)
    assert (await browser.register("alice")).code == 201
    await browser.logout()
    token = await browser.xsrf()

    async def post(name: str, password: str) -> HTTPResponse:
        body = urlencode({"username": name, "password": password, "next": "/"})
        return await browser.call(
            "POST", "/login", body=body.encode(), headers={"X-XSRFToken": token}, xsrf=False
        )

    unknown = await post("bobby", PASSWORD)
    wrong = await post("alice", "wrong password")
    assert unknown.code == wrong.code == 401

    # Same page but for the echoed username (and the per-response XSRF form token).
    def normalise(body: bytes, name: str) -> bytes:
        body = re.sub(rb'name="_xsrf" value="[^"]*"', b"", body)
        return body.replace(name.encode(), b"NAME")

    assert normalise(unknown.body, "bobby") == normalise(wrong.body, "alice")


async def test_registration_of_a_taken_name_says_so(
    make_instance: MakeInstance, http: AsyncHTTPClient
) -> None:
    """Documented in docs/security.md: registration reveals that a name is taken (it has
    to), limited by ``security.registrations_per_ip``; login never does."""
    instance = await make_instance()
    assert (await Browser(http, instance).register("alice")).code == 201
    assert_error(await Browser(http, instance).register("ALICE"), 409, "username_taken")


# --- session fixation ----------------------------------------------------------------


async def test_a_planted_session_cookie_is_replaced_and_ended_at_login(
    make_instance: MakeInstance, http: AsyncHTTPClient
) -> None:
    """Mallory signs in, plants her cookie in the victim's browser; the victim logs in:
    the browser gets a new id, and Mallory's planted id stops working (no fixation)."""
    instance = await make_instance()
    mallory = Browser(http, instance)
    assert (await mallory.register("mallory")).code == 201
    assert (await Browser(http, instance).register("alice")).code == 201
    planted_cookie, planted_id = mallory.session, mallory.session_id()

    victim = Browser(http, instance)
    victim.cookies[SESSION_COOKIE] = planted_cookie  # type: ignore[assignment]
    assert data(await victim.me())["username"] == "mallory"
    assert (await victim.login("alice")).code == 200
    assert victim.session_id() != planted_id
    assert data(await victim.me())["username"] == "alice"
    # The old id is no longer valid for anyone: Mallory cannot ride along.
    assert_error(await mallory.me(), 401, "not_signed_in")


@pytest.mark.parametrize("via", ["api", "page"])
async def test_every_login_issues_a_fresh_session_id_and_ends_the_old_one(
    make_instance: MakeInstance, http: AsyncHTTPClient, via: str
) -> None:
    instance = await make_instance()
    browser = Browser(http, instance)
    assert (await browser.register("alice")).code == 201
    before_cookie, before_id = browser.session, browser.session_id()
    if via == "api":
        assert (await browser.login("alice")).code == 200
    else:
        token = await browser.xsrf()
        body = urlencode({"username": "alice", "password": PASSWORD, "next": "/"})
        response = await browser.call(
            "POST", "/login", body=body.encode(), headers={"X-XSRFToken": token}, xsrf=False
        )
        assert response.code == 302
    assert browser.session_id() != before_id
    assert (await browser.me()).code == 200
    stale = Browser(http, instance)
    stale.cookies[SESSION_COOKIE] = before_cookie  # type: ignore[assignment]
    assert_error(await stale.me(), 401, "not_signed_in")


async def test_unsigned_or_forged_session_cookies_are_ignored(
    make_instance: MakeInstance, http: AsyncHTTPClient
) -> None:
    instance = await make_instance()
    alice = Browser(http, instance)
    assert (await alice.register("alice")).code == 201
    raw_id = alice.session_id()
    forged = tornado.web.create_signed_value("not-the-secret", SESSION_COOKIE, raw_id).decode()
    for value in (raw_id, forged, "x" * 64):
        stranger = Browser(http, instance)
        stranger.cookies[SESSION_COOKIE] = value
        assert_error(await stranger.me(), 401, "not_signed_in")


async def test_session_ids_are_long_and_random(
    make_instance: MakeInstance, http: AsyncHTTPClient
) -> None:
    instance = await make_instance()
    browser = Browser(http, instance)
    assert (await browser.register("alice")).code == 201
    seen = {browser.session_id()}
    for _ in range(3):
        assert (await browser.login("alice")).code == 200
        seen.add(browser.session_id())
    assert len(seen) == 4
    assert all(re.fullmatch(r"[0-9a-f]{64}", s) for s in seen), seen


# --- secrets in logs -----------------------------------------------------------------


async def test_secrets_never_reach_the_logs(
    make_instance: MakeInstance,
    http: AsyncHTTPClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    password = "hunter2-very-secret-password"
    wrong = "wrong-but-still-secret-password"
    token = "operator-token-do-not-log-4242"
    # As server.py logs in production (INFO), with Playhouse's and Tornado's own loggers
    # at DEBUG on top (they must not leak even then).
    caplog.set_level(logging.INFO)
    for name in ("playhouse", "tornado", "app"):
        caplog.set_level(logging.DEBUG, logger=name)
    instance = await make_instance(**{"admin.token": token})
    browser = Browser(http, instance)
    assert (await browser.register("alice", password)).code == 201
    secrets_seen = [password, wrong, token, browser.session, browser.session_id()]
    assert (await browser.login("alice", wrong)).code == 401
    assert (await browser.login("alice", password)).code == 200
    secrets_seen += [browser.session, browser.session_id(), await browser.xsrf()]
    # Page forms too (bodies are form-encoded there).
    page = urlencode({"username": "alice", "password": password, "next": "/"})
    xsrf = await browser.xsrf()
    await browser.call(
        "POST", "/login", body=page.encode(), headers={"X-XSRFToken": xsrf}, xsrf=False
    )
    secrets_seen += [browser.session, browser.session_id()]
    for bearer in (token, "a-wrong-token-guess-777"):
        await browser.call(
            "POST",
            "/api/admin/broadcast",
            {"text": "hello"},
            xsrf=False,
            headers={"Authorization": f"Bearer {bearer}"},
        )
    secrets_seen.append("a-wrong-token-guess-777")
    # A failing request with the secrets in it (bad JSON) must not echo them either.
    await browser.call(
        "POST",
        "/api/login",
        body=f'{{"username": "alice", "password": "{password}"'.encode(),
        headers={"Content-Type": "application/json"},
    )
    await browser.logout()
    logged = caplog.text + "\n".join(str(r.args) for r in caplog.records)
    assert caplog.records, "nothing was logged at all: the capture is not working"
    for secret in secrets_seen:
        assert secret and secret.strip('"') not in logged, f"secret {secret[:6]}… in the logs"


@pytest.mark.redis
async def test_redis_password_is_never_logged(
    make_instance: MakeInstance,
    redis_server: RedisProcess,
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = "redis-password-do-not-log-31337"
    caplog.set_level(logging.DEBUG)
    # Redis 6+: the default user has no password, so AUTH default <anything> succeeds.
    url = f"redis://default:{secret}@127.0.0.1:{redis_server.port}/0"
    await make_instance(**{"redis.url": url})
    # And an unreachable Redis: the start-up error names the URL, without the password.
    dead = f"redis://default:{secret}@127.0.0.1:{free_port()}/0"
    with pytest.raises(Exception) as failed:  # any start-up error will do
        await make_instance(**{"redis.url": dead, "redis.timeout": 0.5})
    assert secret not in str(failed.value)
    assert "***" in str(failed.value) or "127.0.0.1" in str(failed.value)
    logged = caplog.text + "\n".join(str(r.args) for r in caplog.records)
    assert secret not in logged


async def test_debug_logging_does_not_leak_session_ids(
    make_instance: MakeInstance,
    http: AsyncHTTPClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)  # what server.py does with server.debug = true
    instance = await make_instance()
    browser = Browser(http, instance)
    assert (await browser.register("alice")).code == 201
    assert (await browser.me()).code == 200
    assert browser.session_id() not in caplog.text
