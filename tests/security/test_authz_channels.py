"""Authorization matrix for sockets: facility kind × ws4redis flag × actor.

One instance on Redis (groups and sessions are real) with ``channels.publishable =
["chat"]`` next to the default public facilities. Every cell of ``TABLE`` opens one
socket and checks the outcome the table states, and nothing more:

- a refusal happens before the upgrade, with the status and the refusal code;
- an upgraded socket is subscribed to exactly the listed channels (read from the
  instance's registry), receives a marker published on each of them and nothing
  published on any other channel of the facility (other users', groups', sessions');
- a frame sent on it is published to exactly the listed publish channels.

Nothing is allowed that the table does not allow.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

from app.config import load_settings
from app.runtime import Instance
from tests.conftest import ws_url
from tests.handlers.test_accounts_api import PASSWORD, Browser, data
from tests.support import ROOT, MongoProcess, RedisProcess, recv, unique_database, wait_until

pytestmark = pytest.mark.asyncio(loop_scope="module")

HEARTBEAT = "--heartbeat--"
TOKEN = "operator-token-for-the-matrix"
ACTORS = ("anonymous", "operator", "alice", "erin", "bob", "carol", "admin")
"""anonymous: no cookie. operator: no cookie, the operator token as a Bearer header (an
HTTP credential; on a socket it must grant nothing beyond anonymous). alice: owner of guild
Gold and a player of game X. erin: member of Gold, not playing X. bob: another user, member
of guild Hex. carol: signed in, in no guild, not playing (a spectator of X). admin: the
site admin ``root``, in no guild, not playing."""
USERS = ("alice", "erin", "bob", "carol", "dave")
ADMIN = "root"
PUBLISHABLE = "chat"


# --- the table --------------------------------------------------------------------------


@dataclass(frozen=True)
class Allow:
    """Upgraded; subscribed/publishing to exactly these channels.

    Channels are ``"broadcast"`` or ``"<kind>:<who>"``, completed with the facility:
    ``user:alice`` → ``user:alice:<facility>``; ``session:alice`` → alice's session key.
    """

    subscribe: frozenset[str] = frozenset()
    publish: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Refuse:
    """Refused before the upgrade with ``status``; counted under ``code``."""

    status: int
    code: str


def sub(*channels: str) -> Allow:
    return Allow(subscribe=frozenset(channels))


def pub(*channels: str) -> Allow:
    return Allow(publish=frozenset(channels))


NOTHING = Allow()  # upgraded, but no channel at all
FORBIDDEN = Refuse(403, "flag_forbidden")
NO_FLAGS = Refuse(400, "no_flags")
SIGN_IN = Refuse(403, "not_signed_in")

# Facility kinds: "notifications" is public, "secret" is not, "chat" is publishable,
# "GAME" stands for the id of game X (alice vs dave).
#                                   anonymous  operator   alice                 erin                 bob                 carol                admin  # noqa: E501
# fmt: off
TABLE: dict[tuple[str, str], tuple[Allow | Refuse, ...]] = {
    # -- a public facility: broadcast for everyone, own channels only, no publishing
    ("notifications", "subscribe-broadcast"): (sub("broadcast"),) * 7,
    ("notifications", "subscribe-user"): (NOTHING, NOTHING, sub("user:alice"), sub("user:erin"), sub("user:bob"), sub("user:carol"), sub("user:root")),  # noqa: E501
    ("notifications", "subscribe-group"): (NOTHING, NOTHING, sub("group:Gold"), sub("group:Gold"), sub("group:Hex"), NOTHING, NOTHING),  # noqa: E501
    ("notifications", "subscribe-session"): (NOTHING, NOTHING, sub("session:alice"), sub("session:erin"), sub("session:bob"), sub("session:carol"), sub("session:root")),  # noqa: E501
    ("notifications", "publish-broadcast"): (FORBIDDEN,) * 7,
    ("notifications", "publish-user"): (FORBIDDEN,) * 7,
    ("notifications", "publish-group"): (FORBIDDEN,) * 7,
    ("notifications", "publish-session"): (FORBIDDEN,) * 7,
    ("notifications", "echo"): (NO_FLAGS,) * 7,
    # -- a facility that is neither public nor publishable: broadcast needs a sign-in
    ("secret", "subscribe-broadcast"): (FORBIDDEN, FORBIDDEN, sub("broadcast"), sub("broadcast"), sub("broadcast"), sub("broadcast"), sub("broadcast")),  # noqa: E501
    ("secret", "subscribe-user"): (NOTHING, NOTHING, sub("user:alice"), sub("user:erin"), sub("user:bob"), sub("user:carol"), sub("user:root")),  # noqa: E501
    ("secret", "subscribe-group"): (NOTHING, NOTHING, sub("group:Gold"), sub("group:Gold"), sub("group:Hex"), NOTHING, NOTHING),  # noqa: E501
    ("secret", "subscribe-session"): (NOTHING, NOTHING, sub("session:alice"), sub("session:erin"), sub("session:bob"), sub("session:carol"), sub("session:root")),  # noqa: E501
    ("secret", "publish-broadcast"): (FORBIDDEN,) * 7,
    ("secret", "publish-user"): (FORBIDDEN,) * 7,
    ("secret", "publish-group"): (FORBIDDEN,) * 7,
    ("secret", "publish-session"): (FORBIDDEN,) * 7,
    ("secret", "echo"): (NO_FLAGS,) * 7,
    # -- the publishable facility: anyone broadcasts; own channels need a sign-in
    ("chat", "subscribe-broadcast"): (sub("broadcast"),) * 7,
    ("chat", "subscribe-user"): (NOTHING, NOTHING, sub("user:alice"), sub("user:erin"), sub("user:bob"), sub("user:carol"), sub("user:root")),  # noqa: E501
    ("chat", "subscribe-group"): (NOTHING, NOTHING, sub("group:Gold"), sub("group:Gold"), sub("group:Hex"), NOTHING, NOTHING),  # noqa: E501
    ("chat", "subscribe-session"): (NOTHING, NOTHING, sub("session:alice"), sub("session:erin"), sub("session:bob"), sub("session:carol"), sub("session:root")),  # noqa: E501
    ("chat", "publish-broadcast"): (pub("broadcast"),) * 7,
    ("chat", "publish-user"): (FORBIDDEN, FORBIDDEN, pub("user:alice"), pub("user:erin"), pub("user:bob"), pub("user:carol"), pub("user:root")),  # noqa: E501
    ("chat", "publish-group"): (FORBIDDEN, FORBIDDEN, pub("group:Gold"), pub("group:Gold"), pub("group:Hex"), NOTHING, NOTHING),  # noqa: E501
    ("chat", "publish-session"): (FORBIDDEN, FORBIDDEN, pub("session:alice"), pub("session:erin"), pub("session:bob"), pub("session:carol"), pub("session:root")),  # noqa: E501
    ("chat", "echo"): (NO_FLAGS,) * 7,
    # -- game X: anonymous refused; the player gets what the flags say; every signed-in
    #    outsider gets the game's public channel only, whatever the subscribe flags
    ("GAME", "subscribe-broadcast"): (SIGN_IN, SIGN_IN, sub("broadcast"), sub("broadcast"), sub("broadcast"), sub("broadcast"), sub("broadcast")),  # noqa: E501
    ("GAME", "subscribe-user"): (SIGN_IN, SIGN_IN, sub("user:alice"), sub("broadcast"), sub("broadcast"), sub("broadcast"), sub("broadcast")),  # noqa: E501
    ("GAME", "subscribe-group"): (SIGN_IN, SIGN_IN, sub("group:Gold"), sub("broadcast"), sub("broadcast"), sub("broadcast"), sub("broadcast")),  # noqa: E501
    ("GAME", "subscribe-session"): (SIGN_IN, SIGN_IN, sub("session:alice"), sub("broadcast"), sub("broadcast"), sub("broadcast"), sub("broadcast")),  # noqa: E501
    ("GAME", "publish-broadcast"): (SIGN_IN, SIGN_IN, FORBIDDEN, FORBIDDEN, FORBIDDEN, FORBIDDEN, FORBIDDEN),  # noqa: E501
    ("GAME", "publish-user"): (SIGN_IN, SIGN_IN, FORBIDDEN, FORBIDDEN, FORBIDDEN, FORBIDDEN, FORBIDDEN),  # noqa: E501
    ("GAME", "publish-group"): (SIGN_IN, SIGN_IN, FORBIDDEN, FORBIDDEN, FORBIDDEN, FORBIDDEN, FORBIDDEN),  # noqa: E501
    ("GAME", "publish-session"): (SIGN_IN, SIGN_IN, FORBIDDEN, FORBIDDEN, FORBIDDEN, FORBIDDEN, FORBIDDEN),  # noqa: E501
    ("GAME", "echo"): (NO_FLAGS,) * 7,
}
# fmt: on

FACILITIES = ("notifications", "secret", "chat", "GAME")
FLAGS = (
    "subscribe-broadcast",
    "subscribe-user",
    "subscribe-group",
    "subscribe-session",
    "publish-broadcast",
    "publish-user",
    "publish-group",
    "publish-session",
    "echo",
)
CELLS = [
    pytest.param(facility, flag, actor, TABLE[facility, flag][i], id=f"{facility}-{flag}-{actor}")
    for facility, flag in itertools.product(FACILITIES, FLAGS)
    for i, actor in enumerate(ACTORS)
]


async def test_table_is_complete() -> None:
    assert set(TABLE) == set(itertools.product(FACILITIES, FLAGS))
    assert all(len(row) == len(ACTORS) for row in TABLE.values())


# --- the world --------------------------------------------------------------------------


class Probe:
    """A registry subscriber of the test's own: what was published on one channel."""

    def __init__(self) -> None:
        self.payloads: list[bytes] = []
        self.changed = asyncio.Event()

    def deliver(self, frame: bytes, payload: bytes) -> None:
        self.payloads.append(payload)
        self.changed.set()


@dataclass
class World:
    instance: Instance
    browsers: dict[str, Browser]
    sessions: dict[str, str]  # username → session key
    game_id: str
    counter: itertools.count[int] = field(default_factory=itertools.count)

    def facility(self, kind: str) -> str:
        return self.game_id if kind == "GAME" else kind

    def headers(self, actor: str) -> dict[str, str]:
        if actor == "anonymous":
            return {}
        if actor == "operator":
            return {"Authorization": f"Bearer {TOKEN}"}
        name = ADMIN if actor == "admin" else actor
        return {"Cookie": self.browsers[name].cookie_header()}

    def channel(self, short: str, facility: str) -> str:
        if short == "broadcast":
            return f"broadcast:{facility}"
        kind, who = short.split(":", 1)
        if kind == "session":
            who = self.sessions[who]
        return f"{kind}:{who}:{facility}"

    def universe(self, facility: str) -> set[str]:
        """Every channel of ``facility`` that some actor or other could be given."""
        names = [*USERS, ADMIN]
        return {
            f"broadcast:{facility}",
            *(f"user:{name}:{facility}" for name in names),
            *(f"group:{group}:{facility}" for group in ("Gold", "Hex")),
            *(f"session:{key}:{facility}" for key in self.sessions.values()),
        }


def make_settings(mongo: MongoProcess, redis_server: RedisProcess) -> Any:
    values = {
        "server.port": 0,
        "server.host": "127.0.0.1",
        "mongodb.url": mongo.url,
        "mongodb.database": unique_database(),
        "security.bcrypt_rounds": 4,
        "redis.url": redis_server.url,
        "channels.publishable": [PUBLISHABLE],
        "admin.token": TOKEN,
    }
    return load_settings(ROOT / "config.toml", environ={}, overrides=values)


async def connect(
    instance: Instance, path: str, headers: dict[str, str]
) -> WebSocketClientConnection:
    request = HTTPRequest(ws_url(instance, path), headers=headers)
    return await asyncio.wait_for(websocket_connect(request), timeout=5)


async def sync(conn: WebSocketClientConnection) -> list[str]:
    """Send the heartbeat and read up to its answer: the server's ``open`` is over (frames
    are read only after it) and so is every frame sent before. Returns what came first."""
    await conn.write_message(HEARTBEAT)
    before = []
    while True:
        message = await recv(conn)
        assert message is not None, "socket closed"
        if message == HEARTBEAT:
            return before
        before.append(message if isinstance(message, str) else message.decode())


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def world(mongo_session: MongoProcess, redis_session: RedisProcess) -> AsyncIterator[World]:
    redis_session.client().flushall()
    instance = Instance(make_settings(mongo_session, redis_session))
    await instance.start()
    http = AsyncHTTPClient(force_instance=True, max_clients=16)
    try:
        browsers = {}
        for name in USERS:
            browsers[name] = Browser(http, instance)
            assert (await browsers[name].register(name)).code == 201
        await instance.deps.accounts.create_admin(ADMIN, PASSWORD)  # type: ignore[union-attr]
        browsers[ADMIN] = Browser(http, instance)
        assert (await browsers[ADMIN].login(ADMIN)).code == 200
        alice, erin, bob = browsers["alice"], browsers["erin"], browsers["bob"]
        body = {"description": "matrix", "open": True}
        assert (await alice.call("POST", "/api/guilds", {"name": "Gold", **body})).code == 201
        assert (await erin.call("POST", "/api/guilds/Gold/join")).code == 200
        assert (await bob.call("POST", "/api/guilds", {"name": "Hex", **body})).code == 201
        # Game X: alice vs dave (dave must be online to be challenged).
        dave = browsers["dave"]
        lobby = await connect(instance, "/ws/lobby?subscribe-user", headers_of(dave))
        await sync(lobby)
        sent = await alice.call("POST", "/api/challenges", {"to": "dave", "game": "tictactoe"})
        assert sent.code == 201, sent.body
        accepted = await dave.call("POST", f"/api/challenges/{data(sent)['id']}/accept")
        assert accepted.code == 200, accepted.body
        lobby.close()
        for name in ("alice", "erin", "bob"):
            groups = data(await browsers[name].me())["groups"]
            assert groups == (["Hex"] if name == "bob" else ["Gold"]), (name, groups)
        sessions = {name: browser.session_id() for name, browser in browsers.items()}
        yield World(instance, browsers, sessions, data(accepted)["game_id"])
    finally:
        http.close()
        with contextlib.suppress(Exception):
            await instance.stop()


def headers_of(browser: Browser) -> dict[str, str]:
    return {"Cookie": browser.cookie_header()}


def rejected(instance: Instance, code: str) -> float:
    metrics = instance.deps.metrics  # type: ignore[union-attr]
    return float(metrics.rejected.labels(code)._value.get())


def subscriptions(instance: Instance) -> dict[str, set[Any]]:
    registry = instance.deps.pubsub.registry  # type: ignore[union-attr]
    return {channel: set(subs) for channel, subs in registry._subs.items()}


def connections(instance: Instance) -> set[Any]:
    return set(instance.deps.connections._all)  # type: ignore[union-attr]


# --- the cells --------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "flag", "actor", "expected"), CELLS)
async def test_socket_cell(
    world: World, kind: str, flag: str, actor: str, expected: Allow | Refuse
) -> None:
    instance = world.instance
    facility = world.facility(kind)
    path = f"/ws/{facility}?{flag}"
    if isinstance(expected, Refuse):
        before = rejected(instance, expected.code)
        with pytest.raises(HTTPClientError) as refused:
            await connect(instance, path, world.headers(actor))
        assert refused.value.code == expected.status, (path, actor, refused.value)
        assert rejected(instance, expected.code) == before + 1, "refused for another reason"
        return

    known = connections(instance)
    conn = await connect(instance, path, world.headers(actor))
    try:
        if kind == "GAME":
            await resume(conn)  # also proves ``open`` is over; before it, all is held
        else:
            await sync(conn)
        (server_side,) = connections(instance) - known
        subscribed = {ch for ch, subs in subscriptions(instance).items() if server_side in subs}
        want_sub = {world.channel(c, facility) for c in expected.subscribe}
        want_pub = {world.channel(c, facility) for c in expected.publish}
        assert subscribed == want_sub, f"{actor} {path}: subscribed {sorted(subscribed)}"
        await check_delivery(world, conn, facility, want_sub)
        await check_publishing(world, conn, facility, want_pub)
    finally:
        conn.close()


async def resume(conn: WebSocketClientConnection) -> None:
    """A game socket holds live frames until ``resume`` has been answered."""
    await conn.write_message(json.dumps({"type": "resume", "since": 0, "chat_since": 0}))
    while True:
        message = await recv(conn)
        assert isinstance(message, str), message
        if message != HEARTBEAT and json.loads(message).get("type") == "resumed":
            return


async def check_delivery(
    world: World, conn: WebSocketClientConnection, facility: str, want: set[str]
) -> None:
    """Publish on every other channel of the facility first, then a marker on each wanted
    one (one Redis connection: in order); the socket gets the markers and nothing else."""
    if not want:
        return
    pubsub = world.instance.deps.pubsub  # type: ignore[union-attr]
    n = next(world.counter)
    others = sorted(world.universe(facility) - want)
    for channel in others:
        await pubsub.publish([channel], f"foreign-{n}-{channel}", expire=0)
    markers = {f"marker-{n}-{channel}" for channel in want}
    for channel in sorted(want):
        await pubsub.publish([channel], f"marker-{n}-{channel}", expire=0)
    got: set[str] = set()
    while not markers <= got:
        message = await recv(conn)
        assert message is not None, "socket closed"
        text = message if isinstance(message, str) else message.decode()
        assert not text.startswith(f"foreign-{n}-"), f"received another's channel: {text}"
        got.add(text)


async def check_publishing(
    world: World, conn: WebSocketClientConnection, facility: str, want: set[str]
) -> None:
    """A frame from the socket reaches exactly ``want`` among the facility's channels."""
    universe = sorted(world.universe(facility))
    if not want:
        if facility == world.game_id:
            return  # game frames are commands, answered on the socket, never published
        await conn.write_message("no-publish-flag")
        assert await recv(conn) is None, "a socket without publish channels accepted a frame"
        assert conn.close_code == 1008
        return
    registry = world.instance.deps.pubsub.registry  # type: ignore[union-attr]
    probes = {channel: Probe() for channel in universe}
    waits = [w for channel, probe in probes.items() for w in registry.attach(probe, [channel])]
    try:
        await asyncio.wait_for(asyncio.gather(*waits), 5)
        n = next(world.counter)
        await conn.write_message(f"published-{n}")
        await sync(conn)  # the publish is done once the next frame is answered
        pubsub = world.instance.deps.pubsub  # type: ignore[union-attr]
        for channel in universe:
            await pubsub.publish([channel], f"end-{n}", expire=0)
        await wait_until(
            lambda: all(f"end-{n}".encode() in p.payloads for p in probes.values()),
            what="end markers",
        )
        reached = {ch for ch, p in probes.items() if f"published-{n}".encode() in p.payloads}
        assert reached == want, f"published to {sorted(reached)}"
    finally:
        for channel, probe in probes.items():
            registry.detach(probe, [channel])


# --- behaviour the flags switch, beyond channels ------------------------------------------


async def test_echo_decides_whether_the_sender_gets_its_own_message(world: World) -> None:
    base = f"/ws/{PUBLISHABLE}?subscribe-broadcast&publish-broadcast"
    listener = await connect(world.instance, f"/ws/{PUBLISHABLE}?subscribe-broadcast", {})
    quiet = await connect(world.instance, base, world.headers("carol"))
    loud = await connect(world.instance, f"{base}&echo", world.headers("bob"))
    try:
        for conn in (listener, quiet, loud):
            await sync(conn)
        await quiet.write_message("from-quiet")
        assert await recv(listener) == "from-quiet"
        assert await recv(loud) == "from-quiet"
        await loud.write_message("from-loud")
        assert await recv(listener) == "from-loud"
        assert await recv(loud) == "from-loud"  # echo: its own message comes back
        assert await recv(quiet) == "from-loud"  # not "from-quiet": no echo without the flag
    finally:
        for conn in (listener, quiet, loud):
            conn.close()


async def test_bearer_header_on_a_socket_is_anonymous(world: World) -> None:
    """The operator token with a user's cookie changes nothing; alone it is anonymous."""
    headers = {**world.headers("carol"), "Authorization": f"Bearer {TOKEN}"}
    known = connections(world.instance)
    conn = await connect(world.instance, "/ws/secret?subscribe-user", headers)
    try:
        await sync(conn)
        (server_side,) = connections(world.instance) - known
        subscribed = {
            ch for ch, subs in subscriptions(world.instance).items() if server_side in subs
        }
        assert subscribed == {"user:carol:secret"}
    finally:
        conn.close()
    before = rejected(world.instance, "flag_forbidden")
    with pytest.raises(HTTPClientError) as refused:
        await connect(world.instance, "/ws/secret?subscribe-broadcast", world.headers("operator"))
    assert refused.value.code == 403
    assert rejected(world.instance, "flag_forbidden") == before + 1


GAME_COMMANDS = {
    # command: (answer type for the player alice, for the spectator carol)
    "move": ("ack", "spectator"),
    "chat": ("ack", "spectator"),
    "offer_draw": ("ack", "spectator"),
    "resign": ("ack", "spectator"),
}


async def test_game_socket_commands_player_vs_spectator(world: World) -> None:
    """On game X, the spectator's every command is refused with ``spectator`` (and the
    game does not change); the player's are acknowledged. Runs last: it ends game X."""
    messages = {
        "move": {"type": "move", "seq": 0, "move": {"cell": 4}},
        "chat": {"type": "chat", "text": "hello"},
        "offer_draw": {"type": "offer_draw"},
        "resign": {"type": "resign"},
    }
    game = world.game_id
    player = await connect(world.instance, f"/ws/{game}?subscribe-user", world.headers("alice"))
    spectator = await connect(world.instance, f"/ws/{game}?subscribe-user", world.headers("carol"))
    try:
        for conn in (player, spectator):
            await resume(conn)
        seq = data(await world.browsers["alice"].call("GET", f"/api/games/{game}"))["seq"]
        for n, (command, (as_player, as_spectator)) in enumerate(GAME_COMMANDS.items()):
            body = {**messages[command], "id": f"s{n}"}
            if command == "move":
                body["seq"] = seq
            await spectator.write_message(json.dumps(body))
            answer = await answer_to(spectator, f"s{n}")
            assert (answer["type"], answer.get("code")) == ("error", as_spectator), answer
            body["id"] = f"p{n}"
            await player.write_message(json.dumps(body))
            answer = await answer_to(player, f"p{n}")
            assert answer["type"] == as_player, answer
            if command == "move":
                seq = answer["seq"]
    finally:
        player.close()
        spectator.close()


async def answer_to(conn: WebSocketClientConnection, msg_id: str) -> dict[str, Any]:
    while True:
        message = await recv(conn)
        assert isinstance(message, str), message
        if message == HEARTBEAT:
            continue
        parsed = json.loads(message)
        if isinstance(parsed, dict) and parsed.get("id") == msg_id:
            return parsed
