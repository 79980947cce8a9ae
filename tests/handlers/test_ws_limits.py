"""Limits of the ws4redis endpoint over real sockets: frame rate, sockets per user and per
IP, channels per socket, handshake rate, and slow clients (lobby: kept aside and coalesced, then
dropped; game: close)."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

from app.connections import SLOW_RESET_SECONDS, Connection
from app.runtime import Instance
from tests.conftest import MakeInstance, ws_url
from tests.handlers.test_games_api import new_game
from tests.handlers.test_lobby_api import http, player
from tests.support import masked_frame, raw_websocket, recv, wait_until, ws_open

__all__ = ["http"]  # the fixture, re-exported for pytest

HEARTBEAT = "--heartbeat--"
NOTIFICATIONS = "/ws/notifications?subscribe-broadcast"


def connections_of(instance: Instance) -> tuple[Connection, ...]:
    return tuple(instance.deps.connections._all)  # type: ignore[union-attr]


async def refused(url: str | HTTPRequest) -> HTTPClientError:
    """The HTTP error a handshake to ``url`` is refused with (fails if it is accepted)."""
    with pytest.raises(HTTPClientError) as caught:
        conn = await asyncio.wait_for(websocket_connect(url), timeout=5)
        conn.close()
    return caught.value


async def ws_open_request(request: HTTPRequest) -> WebSocketClientConnection:
    return await asyncio.wait_for(websocket_connect(request), timeout=5)


async def until_closed(conn: WebSocketClientConnection) -> list[Any]:
    """Every message until the server closes ``conn``."""
    got = []
    while (message := await recv(conn)) is not None:
        got.append(message)
    return got


async def test_flooder_is_warned_then_closed_while_a_neighbour_keeps_receiving(
    started: Any,
) -> None:
    instance = await started(**{"limits.heartbeat_interval": 60.0})  # defaults: 20/s, burst 40
    deps = instance.deps
    neighbour = await ws_open(ws_url(instance, NOTIFICATIONS))
    flooder = await ws_open(ws_url(instance, NOTIFICATIONS))
    for _ in range(200):  # heartbeats count as messages, too
        await flooder.write_message(HEARTBEAT)
    received = await until_closed(flooder)
    warnings = [json.loads(m) for m in received if m != HEARTBEAT]
    assert len(warnings) == 1, received
    assert warnings[0]["type"] == "error" and warnings[0]["code"] == "rate_limited"
    # the burst was answered, then nothing more: the dropped frames were not handled
    assert 40 <= received.count(HEARTBEAT) <= 45
    assert flooder.close_code == 1008 and flooder.close_reason == "too many messages"
    await deps.pubsub.publisher("notifications", broadcast=True).publish("still here")
    assert await recv(neighbour) == "still here"
    rejected = deps.metrics.rejected
    assert rejected.labels("rate_limited")._value.get() == 1
    assert rejected.labels("too_many_messages")._value.get() == 1


async def test_a_well_behaved_client_never_hits_the_frame_limit(
    make_instance: MakeInstance,
) -> None:
    instance = await make_instance(**{"limits.heartbeat_interval": 60.0})
    client = await ws_open(ws_url(instance, NOTIFICATIONS))
    for _ in range(40):  # a whole burst at once (a reconnect replaying a queue, say)
        await client.write_message(HEARTBEAT)
    for _ in range(40):
        assert await recv(client) == HEARTBEAT
    conn = connections_of(instance)[0]
    assert conn.open and conn.flood_drops == 0
    # the bucket refills at messages_per_second: a frame every 0.1 s is always admitted
    conn.tokens_at -= 0.1
    await client.write_message(HEARTBEAT)
    assert await recv(client) == HEARTBEAT


async def test_sockets_per_ip_are_capped_before_the_upgrade(make_instance: MakeInstance) -> None:
    instance = await make_instance(
        **{"limits.max_sockets_per_ip": 3, "limits.exempt_ips": [], "limits.handshakes_per_ip": 99}
    )
    deps = instance.deps
    assert deps is not None
    url = ws_url(instance, NOTIFICATIONS)
    clients = [await ws_open(url) for _ in range(3)]
    await wait_until(lambda: len(deps.connections) == 3, what="3 sockets open")
    error = await refused(url)
    assert error.code == 429
    assert deps.metrics.rejected.labels("too_many_sockets")._value.get() == 1
    clients[0].close()
    await wait_until(lambda: len(deps.connections) == 2, what="one socket closed")
    again = await ws_open(url)
    assert again.protocol is not None


async def test_loopback_is_exempt_from_per_ip_limits_by_default(
    make_instance: MakeInstance,
) -> None:
    instance = await make_instance(
        **{"limits.max_sockets_per_ip": 2, "limits.handshakes_per_ip": 2}
    )
    clients = [await ws_open(ws_url(instance, NOTIFICATIONS)) for _ in range(4)]
    assert len(clients) == 4


async def test_sockets_per_user_are_capped_before_the_upgrade(
    make_instance: MakeInstance, http: AsyncHTTPClient
) -> None:
    instance = await make_instance(**{"limits.max_sockets_per_user": 2})
    deps = instance.deps
    assert deps is not None
    alice = await player(http, instance, "alice")
    bob = await player(http, instance, "bob")

    def request(browser: Any) -> HTTPRequest:
        return HTTPRequest(
            ws_url(instance, "/ws/lobby?subscribe-user"),
            headers={"Cookie": browser.cookie_header()},
        )

    first = await ws_open_request(request(alice))
    await ws_open_request(request(alice))
    await wait_until(lambda: deps.connections.sockets_of(username="alice") == 2, what="2 sockets")
    error = await refused(request(alice))
    assert error.code == 429
    assert b"at most 2 sockets per user" in (error.response.body if error.response else b"")
    await ws_open_request(request(bob))  # another user is not affected
    first.close()
    await wait_until(lambda: deps.connections.sockets_of(username="alice") == 1, what="1 closed")
    await ws_open_request(request(alice))


async def test_channels_per_socket_are_capped(
    make_instance: MakeInstance, http: AsyncHTTPClient
) -> None:
    instance = await make_instance(**{"limits.max_subscriptions": 2})
    alice = await player(http, instance, "alice")
    cookie = {"Cookie": alice.cookie_header()}
    path = "/ws/lobby?subscribe-broadcast&subscribe-user"
    two = await ws_open_request(HTTPRequest(ws_url(instance, path), headers=cookie))
    assert two.protocol is not None
    error = await refused(
        HTTPRequest(ws_url(instance, path + "&subscribe-session"), headers=cookie)
    )
    assert error.code == 400
    assert error.response is not None and b"at most 2 channels" in error.response.body


async def test_handshake_rate_per_ip_gets_429_with_retry_after(
    make_instance: MakeInstance,
) -> None:
    instance = await make_instance(
        **{"limits.handshakes_per_ip": 3, "limits.handshake_window": 30, "limits.exempt_ips": []}
    )
    url = ws_url(instance, NOTIFICATIONS)
    for _ in range(3):
        (await ws_open(url)).close()
    error = await refused(url)
    assert error.code == 429
    assert error.response is not None
    assert 1 <= int(error.response.headers["Retry-After"]) <= 30
    assert instance.deps is not None
    assert instance.deps.metrics.rejected.labels("too_many_handshakes")._value.get() == 1


async def test_lobby_client_that_stops_reading_has_messages_dropped_then_is_closed(
    make_instance: MakeInstance,
) -> None:
    limit, slow = 256 * 1024, 1.0
    instance = await make_instance(
        **{"limits.max_outgoing_bytes": limit, "limits.slow_client_seconds": slow}
    )
    deps = instance.deps
    assert deps is not None
    _, writer = await raw_websocket(instance.port, "/ws/lobby?subscribe-broadcast", rcvbuf=4096)
    try:
        await wait_until(lambda: len(deps.connections) == 1, what="raw client registered")
        writer.transport.pause_reading()  # type: ignore[attr-defined]  # stalled: reads nothing more at all
        conn = connections_of(instance)[0]
        stream = conn._stream
        publisher = deps.pubsub.publisher("lobby", broadcast=True)
        dropped = deps.metrics.dropped._value
        chunk = "x" * 60_000
        most_queued = 0
        for _ in range(400):  # 24 MB if nothing bounded it
            await publisher.publish(chunk, expire=0)
            if stream._write_buffer is not None:
                most_queued = max(most_queued, len(stream._write_buffer))
            if dropped.get() > 0:
                break
            await asyncio.sleep(0)  # let the loop flush what the socket takes
        assert dropped.get() > 0, "nothing was ever dropped"
        behind_at = time.monotonic()
        for _ in range(10):  # falling further behind: dropped, not closed at once
            await publisher.publish(chunk, expire=0)
        assert dropped.get() >= 11
        assert conn.open, "a lobby client must not be closed at once"
        assert most_queued <= limit
        assert deps.metrics.slow_closes._value.get() == 0
        await wait_until(lambda: not conn.open, timeout=slow + 2, what="stalled client closed")
        assert time.monotonic() - behind_at <= slow + 0.5
        assert deps.metrics.slow_closes._value.get() == 1
        await wait_until(
            lambda: deps.pubsub.registry.subscribers("broadcast:lobby") == 0,
            timeout=10,
            what="slow client unsubscribed",
        )
    finally:
        writer.close()


async def test_lobby_client_that_catches_up_is_not_closed(make_instance: MakeInstance) -> None:
    limit = 256 * 1024
    instance = await make_instance(
        **{"limits.max_outgoing_bytes": limit, "limits.slow_client_seconds": 0.5}
    )
    deps = instance.deps
    assert deps is not None
    reader, writer = await raw_websocket(
        instance.port, "/ws/lobby?subscribe-broadcast", rcvbuf=4096
    )
    try:
        await wait_until(lambda: len(deps.connections) == 1, what="raw client registered")
        conn = connections_of(instance)[0]
        publisher = deps.pubsub.publisher("lobby", broadcast=True)
        dropped = deps.metrics.dropped._value
        while dropped.get() == 0:
            await publisher.publish("y" * 60_000, expire=0)
        total = 0
        while conn._stream._write_buffer:  # the client reads everything queued
            total += len(await asyncio.wait_for(reader.read(1 << 20), 5))
        assert total > 0
        await publisher.publish("after", expire=0)  # there is room again
        await wait_until(lambda: conn._behind is None, timeout=2, what="slow-client check done")
        assert conn.open
        assert deps.metrics.slow_closes._value.get() == 0
    finally:
        writer.close()


async def stalled_game_socket(
    instance: Instance, http: AsyncHTTPClient
) -> tuple[Connection, asyncio.StreamReader, asyncio.StreamWriter, int]:
    """alice's game socket, resumed from a raw client that then never reads again, and
    flooded with 60 KB states until the server closes it (or 400 of them); and the
    socket's kernel send buffer size before the flood."""
    deps = instance.deps
    assert deps is not None
    alice, _, game_id = await new_game(http, instance)
    reader, writer = await raw_websocket(
        instance.port,
        f"/ws/{game_id}?subscribe-user",
        rcvbuf=4096,
        headers={"Cookie": alice.cookie_header()},
    )
    resume = {"type": "resume", "since": 0, "chat_since": 0, "id": 1}
    writer.write(masked_frame(json.dumps(resume).encode()))

    def game_conn() -> Connection | None:
        for conn in connections_of(instance):
            if conn.username == "alice" and conn.held is None and not conn._drop:
                return conn
        return None

    await wait_until(lambda: game_conn() is not None, what="alice's game socket resumed")
    conn = game_conn()
    assert conn is not None and conn._stream.socket is not None
    send_buffer = conn._stream.socket.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
    publisher = deps.pubsub.publisher(game_id, users=["alice"])
    for _ in range(400):
        await publisher.publish("z" * 60_000, expire=0)
        if not conn.open:
            break
        await asyncio.sleep(0)
    return conn, reader, writer, send_buffer


async def test_game_client_that_stops_reading_is_closed_with_1013(
    make_instance: MakeInstance, http: AsyncHTTPClient
) -> None:
    instance = await make_instance(**{"limits.max_outgoing_bytes": 256 * 1024})
    deps = instance.deps
    assert deps is not None
    conn, reader, writer, _ = await stalled_game_socket(instance, http)
    try:
        assert not conn.open, "a game client that fell behind must be closed"
        assert deps.metrics.dropped._value.get() == 0  # game events are never dropped
        assert deps.metrics.slow_closes._value.get() == 1
        received = b""
        async with asyncio.timeout(10):  # what was queued, then the close frame
            while b"client too slow" not in received:
                chunk = await reader.read(1 << 20)
                assert chunk, "closed without a close frame"
                received += chunk
        assert b"\x88\x11\x03\xf5client too slow" in received  # 1013
    finally:
        writer.close()


async def test_regroup_beyond_the_channel_cap_keeps_the_old_plan(
    make_instance: MakeInstance, http: AsyncHTTPClient
) -> None:
    instance = await make_instance(**{"limits.max_subscriptions": 2})
    deps = instance.deps
    assert deps is not None
    alice = await player(http, instance, "alice")
    request = HTTPRequest(
        ws_url(instance, "/ws/lobby?subscribe-user&subscribe-group"),
        headers={"Cookie": alice.cookie_header()},
    )
    client = await ws_open_request(request)
    registry = deps.pubsub.registry
    await wait_until(lambda: registry.subscribers("user:alice:lobby") == 1, what="subscribed")
    assert deps.connections.regroup("alice", ("one",)) == 1  # 2 channels: fits
    await wait_until(lambda: registry.subscribers("group:one:lobby") == 1, what="group one")
    deps.connections.regroup("alice", ("one", "two"))  # 3 channels: refused, plan kept
    assert registry.subscribers("group:two:lobby") == 0
    assert registry.subscribers("group:one:lobby") == 1
    await deps.pubsub.publisher("lobby", groups=["one"]).publish("to guild one")
    assert await recv(client) == "to guild one"


async def test_a_stalled_client_is_reset_after_its_1013(
    make_instance: MakeInstance, http: AsyncHTTPClient
) -> None:
    """A client that never reads cannot receive the close frame queued behind its backlog:
    the server resets the connection soon after, freeing its buffer and the kernel's."""
    instance = await make_instance(
        **{"limits.max_outgoing_bytes": 256 * 1024, "limits.socket_send_buffer": 65536}
    )
    conn, _reader, writer, send_buffer = await stalled_game_socket(instance, http)
    try:
        assert send_buffer <= 2 * 65536  # Linux reports twice what was asked
        assert not conn.open, "a game client that fell behind must be closed"
        closed_at = time.monotonic()
        await wait_until(lambda: conn._stream.closed(), timeout=5, what="connection reset")
        assert time.monotonic() - closed_at <= SLOW_RESET_SECONDS + 1.0
        await wait_until(lambda: conn not in connections_of(instance), what="socket gone")
    finally:
        writer.close()


def server_frames(data: bytes) -> list[bytes]:
    """The payloads of the complete unmasked server frames in ``data``."""
    payloads, at = [], 0
    while at + 2 <= len(data):
        size, head = data[at + 1] & 0x7F, 2
        if size == 126:
            size, head = int.from_bytes(data[at + 2 : at + 4]), 4
        elif size == 127:
            size, head = int.from_bytes(data[at + 2 : at + 10]), 10
        if at + head + size > len(data):
            break
        payloads.append(data[at + head : at + head + size])
        at += head + size
    return payloads


async def test_lobby_client_behind_gets_the_latest_presence_once_it_catches_up(
    make_instance: MakeInstance,
) -> None:
    """While a lobby client is behind, a newer diff for the same user replaces the one
    kept for it; once it reads again it gets what was kept, in order, nothing stale."""
    limit = 256 * 1024
    instance = await make_instance(
        **{"limits.max_outgoing_bytes": limit, "limits.slow_client_seconds": 10.0}
    )
    deps = instance.deps
    assert deps is not None
    reader, writer = await raw_websocket(
        instance.port, "/ws/lobby?subscribe-broadcast", rcvbuf=4096
    )
    try:
        await wait_until(lambda: len(deps.connections) == 1, what="raw client registered")
        writer.transport.pause_reading()  # type: ignore[attr-defined]
        conn = connections_of(instance)[0]
        publisher = deps.pubsub.publisher("lobby", broadcast=True)
        filler = 0
        while conn._pending is None:  # fill the queue until the next frame is kept aside
            filler += 1
            await publisher.publish(f"filler {filler} " + "f" * 30_000, expire=0)
        updates = [("u1", "online"), ("u2", "online"), ("u1", "in_game"), ("u1", "offline")]
        for user, status in updates:
            diff = {"type": "presence", "user": user, "status": status}
            await publisher.publish(json.dumps(diff, separators=(",", ":")), expire=0)
        await publisher.publish("notice: kept in order", expire=0)
        assert deps.metrics.coalesced._value.get() == 2  # u1 online, u1 in_game
        assert deps.metrics.dropped._value.get() == 0
        writer.transport.resume_reading()  # type: ignore[attr-defined]
        data = b""
        async with asyncio.timeout(10):
            while b"notice: kept in order" not in data:
                chunk = await reader.read(1 << 20)
                assert chunk, "closed while catching up"
                data += chunk
        texts = [p.decode() for p in server_frames(data)]
        fillers = [t.split()[1] for t in texts if t.startswith("filler")]
        assert fillers == [str(i) for i in range(1, filler + 1)]  # none lost, in order
        rest = texts[len(fillers) :]
        assert [json.loads(t) for t in rest[:2]] == [
            {"type": "presence", "user": "u2", "status": "online"},
            {"type": "presence", "user": "u1", "status": "offline"},
        ]
        assert rest[2:] == ["notice: kept in order"]
        await wait_until(lambda: conn._behind is None, timeout=2, what="caught up")
        assert conn.open and conn._pending is None
        assert deps.metrics.slow_closes._value.get() == 0
    finally:
        writer.close()
