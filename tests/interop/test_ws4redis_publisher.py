"""django-websocket-redis 0.6.0 publishing from another process reaches our sockets.

ws4redis' own ``RedisPublisher``/``RedisMessage`` run in a separate Python
process (``ws4redis_publish.py``) against the same redis-server as an
in-process Playhouse instance; our clients must get every message byte for
byte, the kept last message first on connect, and nothing addressed to others.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from tornado.websocket import WebSocketClientConnection

from app.runtime import Instance
from tests.conftest import MakeInstance
from tests.interop.conftest import RunWs4Redis, fetch, publish, raw, text
from tests.support import RedisProcess, recv, wait_until, ws_open

pytestmark = pytest.mark.redis

HEARTBEAT = "--heartbeat--"
FACILITY = "notifications"
SUBSCRIBE = f"/ws/{FACILITY}?subscribe-broadcast"

Connect = Callable[[], Awaitable[WebSocketClientConnection]]

BOARD = {
    "type": "move",
    "game": "g-42",
    "player": "Zoë",
    "board": [["x", None, "o"], [None, "x", None], ["o", None, None]],
    "chat": "gut gemacht! 🎉 «très bien» — 日本語",
    "score": 12.5,
    "ok": True,
}
MESSAGES = [
    "hello",
    "Grüße, 世界! 🎲 ünïcödé — ✓",
    json.dumps(BOARD, ensure_ascii=False),
    json.dumps(BOARD, ensure_ascii=True),
    json.dumps(BOARD, ensure_ascii=False, indent=2),
    "line one\nline two\r\n\ttabbed  ",
    "--heartbeat-- is not the heartbeat",
    "é" * 200,
    "ü" * 40_000,
]


@pytest.fixture(params=["", "playhouse"], ids=["no-prefix", "prefix"])
def prefix(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def channel(prefix: str, kind: str, facility: str = FACILITY, who: str = "") -> str:
    """ws4redis' channel (and key) name, spelled independently of ``app.pubsub``."""
    head = f"{prefix}:" if prefix else ""
    middle = f"{who}:" if who else ""
    return f"{head}{kind}:{middle}{facility}"


@pytest.fixture
async def sockets() -> AsyncIterator[list[WebSocketClientConnection]]:
    """Client sockets, closed only after the instance has stopped.

    Set up before ``server`` so it is torn down after it. Closing a socket
    makes the instance UNSUBSCRIBE; on Python 3.11 a ``RedisBroker.close()``
    racing that reply can lose its cancellation inside ``asyncio.wait_for``
    and hang, which is a broker bug, not what these tests are about.
    """
    opened: list[WebSocketClientConnection] = []
    yield opened
    for conn in opened:
        conn.close()


@pytest.fixture
async def server(
    sockets: list[WebSocketClientConnection],
    make_instance: MakeInstance,
    redis_server: RedisProcess,
    prefix: str,
) -> Instance:
    return await make_instance(**{"redis.url": redis_server.url, "ws4redis.prefix": prefix})


@pytest.fixture
def connect(
    server: Instance, sockets: list[WebSocketClientConnection]
) -> Callable[[], Awaitable[WebSocketClientConnection]]:
    """``await connect()``: an anonymous ``subscribe-broadcast`` socket on ``server``."""

    async def open_socket() -> WebSocketClientConnection:
        conn = await ws_open(f"ws://127.0.0.1:{server.port}{SUBSCRIBE}")
        sockets.append(conn)
        return conn

    return open_socket


async def subscribed(
    server: Instance, redis_server: RedisProcess, name: str, clients: int = 1
) -> None:
    """Wait until ``clients`` local sockets and Redis agree that ``name`` is subscribed."""
    assert server.deps is not None
    registry = server.deps.pubsub.registry
    await wait_until(
        lambda: registry.subscribers(name) == clients and redis_server.numsub(name) == 1,
        what=f"{clients} subscriber(s) on {name}",
    )


async def next_message(conn: WebSocketClientConnection, timeout: float = 5.0) -> str | bytes:
    """The next non-heartbeat message; fails on close or timeout."""
    while True:
        message = await recv(conn, timeout)
        assert message is not None, f"socket closed: {conn.close_code} {conn.close_reason}"
        if message != HEARTBEAT:
            return message


def as_bytes(message: str | bytes) -> bytes:
    return message.encode() if isinstance(message, str) else message


async def test_broadcast_arrives_byte_for_byte(
    server: Instance,
    redis_server: RedisProcess,
    run_ws4redis: RunWs4Redis,
    prefix: str,
    connect: Connect,
) -> None:
    clients = [await connect() for _ in range(2)]
    await subscribed(server, redis_server, channel(prefix, "broadcast"), clients=2)
    sent = [text(m) for m in MESSAGES] + [raw("bytes given as bytes ✓".encode())]
    expected = [m.encode() for m in MESSAGES] + ["bytes given as bytes ✓".encode()]

    await run_ws4redis(publish(FACILITY, *sent, broadcast=True), prefix=prefix)

    for conn in clients:
        got = [await next_message(conn) for _ in expected]
        assert all(isinstance(m, str) for m in got), "valid UTF-8 must arrive as text frames"
        assert [as_bytes(m) for m in got] == expected


async def test_non_utf8_payload_arrives_unchanged_as_binary(
    server: Instance,
    redis_server: RedisProcess,
    run_ws4redis: RunWs4Redis,
    prefix: str,
    connect: Connect,
) -> None:
    conn = await connect()
    await subscribed(server, redis_server, channel(prefix, "broadcast"))
    payload = b"\xff\xfe\x00 not utf-8 \xc3"

    await run_ws4redis(
        publish(FACILITY, raw(payload), text("after"), broadcast=True), prefix=prefix
    )

    assert await next_message(conn) == payload
    assert await next_message(conn) == "after"


@pytest.mark.parametrize("expire_from", ["settings", "argument"])
async def test_kept_last_message_is_replayed_first(
    server: Instance,
    redis_server: RedisProcess,
    run_ws4redis: RunWs4Redis,
    prefix: str,
    expire_from: str,
    connect: Connect,
) -> None:
    kept = json.dumps({"last": "Nachricht für später ☕"}, ensure_ascii=False)
    audience: dict[str, Any] = {"broadcast": True}
    if expire_from == "argument":
        audience["expire"] = 60
    await run_ws4redis(
        publish(FACILITY, text("older"), **audience),
        publish(FACILITY, text(kept), **audience),
        prefix=prefix,
        expire=60 if expire_from == "settings" else 0,
    )
    name = channel(prefix, "broadcast")
    assert redis_server.client().get(name) == kept.encode(), "ws4redis keeps it at the channel key"
    assert 0 < redis_server.client().ttl(name) <= 60

    conn = await connect()
    assert as_bytes(await next_message(conn)) == kept.encode()

    await subscribed(server, redis_server, name)
    await run_ws4redis(publish(FACILITY, text("live ✓"), broadcast=True), prefix=prefix)
    assert await next_message(conn) == "live ✓"


async def test_message_without_expire_is_not_replayed(
    server: Instance,
    redis_server: RedisProcess,
    run_ws4redis: RunWs4Redis,
    prefix: str,
    connect: Connect,
) -> None:
    await run_ws4redis(publish(FACILITY, text("gone"), broadcast=True), prefix=prefix, expire=0)
    assert redis_server.client().get(channel(prefix, "broadcast")) is None

    conn = await connect()
    await subscribed(server, redis_server, channel(prefix, "broadcast"))
    await run_ws4redis(publish(FACILITY, text("first live"), broadcast=True), prefix=prefix)
    assert await next_message(conn) == "first live"


async def test_messages_for_others_do_not_reach_anonymous_broadcast(
    server: Instance,
    redis_server: RedisProcess,
    run_ws4redis: RunWs4Redis,
    prefix: str,
    connect: Connect,
) -> None:
    targeted = {"users": ["alice"], "groups": ["staff"], "sessions": ["s3ss10nk3y"], "expire": 60}
    await run_ws4redis(publish(FACILITY, text("for alice (kept)"), **targeted), prefix=prefix)

    conn = await connect()
    await subscribed(server, redis_server, channel(prefix, "broadcast"))
    await run_ws4redis(
        publish(FACILITY, text("for alice (live)"), **targeted),
        publish("lobby", text("other facility"), broadcast=True),
        publish(FACILITY, text("marker"), broadcast=True),
        prefix=prefix,
    )

    assert await next_message(conn) == "marker", "nothing addressed to others came first"
    store = redis_server.client()
    for kind, who in (("user", "alice"), ("group", "staff"), ("session", "s3ss10nk3y")):
        key = channel(prefix, kind, who=who)
        assert store.get(key) == b"for alice (live)", f"ws4redis did publish to {key}"


async def test_our_kept_message_is_what_ws4redis_fetches(
    server: Instance, run_ws4redis: RunWs4Redis, prefix: str
) -> None:
    assert server.deps is not None
    message = json.dumps({"from": "playhouse", "text": "héllo ws4redis"}, ensure_ascii=False)
    await server.deps.pubsub.publisher(FACILITY, broadcast=True).publish(message, expire=60)

    fetched = await run_ws4redis(fetch(FACILITY), fetch("lobby"), prefix=prefix)

    assert fetched == [message.encode(), None]
