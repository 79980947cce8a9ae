"""Authorization matrix for HTTP: every route × actor, with the expected status and code.

``ROWS`` lists every state-changing call (each POST of every route) and every GET, each
with the actors that matter for it and what each of them must get. A cell runs on a fresh
scene (new users, guild, game or challenge), so an allowed cell changes nothing another
cell sees. ``test_every_route_has_rows`` fails when a route is added to ``app/__init__.py``
without rows here.

Actors (resolved per scene): ``anonymous`` (no session, with a valid XSRF token: tests the
sign-in, not the token), ``operator`` (the operator Bearer token, no session, no XSRF),
``<role>`` (a signed-in user in that role) and ``<role>_no_xsrf`` (the same user, without
the XSRF header).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import orjson
import pytest
import pytest_asyncio
import tornado.web
from tornado.httpclient import AsyncHTTPClient, HTTPRequest, HTTPResponse
from tornado.websocket import WebSocketClientConnection, websocket_connect

from app import GAME_ID, USER_NAME
from app.config import load_settings
from app.handlers.guilds import GUILD_NAME
from app.runtime import Instance
from tests.conftest import http_url, ws_url
from tests.handlers.test_accounts_api import PASSWORD, Browser, data
from tests.support import ROOT, MongoProcess, RedisProcess, recv, unique_database

pytestmark = pytest.mark.asyncio(loop_scope="module")

TOKEN = "operator-token-for-the-api-matrix"
HEARTBEAT = "--heartbeat--"


@dataclass(frozen=True)
class Expect:
    """``status``, and for JSON APIs the ``error`` code of the body (None: not checked)."""

    status: int
    code: str | None = None


OK, CREATED, REDIRECT = Expect(200), Expect(201), Expect(302)
SIGN_IN = Expect(401, "not_signed_in")
XSRF = Expect(403, "xsrf")
PAGE_XSRF = Expect(403)  # a page's XSRF refusal: the error page
TO_LOGIN = Expect(302)  # a page's "sign in first": redirected to /login
NOT_ADMIN = Expect(403, "not_admin")
NOT_OWNER = Expect(403, "not_owner")
NOT_MEMBER = Expect(403, "not_member")
NOT_A_PLAYER = Expect(403, "not_a_player")
NOT_YOURS = Expect(403, "not_yours")

Check = Callable[["Scene", str, HTTPResponse], Awaitable[None]]


@dataclass(frozen=True)
class Row:
    method: str
    route: str  # the route's regex, exactly as in app/__init__.py
    path: str  # formatted with the scene's params
    scene: str
    cells: dict[str, Expect]
    body: dict[str, Any] | None = None
    form: dict[str, str] | None = None  # a page form post instead of JSON
    check: Check | None = None  # more to verify after the answer


# --- checks on answers ------------------------------------------------------------------


async def private_view(scene: Scene, actor: str, response: HTTPResponse) -> None:
    """Bingo: a player sees their own board; nobody else sees any board."""
    if response.code != 200:
        return
    view = data(response)["view"]
    if actor in ("player", "opponent"):
        assert "board" in view and view["you"] in (0, 1), view
    else:
        assert "board" not in view and "boards" not in view and "you" not in view, view


async def owner_sees_requests(scene: Scene, actor: str, response: HTTPResponse) -> None:
    if response.code != 200:
        return
    requests = [r["username"] for r in data(response)["requests"]]
    assert requests == ([scene.names["requester"]] if actor == "owner" else []), (actor, requests)


async def still_signed_in(scene: Scene, actor: str, response: HTTPResponse) -> None:
    if actor.endswith("_no_xsrf") or actor == "operator":
        browser = scene.browsers[actor.removesuffix("_no_xsrf")] if actor != "operator" else None
        if browser is not None:
            assert (await browser.me()).code == 200, "refused logout ended the session"
    elif actor == "user":
        assert (await scene.browsers["user"].me()).code == 401, "logout left the session"


async def nothing_changed_for_outsiders(scene: Scene, actor: str, response: HTTPResponse) -> None:
    """A refused game command leaves the game where it was."""
    if response.code >= 400:
        view = data(
            await scene.browsers["player"].call("GET", f"/api/games/{scene.params['game']}")
        )
        assert view["seq"] == scene.params.get("seq0", 0), view


# --- routes (as in app/__init__.py) -----------------------------------------------------

G = f"({GUILD_NAME})"
GAME = f"({GAME_ID})"
USER = f"({USER_NAME})"
GUILD_MEMBER = rf"/api/guilds/{G}/(requests|members)/([^/]{{1,64}})/(accept|decline|remove)"
CHALLENGE_ACTION = r"/api/challenges/(\w{1,64})/(accept|decline|cancel)"
GUILD_ACTION = rf"/api/guilds/{G}/(join|leave|owner)"

X = {"operator": XSRF}  # every POST: the token is for the broadcast API only
ROWS: list[Row] = [
    # -- accounts
    Row(
        "POST",
        r"/api/register",
        "/api/register",
        "plain",
        body={"username": "{fresh}", "password": PASSWORD},
        cells={
            "anonymous": CREATED,
            "user": CREATED,
            "admin": CREATED,
            "anonymous_no_xsrf": XSRF,
            **X,
        },
    ),
    Row(
        "POST",
        r"/api/login",
        "/api/login",
        "plain",
        body={"username": "{user}", "password": PASSWORD},
        cells={"anonymous": OK, "anonymous_no_xsrf": XSRF, **X},
    ),
    Row(
        "POST",
        r"/api/login",
        "/api/login",
        "plain",
        body={"username": "{user}", "password": "wrong password"},
        cells={"anonymous": Expect(401, "bad_credentials")},
    ),
    Row(
        "POST",
        r"/api/logout",
        "/api/logout",
        "plain",
        check=still_signed_in,
        cells={"anonymous": OK, "user": OK, "user_no_xsrf": XSRF, **X},
    ),
    Row(
        "POST",
        r"/login",
        "/login",
        "plain",
        form={"username": "{user}", "password": PASSWORD},
        cells={"anonymous": REDIRECT, "anonymous_no_xsrf": PAGE_XSRF, "operator": PAGE_XSRF},
    ),
    Row(
        "POST",
        r"/register",
        "/register",
        "plain",
        form={"username": "{fresh}", "password": PASSWORD},
        cells={"anonymous": REDIRECT, "anonymous_no_xsrf": PAGE_XSRF, "operator": PAGE_XSRF},
    ),
    Row(
        "POST",
        r"/logout",
        "/logout",
        "plain",
        check=still_signed_in,
        cells={
            "anonymous": REDIRECT,
            "user": REDIRECT,
            "user_no_xsrf": PAGE_XSRF,
            "operator": PAGE_XSRF,
        },
    ),
    # -- admin
    Row(
        "POST",
        r"/api/admin/broadcast",
        "/api/admin/broadcast",
        "plain",
        body={"text": "matrix", "expire": 0},
        cells={
            "anonymous": SIGN_IN,
            "user": NOT_ADMIN,
            "admin": CREATED,
            "admin_no_xsrf": XSRF,
            "operator": CREATED,
            "wrong_token": Expect(401, "bad_token"),
            "user_no_xsrf": XSRF,
        },
    ),
    Row(
        "POST",
        r"/admin",
        "/admin",
        "plain",
        form={"text": "matrix", "expire": "0"},
        cells={
            "anonymous": Expect(401),
            "user": Expect(403),
            "admin": REDIRECT,
            "admin_no_xsrf": PAGE_XSRF,
            "operator": PAGE_XSRF,
        },
    ),
    Row(
        "GET",
        r"/admin",
        "/admin",
        "plain",
        cells={"anonymous": TO_LOGIN, "user": Expect(403), "admin": OK, "operator": TO_LOGIN},
    ),
    # -- guilds
    Row(
        "POST",
        r"/api/guilds",
        "/api/guilds",
        "plain",
        body={"name": "{fresh}", "description": "", "open": True},
        cells={"anonymous": SIGN_IN, "user": CREATED, "admin": CREATED, "user_no_xsrf": XSRF, **X},
    ),
    Row(
        "POST",
        GUILD_ACTION,
        "/api/guilds/{guild}/join",
        "open_guild",
        cells={
            "anonymous": SIGN_IN,
            "owner": Expect(409, "already_member"),
            "member": Expect(409, "already_member"),
            "non_member": OK,
            "admin": OK,
            "non_member_no_xsrf": XSRF,
            **X,
        },
    ),
    Row(
        "POST",
        GUILD_ACTION,
        "/api/guilds/{guild}/leave",
        "guild",
        cells={
            "anonymous": SIGN_IN,
            "owner": Expect(409, "owner_must_hand_over"),
            "member": OK,
            "non_member": Expect(409, "not_member"),
            "admin": Expect(409, "not_member"),
            "member_no_xsrf": XSRF,
            **X,
        },
    ),
    Row(
        "POST",
        GUILD_ACTION,
        "/api/guilds/{guild}/owner",
        "guild",
        body={"username": "{member}"},
        cells={
            "anonymous": SIGN_IN,
            "owner": OK,
            "member": NOT_OWNER,
            "non_member": NOT_OWNER,
            "requester": NOT_OWNER,
            "admin": NOT_OWNER,
            "owner_no_xsrf": XSRF,
            **X,
        },
    ),
    Row(
        "POST",
        GUILD_MEMBER,
        "/api/guilds/{guild}/requests/{requester}/accept",
        "guild",
        cells={
            "anonymous": SIGN_IN,
            "owner": OK,
            "member": NOT_OWNER,
            "non_member": NOT_OWNER,
            "requester": NOT_OWNER,
            "admin": NOT_OWNER,
            "owner_no_xsrf": XSRF,
            **X,
        },
    ),
    Row(
        "POST",
        GUILD_MEMBER,
        "/api/guilds/{guild}/requests/{requester}/decline",
        "guild",
        cells={
            "anonymous": SIGN_IN,
            "owner": OK,
            "member": NOT_OWNER,
            "non_member": NOT_OWNER,
            "requester": NOT_OWNER,
            "admin": NOT_OWNER,
            "owner_no_xsrf": XSRF,
            **X,
        },
    ),
    Row(
        "POST",
        GUILD_MEMBER,
        "/api/guilds/{guild}/members/{member}/remove",
        "guild",
        cells={
            "anonymous": SIGN_IN,
            "owner": OK,
            "member": NOT_OWNER,
            "non_member": NOT_OWNER,
            "requester": NOT_OWNER,
            "admin": NOT_OWNER,
            "owner_no_xsrf": XSRF,
            **X,
        },
    ),
    Row(
        "POST",
        GUILD_MEMBER,
        "/api/guilds/{guild}/members/{member}/accept",
        "guild",
        cells={"owner": Expect(404, "no_route"), "member": Expect(404, "no_route")},
    ),
    Row(
        "POST",
        rf"/api/guilds/{G}/chat",
        "/api/guilds/{guild}/chat",
        "guild",
        body={"text": "hi"},
        cells={
            "anonymous": SIGN_IN,
            "owner": CREATED,
            "member": CREATED,
            "non_member": NOT_MEMBER,
            "requester": NOT_MEMBER,
            "admin": NOT_MEMBER,
            "member_no_xsrf": XSRF,
            **X,
        },
    ),
    Row(
        "GET",
        rf"/api/guilds/{G}/chat",
        "/api/guilds/{guild}/chat",
        "guild",
        cells={
            "anonymous": SIGN_IN,
            "owner": OK,
            "member": OK,
            "non_member": NOT_MEMBER,
            "requester": NOT_MEMBER,
            "admin": NOT_MEMBER,
            "operator": SIGN_IN,
        },
    ),
    Row(
        "GET",
        rf"/api/guilds/{G}",
        "/api/guilds/{guild}",
        "guild",
        check=owner_sees_requests,
        cells={
            "anonymous": SIGN_IN,
            "owner": OK,
            "member": OK,
            "non_member": OK,
            "requester": OK,
            "admin": OK,
        },
    ),
    Row("GET", r"/api/guilds", "/api/guilds", "plain", cells={"anonymous": SIGN_IN, "user": OK}),
    Row("GET", r"/guilds", "/guilds", "plain", cells={"anonymous": TO_LOGIN, "user": OK}),
    Row(
        "GET",
        rf"/guilds/{G}",
        "/guilds/{guild}",
        "guild",
        cells={"anonymous": TO_LOGIN, "non_member": OK},
    ),
    # -- challenges
    Row(
        "POST",
        r"/api/challenges",
        "/api/challenges",
        "challenge",
        body={"to": "{challenged}", "game": "connect4"},
        cells={
            "anonymous": SIGN_IN,
            "outsider": CREATED,
            "admin": CREATED,
            "outsider_no_xsrf": XSRF,
            **X,
        },
    ),
    Row(
        "POST",
        CHALLENGE_ACTION,
        "/api/challenges/{challenge}/accept",
        "challenge",
        cells={
            "anonymous": SIGN_IN,
            "challenged": OK,
            "challenger": NOT_YOURS,
            "outsider": NOT_YOURS,
            "admin": NOT_YOURS,
            "challenged_no_xsrf": XSRF,
            **X,
        },
    ),
    Row(
        "POST",
        CHALLENGE_ACTION,
        "/api/challenges/{challenge}/decline",
        "challenge",
        cells={
            "anonymous": SIGN_IN,
            "challenged": OK,
            "challenger": NOT_YOURS,
            "outsider": NOT_YOURS,
            "admin": NOT_YOURS,
            "challenged_no_xsrf": XSRF,
            **X,
        },
    ),
    Row(
        "POST",
        CHALLENGE_ACTION,
        "/api/challenges/{challenge}/cancel",
        "challenge",
        cells={
            "anonymous": SIGN_IN,
            "challenger": OK,
            "challenged": NOT_YOURS,
            "outsider": NOT_YOURS,
            "admin": NOT_YOURS,
            "challenger_no_xsrf": XSRF,
            **X,
        },
    ),
    Row(
        "GET",
        r"/api/lobby",
        "/api/lobby",
        "plain",
        cells={"anonymous": SIGN_IN, "user": OK, "operator": SIGN_IN},
    ),
    # -- games (tictactoe, "player" moves first; "outsider" would be a spectator)
    Row(
        "POST",
        rf"/api/games/{GAME}/moves",
        "/api/games/{game}/moves",
        "game",
        body={"move": {"cell": 4}, "seq": 0},
        check=nothing_changed_for_outsiders,
        cells={
            "anonymous": SIGN_IN,
            "player": OK,
            "opponent": Expect(400, "not_your_turn"),
            "outsider": NOT_A_PLAYER,
            "admin": NOT_A_PLAYER,
            "player_no_xsrf": XSRF,
            **X,
        },
    ),
    Row(
        "POST",
        rf"/api/games/{GAME}/resign",
        "/api/games/{game}/resign",
        "game",
        check=nothing_changed_for_outsiders,
        cells={
            "anonymous": SIGN_IN,
            "player": OK,
            "opponent": OK,
            "outsider": NOT_A_PLAYER,
            "admin": NOT_A_PLAYER,
            "player_no_xsrf": XSRF,
            **X,
        },
    ),
    Row(
        "POST",
        rf"/api/games/{GAME}/draw",
        "/api/games/{game}/draw",
        "game",
        body={"action": "offer"},
        check=nothing_changed_for_outsiders,
        cells={
            "anonymous": SIGN_IN,
            "player": OK,
            "opponent": OK,
            "outsider": NOT_A_PLAYER,
            "admin": NOT_A_PLAYER,
            "player_no_xsrf": XSRF,
            **X,
        },
    ),
    Row(
        "POST",
        rf"/api/games/{GAME}/draw",
        "/api/games/{game}/draw",
        "game",
        body={"action": "accept"},
        cells={"player": Expect(400, "no_draw_offer"), "outsider": NOT_A_PLAYER},
    ),
    Row(
        "POST",
        rf"/api/games/{GAME}/chat",
        "/api/games/{game}/chat",
        "game",
        body={"text": "gg"},
        cells={
            "anonymous": SIGN_IN,
            "player": OK,
            "opponent": OK,
            "outsider": NOT_A_PLAYER,
            "admin": NOT_A_PLAYER,
            "player_no_xsrf": XSRF,
            **X,
        },
    ),
    Row(
        "POST",
        rf"/api/games/{GAME}/rematch",
        "/api/games/{game}/rematch",
        "game",
        cells={"player": Expect(409, "game_active"), "outsider": NOT_A_PLAYER},
    ),
    Row(
        "POST",
        rf"/api/games/{GAME}/rematch",
        "/api/games/{game}/rematch",
        "finished_game",
        cells={
            "anonymous": SIGN_IN,
            "player": CREATED,
            "opponent": CREATED,
            "outsider": NOT_A_PLAYER,
            "admin": NOT_A_PLAYER,
            "player_no_xsrf": XSRF,
            **X,
        },
    ),
    Row(
        "GET",
        rf"/api/games/{GAME}",
        "/api/games/{game}",
        "bingo_game",
        check=private_view,
        cells={
            "anonymous": SIGN_IN,
            "player": OK,
            "opponent": OK,
            "outsider": OK,
            "admin": OK,
            "operator": SIGN_IN,
        },
    ),
    Row(
        "GET",
        rf"/api/games/{GAME}/replay",
        "/api/games/{game}/replay",
        "game",
        cells={
            "anonymous": SIGN_IN,
            "player": Expect(409, "game_active"),
            "outsider": Expect(409, "game_active"),
        },
    ),
    Row(
        "GET",
        rf"/api/games/{GAME}/replay",
        "/api/games/{game}/replay",
        "finished_game",
        cells={"anonymous": SIGN_IN, "player": OK, "outsider": OK},
    ),
    Row(
        "GET",
        rf"/game/{GAME}",
        "/game/{game}",
        "game",
        cells={"anonymous": TO_LOGIN, "player": OK, "outsider": OK},
    ),
    Row(
        "GET",
        rf"/replay/{GAME}",
        "/replay/{game}",
        "game",
        cells={"anonymous": TO_LOGIN, "player": Expect(409), "outsider": Expect(409)},
    ),
    Row("GET", r"/api/games/catalogue", "/api/games/catalogue", "plain", cells={"anonymous": OK}),
    # -- everything else is read-only
    Row("GET", r"/", "/", "plain", cells={"anonymous": OK, "user": OK}),
    Row("GET", r"/login", "/login", "plain", cells={"anonymous": OK}),
    Row("GET", r"/register", "/register", "plain", cells={"anonymous": OK}),
    Row("GET", r"/api/xsrf", "/api/xsrf", "plain", cells={"anonymous": OK}),
    Row(
        "GET",
        r"/api/me",
        "/api/me",
        "plain",
        cells={"anonymous": SIGN_IN, "user": OK, "operator": SIGN_IN},
    ),
    Row(
        "GET",
        rf"/users/{USER}/history",
        "/users/{user}/history",
        "plain",
        cells={"anonymous": TO_LOGIN, "user": OK},
    ),
    Row(
        "GET",
        rf"/users/{USER}",
        "/users/{user}",
        "plain",
        cells={"anonymous": TO_LOGIN, "user": OK},
    ),
    Row("GET", r"/leaderboard", "/leaderboard", "plain", cells={"anonymous": TO_LOGIN, "user": OK}),
    Row(
        "GET",
        rf"/api/users/{USER}/games",
        "/api/users/{user}/games",
        "plain",
        cells={"anonymous": SIGN_IN, "user": OK},
    ),
    Row(
        "GET",
        rf"/api/users/{USER}/profile",
        "/api/users/{user}/profile",
        "plain",
        cells={"anonymous": SIGN_IN, "user": OK},
    ),
    Row(
        "GET",
        r"/api/leaderboard",
        "/api/leaderboard",
        "plain",
        cells={"anonymous": SIGN_IN, "user": OK},
    ),
    Row("GET", r"/healthz", "/healthz", "plain", cells={"anonymous": OK}),
    Row("GET", r"/readyz", "/readyz", "plain", cells={"anonymous": OK}),
    # /metrics is unauthenticated by design (docs/operations.md: "Prometheus text").
    Row("GET", r"/metrics", "/metrics", "plain", cells={"anonymous": OK, "operator": OK}),
]
ELSEWHERE = {
    r"/ws/(.*)": "tests/security/test_authz_channels.py",
    # Tornado's StaticFileHandler (``static_path``): GET/HEAD of files, nothing else.
    r"/static/(.*)": "static files",
    r"/(favicon\.ico)": "static files",
    r"/(robots\.txt)": "static files",
}

CELLS = [
    pytest.param(row, actor, expect, id=f"{row.method} {row.path} {row.scene} {actor}")
    for row in ROWS
    for actor, expect in row.cells.items()
]


# --- scenes -----------------------------------------------------------------------------


@dataclass
class Scene:
    browsers: dict[str, Browser] = field(default_factory=dict)  # role → signed-in browser
    names: dict[str, str] = field(default_factory=dict)  # role → username
    params: dict[str, Any] = field(default_factory=dict)
    sockets: list[WebSocketClientConnection] = field(default_factory=list)


@dataclass
class World:
    instance: Instance
    http: AsyncHTTPClient
    counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def fresh(self, prefix: str = "u") -> str:
        return f"{prefix}{next(self.counter):04d}"

    async def user(self, scene: Scene, role: str) -> Browser:
        browser = Browser(self.http, self.instance)
        name = self.fresh()
        response = await browser.register(name)
        assert response.code == 201, response.body
        scene.browsers[role], scene.names[role] = browser, name
        return browser

    async def admin(self, scene: Scene) -> None:
        name = self.fresh("root")
        await self.instance.deps.accounts.create_admin(name, PASSWORD)  # type: ignore[union-attr]
        browser = Browser(self.http, self.instance)
        assert (await browser.login(name)).code == 200
        scene.browsers["admin"], scene.names["admin"] = browser, name

    async def online(self, scene: Scene, role: str) -> None:
        """Open a lobby socket for ``role`` (only online players can be challenged)."""
        browser = scene.browsers[role]
        request = HTTPRequest(
            ws_url(self.instance, "/ws/lobby?subscribe-user"),
            headers={"Cookie": browser.cookie_header()},
        )
        conn = await asyncio.wait_for(websocket_connect(request), timeout=5)
        await conn.write_message(HEARTBEAT)
        while await recv(conn) != HEARTBEAT:
            pass
        scene.sockets.append(conn)

    async def scene(self, kind: str) -> Scene:
        scene = Scene()
        scene.params["fresh"] = self.fresh("n")
        if kind == "plain":
            await self.user(scene, "user")
            await self.admin(scene)
            scene.params["user"] = scene.names["user"]
        elif kind in ("guild", "open_guild"):
            await self.guild(scene, open_=kind == "open_guild")
        elif kind == "challenge":
            await self.challenge(scene)
        elif kind in ("game", "finished_game", "bingo_game"):
            await self.game(scene, "bingo" if kind == "bingo_game" else "tictactoe")
            if kind == "finished_game":
                path = f"/api/games/{scene.params['game']}/resign"
                assert (await scene.browsers["opponent"].call("POST", path)).code == 200
        else:
            raise AssertionError(kind)
        return scene

    async def guild(self, scene: Scene, *, open_: bool) -> None:
        owner, member = await self.user(scene, "owner"), await self.user(scene, "member")
        await self.user(scene, "non_member")
        await self.admin(scene)
        name = self.fresh("g")
        body = {"name": name, "description": "", "open": open_}
        assert (await owner.call("POST", "/api/guilds", body)).code == 201
        assert (await member.call("POST", f"/api/guilds/{name}/join")).code == 200
        if not open_:
            path = f"/api/guilds/{name}/requests/{scene.names['member']}/accept"
            assert (await owner.call("POST", path)).code == 200
            requester = await self.user(scene, "requester")
            answer = await requester.call("POST", f"/api/guilds/{name}/join")
            assert data(answer)["state"] == "pending", answer.body
            scene.params["requester"] = scene.names["requester"]
        scene.params.update(guild=name, member=scene.names["member"])

    async def challenge(self, scene: Scene) -> None:
        challenger = await self.user(scene, "challenger")
        await self.user(scene, "challenged")
        await self.user(scene, "outsider")
        await self.admin(scene)
        await self.online(scene, "challenged")
        to = scene.names["challenged"]
        sent = await challenger.call("POST", "/api/challenges", {"to": to, "game": "tictactoe"})
        assert sent.code == 201, sent.body
        scene.params.update(challenge=data(sent)["id"], challenged=to)

    async def game(self, scene: Scene, kind: str) -> None:
        player, opponent = await self.user(scene, "player"), await self.user(scene, "opponent")
        await self.user(scene, "outsider")
        await self.admin(scene)
        await self.online(scene, "player")
        await self.online(scene, "opponent")
        to = scene.names["opponent"]
        sent = await player.call("POST", "/api/challenges", {"to": to, "game": kind})
        assert sent.code == 201, sent.body
        accepted = await opponent.call("POST", f"/api/challenges/{data(sent)['id']}/accept")
        assert accepted.code == 200, accepted.body
        game = data(accepted)["game_id"]
        view = data(await player.call("GET", f"/api/games/{game}"))
        assert view["to_move"] == [scene.names["player"]], view  # the challenger moves first
        scene.params.update(game=game, seq0=view["seq"])


def fill(value: Any, params: dict[str, Any]) -> Any:
    if isinstance(value, str):
        return value.format(**params)
    if isinstance(value, dict):
        return {k: fill(v, params) for k, v in value.items()}
    return value


async def send(world: World, scene: Scene, row: Row, actor: str) -> HTTPResponse:
    path = fill(row.path, scene.params)
    payload: Any = fill(row.body, scene.params) if row.body is not None else None
    if actor in ("operator", "wrong_token"):
        token = TOKEN if actor == "operator" else "not-the-token"
        headers = {"Authorization": f"Bearer {token}"}
        body: bytes | None = None
        if payload is not None:
            body, headers["Content-Type"] = orjson.dumps(payload), "application/json"
        elif row.form is not None:
            body = urlencode(fill(row.form, scene.params)).encode()
        if body is None and row.method == "POST":
            body = b""
        request = HTTPRequest(
            http_url(world.instance, path),
            method=row.method,
            headers=headers,
            body=body,
            follow_redirects=False,
        )
        return await world.http.fetch(request, raise_error=False)
    role = actor.removesuffix("_no_xsrf")
    xsrf = not actor.endswith("_no_xsrf")
    anonymous = role == "anonymous"
    browser = Browser(world.http, world.instance) if anonymous else scene.browsers[role]
    if row.form is not None:
        form = urlencode(fill(row.form, scene.params)).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if not xsrf:
            await browser.xsrf()  # the cookie is there; only the token is missing
        return await browser.call(row.method, path, body=form, headers=headers, xsrf=xsrf)
    if payload is not None:
        return await browser.call(row.method, path, payload, xsrf=xsrf)
    if not xsrf:
        await browser.xsrf()
    return await browser.call(row.method, path, xsrf=xsrf)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def world(mongo_session: MongoProcess, redis_session: RedisProcess) -> AsyncIterator[World]:
    redis_session.client().flushall()
    values = {
        "server.port": 0,
        "server.host": "127.0.0.1",
        "mongodb.url": mongo_session.url,
        "mongodb.database": unique_database(),
        "security.bcrypt_rounds": 4,
        "security.registrations_per_ip": 100_000,
        "security.login_attempts_per_ip": 100_000,
        "redis.url": redis_session.url,
        "admin.token": TOKEN,
    }
    instance = Instance(load_settings(ROOT / "config.toml", environ={}, overrides=values))
    await instance.start()
    http = AsyncHTTPClient(force_instance=True, max_clients=16)
    try:
        yield World(instance, http)
    finally:
        http.close()
        with contextlib.suppress(Exception):
            await instance.stop()


# --- the cells --------------------------------------------------------------------------


@pytest.mark.parametrize(("row", "actor", "expect"), CELLS)
async def test_api_cell(world: World, row: Row, actor: str, expect: Expect) -> None:
    scene = await world.scene(row.scene)
    try:
        response = await send(world, scene, row, actor)
        assert response.code == expect.status, (response.code, response.body[:300])
        if expect.code is not None:
            body = data(response)
            assert body["error"] == expect.code, body
        if expect.status == 302 and expect is TO_LOGIN:
            assert response.headers["Location"].startswith("/login"), response.headers
        if row.check is not None:
            await row.check(scene, actor, response)
    finally:
        for conn in scene.sockets:
            conn.close()


# --- the guard --------------------------------------------------------------------------


def app_routes(instance: Instance) -> dict[str, type[tornado.web.RequestHandler]]:
    app: tornado.web.Application = instance._server.request_callback  # type: ignore[attr-defined]
    routes = {}
    for rule in app.wildcard_router.rules:
        pattern = rule.matcher.regex.pattern  # type: ignore[attr-defined]
        routes[pattern.removesuffix("$")] = rule.target
    return routes


async def test_every_route_has_rows(world: World) -> None:
    """A new route (or a new POST on an old one) fails here until ``ROWS`` covers it."""
    routes = app_routes(world.instance)
    covered = {row.route for row in ROWS} | set(ELSEWHERE)
    assert set(routes) - covered == set(), "routes without rows in the authorization matrix"
    assert covered - set(routes) == set(), "rows for routes that no longer exist"
    for route, handler in routes.items():
        if route in ELSEWHERE:
            continue
        for method in ("get", "post", "put", "patch", "delete"):
            defined = getattr(handler, method) is not getattr(tornado.web.RequestHandler, method)
            rows = [r for r in ROWS if r.route == route and r.method == method.upper()]
            assert bool(rows) == defined, (route, method, "handled" if defined else "unhandled")
