"""Fuzz every JSON API route of one real in-process instance with hostile input.

Each route gets hypothesis-generated bodies (arbitrary JSON, wrong types in its own
fields, huge strings, invalid UTF-8 inside and outside strings, non-JSON bytes, empty,
deep nesting), query strings and path segments, sent by a registered, signed-in
Browser with a valid XSRF token. Every answer must be below 500, JSON, and (for an
error) ``{"error": code, "message": text}`` with a code documented in
docs/protocol.md and a message that shows no traceback, class repr or file path.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tornado.httpclient import AsyncHTTPClient, HTTPResponse

from app.runtime import Instance
from tests.conftest import MakeInstance
from tests.handlers.test_accounts_api import Browser, data
from tests.handlers.test_lobby_api import lobby
from tests.handlers.test_rematch import online

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
ADMIN_TOKEN = "fuzz-operator-token"
GUILD = "fuzzers"

fuzz = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def documented_codes() -> set[str]:
    """Every error code the HTTP API section of docs/protocol.md names (in backticks)."""
    text = DOC.read_text(encoding="utf-8").split("## HTTP API", 1)[1]
    codes = set(re.findall(r"`\d{3} ([a-z][a-z_]*)`", text))
    codes |= set(re.findall(r"`([a-z]+(?:_[a-z]+)+)`", text))  # snake_case codes in lists
    for line in text.splitlines():  # "Other codes on every call: `400 bad_json` / `too_large`"
        if line.startswith("Other codes on every call") or "with the rules' code" in line:
            codes |= set(re.findall(r"`(?:\d{3} )?([a-z][a-z_]*)`", line))
    return codes


DOCUMENTED = documented_codes()

LEAKS = (
    "Traceback",
    'File "',
    "Error(",
    "Exception",
    "NoneType",
    "object has no attribute",
    "object at 0x",
    "site-packages",
    ".py",
    "/work/",
    "/usr/",
    "<class ",
)


def test_the_doc_parser_finds_the_documented_codes() -> None:
    expected = {"invalid", "bad_json", "too_large", "xsrf", "bad_move", "not_a_player", "stale"}
    assert expected <= DOCUMENTED, expected - DOCUMENTED


def check(response: HTTPResponse, sent: str) -> Any:
    """The checks every answer passes, whatever was sent; returns the JSON body."""
    assert response.code < 500, (response.code, response.body[:300])
    assert response.code != 599, response.error  # no answer at all
    body = data(response)  # Content-Type JSON and parseable
    if response.code >= 400:
        assert isinstance(body, dict), body
        code = body.get("error")
        assert code in DOCUMENTED, (response.code, body)
        assert body["error"] != "xsrf", "the Browser sends the XSRF token: never refused for it"
        message = body.get("message")
        assert isinstance(message, str) and message.strip(), body
        for leak in LEAKS:
            assert leak not in message or leak in sent, (leak, message[:300])
    return body


# --- hostile input --------------------------------------------------------------------------

huge_ints = st.sampled_from([2**53 + 1, 2**63, 2**64, -(2**63) - 1, 10**40])
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | huge_ints
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
    | st.text(alphabet=st.characters(min_codepoint=0x80), max_size=10)
)
json_values: st.SearchStrategy[Any] = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
bad_utf8 = st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x80"])


def encode(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


def bodies(fields: tuple[str, ...]) -> st.SearchStrategy[bytes]:
    """Bodies aimed at a route with JSON ``fields``: every way to get them wrong."""
    names = st.sampled_from(fields) if fields else st.text(max_size=8)
    typed = st.dictionaries(names, json_values, max_size=len(fields) + 1).map(encode)
    huge = st.builds(
        lambda name, size: encode({name: "é" * size}),
        names,
        st.sampled_from([1_001, 32_768, 70_000, 200_000]),
    )
    in_string = st.builds(
        lambda name, junk, tail: (
            b'{"' + name.encode("utf-8", "surrogatepass") + b'": "a' + junk + tail + b'"}'
        ),
        names,
        bad_utf8,
        st.binary(max_size=8),
    )
    raw_literal = st.builds(
        lambda name, literal: (
            b'{"' + name.encode("utf-8", "surrogatepass") + b'": ' + literal + b"}"
        ),
        names,
        st.sampled_from([b"1" * 400, b"1e400", b"NaN", b"-Infinity", b"[" * 2000, b'"\\ud800"']),
    )
    return st.one_of(
        typed,
        json_values.map(encode),
        st.binary(max_size=200),
        huge,
        in_string,
        raw_literal,
        st.just(b""),
        st.just(b"[" * 100_000),
    )


def text_params(names: tuple[str, ...]) -> st.SearchStrategy[str]:
    """A query string over ``names`` (and stray names): any text, raw bytes, repeats."""
    value = st.one_of(
        st.text(max_size=30).map(lambda s: quote(s, safe="")),
        st.integers().map(str),
        huge_ints.map(str),
        st.sampled_from(["", "-1", "0", "101", "1e3", "null", "%ff", "%c3%28", "%00", "%"]),
        st.binary(max_size=10).map(lambda b: "".join(f"%{byte:02x}" for byte in b)),
    )
    pair = st.tuples(st.sampled_from(names) | st.text(max_size=5).map(quote), value)
    return st.lists(pair, max_size=5).map(lambda pairs: "&".join(f"{k}={v}" for k, v in pairs))


segments = st.one_of(
    st.text(min_size=1, max_size=70).map(lambda s: quote(s, safe="")),
    st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True),
    st.binary(min_size=1, max_size=8).map(lambda b: "".join(f"%{byte:02x}" for byte in b)),
)


# --- one world per test: players, games in every state, a guild ------------------------------


@dataclass
class World:
    instance: Instance
    alice: Browser  # signed in; plays both games, owns the guild
    bob: Browser
    anonymous: Browser  # XSRF token, no session (register and login)
    active: str  # alice vs bob, tictactoe, alice to move
    finished: str  # alice resigned
    challenge: str  # pending, alice → cat


async def post_ok(browser: Browser, path: str, payload: Any = None) -> Any:
    response = await browser.call("POST", path, {} if payload is None else payload)
    assert response.code in (200, 201), (path, response.code, response.body[:300])
    return data(response)


@pytest.fixture
async def world(make_instance: MakeInstance) -> AsyncIterator[World]:
    instance = await make_instance(
        **{
            "admin.token": ADMIN_TOKEN,
            "security.login_attempts_per_ip": 1_000_000,
            "security.login_attempts_per_user": 1_000_000,
            "security.registrations_per_ip": 1_000_000,
            "guilds.chat_per_window": 1_000_000,
        }
    )
    http = AsyncHTTPClient(force_instance=True, max_clients=16)
    alice, bob, cat, anonymous = (Browser(http, instance) for _ in range(4))
    sockets = []
    for browser, name in ((alice, "alice"), (bob, "bob"), (cat, "cat")):
        assert (await browser.register(name)).code == 201
        sockets.append(await lobby(browser, name))  # online: challenges need it
    await anonymous.xsrf()
    pending = await post_ok(alice, "/api/challenges", {"to": "cat", "game": "dots"})

    async def game(kind: str) -> str:
        made = await post_ok(alice, "/api/challenges", {"to": "bob", "game": kind})
        started = await post_ok(bob, f"/api/challenges/{made['id']}/accept")
        return str(started["game_id"])

    finished = await game("connect4")
    await post_ok(alice, f"/api/games/{finished}/resign")
    await online(instance, "alice", "bob")
    active = await game("tictactoe")
    await post_ok(alice, "/api/guilds", {"name": GUILD, "description": "fuzz", "open": True})
    yield World(instance, alice, bob, anonymous, active, finished, str(pending["id"]))
    for conn in sockets:
        conn.close()
    http.close()


async def send(browser: Browser, method: str, path: str, body: bytes | None = None) -> Any:
    headers = {"Content-Type": "application/json"}
    response = await browser.call(method, path, body=body, headers=headers)
    sent = path + (body or b"").decode("utf-8", "replace")
    return response, check(response, sent)


async def assert_still_serving(world: World) -> None:
    """After the fuzz the same session still works (nothing crashed or got wedged)."""
    response = await world.alice.call("GET", "/api/me")
    assert response.code == 200 and data(response)["username"] == "alice"
    health = await world.alice.call("GET", "/healthz")
    assert health.code == 200


# --- POST routes with bodies -------------------------------------------------------------------

BODY_ROUTES: dict[str, tuple[str, tuple[str, ...]]] = {
    # name: (path template, JSON fields); {active}/{finished}/{challenge}/{guild} filled in
    "register": ("/api/register", ("username", "password")),
    "login": ("/api/login", ("username", "password")),
    "challenges": ("/api/challenges", ("to", "game")),
    "challenge-accept": ("/api/challenges/{challenge}/accept", ()),
    "challenge-decline": ("/api/challenges/{challenge}/decline", ()),
    "challenge-cancel": ("/api/challenges/{challenge}/cancel", ()),
    "moves": ("/api/games/{active}/moves", ("move", "seq")),
    "resign": ("/api/games/{finished}/resign", ()),
    "draw": ("/api/games/{active}/draw", ("action",)),
    "game-chat": ("/api/games/{active}/chat", ("text",)),
    "rematch": ("/api/games/{finished}/rematch", ()),
    "guild-create": ("/api/guilds", ("name", "description", "open")),
    "guild-join": ("/api/guilds/{guild}/join", ()),
    "guild-leave": ("/api/guilds/{guild}/leave", ()),
    "guild-owner": ("/api/guilds/{guild}/owner", ("username",)),
    "guild-request": ("/api/guilds/{guild}/requests/bob/accept", ()),
    "guild-member": ("/api/guilds/{guild}/members/bob/remove", ()),
    "guild-chat": ("/api/guilds/{guild}/chat", ("text",)),
    "admin-broadcast": ("/api/admin/broadcast", ("text", "expire")),
}


def fill(template: str, world: World) -> str:
    return template.format(
        active=world.active, finished=world.finished, challenge=world.challenge, guild=GUILD
    )


@pytest.mark.parametrize("route", list(BODY_ROUTES), ids=list(BODY_ROUTES))
@fuzz
@given(body=st.data())
async def test_post_bodies(world: World, route: str, body: st.DataObject) -> None:
    template, fields = BODY_ROUTES[route]
    raw = body.draw(bodies(fields), label="body")
    browser = world.anonymous if route in ("register", "login") else world.alice
    path = fill(template, world)
    if route == "admin-broadcast":
        response = await browser.call(
            "POST",
            path,
            body=raw,
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"},
            xsrf=False,
        )
        check(response, raw.decode("utf-8", "replace"))
    else:
        response, _ = await send(browser, "POST", path, raw)
    if len(raw) > 64 * 1024 and fields:
        assert response.code == 400 and data(response)["error"] == "too_large"
    await assert_still_serving(world)


@fuzz
@given(token=st.text(max_size=40), raw=bodies(("text", "expire")))
async def test_admin_broadcast_with_any_authorization(world: World, token: str, raw: bytes) -> None:
    header = "Bearer " + token.encode("latin-1", "replace").decode("latin-1")
    header = "".join(ch for ch in header if ch.isprintable())
    response = await world.alice.call(
        "POST", "/api/admin/broadcast", body=raw, headers={"Authorization": header}
    )
    check(response, token + raw.decode("utf-8", "replace"))
    if token.strip() != ADMIN_TOKEN:
        assert response.code in (400, 401, 403), response.code  # never accepted


# --- GET routes with query strings and path segments -----------------------------------------

QUERY_ROUTES: dict[str, tuple[str, tuple[str, ...]]] = {
    "lobby": ("/api/lobby", ("guild",)),
    "history": ("/api/users/alice/games", ("kind", "outcome", "before", "limit")),
    "leaderboard": ("/api/leaderboard", ("kind", "limit")),
    "replay": ("/api/games/{finished}/replay", ()),
    "game": ("/api/games/{active}", ()),
    "profile": ("/api/users/alice/profile", ()),
    "guild": ("/api/guilds/{guild}", ()),
    "guild-chat-history": ("/api/guilds/{guild}/chat", ()),
}


@pytest.mark.parametrize("route", list(QUERY_ROUTES), ids=list(QUERY_ROUTES))
@fuzz
@given(query=st.data())
async def test_get_query_strings(world: World, route: str, query: st.DataObject) -> None:
    template, names = QUERY_ROUTES[route]
    params = query.draw(text_params(names or ("x",)), label="query")
    response, body = await send(world.alice, "GET", f"{fill(template, world)}?{params}")
    if response.code == 200:
        assert isinstance(body, dict)
    await assert_still_serving(world)


PATH_ROUTES = [
    ("GET", "/api/games/{}"),
    ("GET", "/api/games/{}/replay"),
    ("GET", "/api/users/{}/games"),
    ("GET", "/api/users/{}/profile"),
    ("GET", "/api/guilds/{}"),
    ("GET", "/api/guilds/{}/chat"),
    ("POST", "/api/games/{}/moves"),
    ("POST", "/api/games/{}/draw"),
    ("POST", "/api/games/{}/chat"),
    ("POST", "/api/games/{}/rematch"),
    ("POST", "/api/challenges/{}/accept"),
    ("POST", "/api/guilds/{}/join"),
    ("POST", "/api/guilds/fuzzers/requests/{}/decline"),
    ("POST", "/api/guilds/fuzzers/members/{}/remove"),
]


@fuzz
@given(route=st.sampled_from(PATH_ROUTES), segment=segments, raw=bodies(("move", "seq", "text")))
async def test_path_segments(
    world: World, route: tuple[str, str], segment: str, raw: bytes
) -> None:
    method, template = route
    path = template.format(segment)
    response, _ = await send(world.alice, method, path, raw if method == "POST" else None)
    assert response.code != 200 or method == "GET" or segment in ("fuzzers",), path
    await assert_still_serving(world)


# --- error codes the fuzz once found undocumented: each is documented now ------------------


def documented(response: HTTPResponse) -> bool:
    return data(response).get("error") in DOCUMENTED


async def test_invalid_utf8_query_argument_has_a_documented_code(world: World) -> None:
    response = await world.alice.call("GET", "/api/leaderboard?kind=%ff")
    assert response.code == 400 and documented(response), response.body


async def test_unknown_game_has_a_documented_code(world: World) -> None:
    response = await world.alice.call("GET", "/api/games/no-such-game")
    assert response.code == 404 and documented(response), response.body


async def test_admin_refusals_have_documented_codes(world: World) -> None:
    wrong = await world.alice.call(
        "POST", "/api/admin/broadcast", {"text": "x"}, headers={"Authorization": "Bearer no"}
    )
    not_admin = await world.alice.call("POST", "/api/admin/broadcast", {"text": "x"})
    assert (wrong.code, not_admin.code) == (401, 403)
    assert documented(wrong) and documented(not_admin), (wrong.body, not_admin.body)


async def test_rematch_while_opponent_plays_has_a_documented_code(world: World) -> None:
    response = await world.alice.call("POST", f"/api/games/{world.finished}/rematch")
    assert response.code == 409 and documented(response), response.body
