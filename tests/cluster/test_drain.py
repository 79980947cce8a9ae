"""SIGTERM drain: readiness fails at once, no new sockets, open sockets close with 1001
after in-flight work, clients reconnect through nginx to the other instance, exit 0 within
the drain deadline; and nginx serves without a single error through a rolling restart."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from http.client import HTTPConnection
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient
from tornado.websocket import WebSocketClientConnection

from deploy.cluster import Cluster, Instance
from tests.cluster.helpers import (
    HEARTBEAT,
    Player,
    fetch_status,
    game_socket,
    instance_of,
    metrics,
    new_game,
    signup,
    socket_on,
    wait_subscribed,
    wait_until,
)
from tests.handlers.test_accounts_api import data

pytestmark = [pytest.mark.redis]

DRAIN_SECONDS = 5.0  # PLAYHOUSE_SERVER_DRAIN_SECONDS in tests/cluster/conftest.py


def readyz_on(conn: HTTPConnection) -> tuple[int, dict[str, object]]:
    """``GET /readyz`` on an already open keep-alive connection (a drained listener
    refuses new ones, but a connection made before SIGTERM still gets an answer)."""
    conn.request("GET", "/readyz")
    reply = conn.getresponse()
    return reply.status, json.loads(reply.read() or b"{}")


async def closed(conn: WebSocketClientConnection, timeout: float) -> tuple[float, list[Any]]:
    """Read until the server closes ``conn``: when it did, and the JSON messages before."""
    got: list[Any] = []
    async with asyncio.timeout(timeout):
        while (raw := await conn.read_message()) is not None:
            if raw != HEARTBEAT:
                got.append(json.loads(raw))
    return time.monotonic(), got


async def test_sigterm_drains_and_clients_move_to_the_other_instance(
    cluster: Cluster, http: AsyncHTTPClient
) -> None:
    one, two = cluster.instances
    alice, bob = await signup(http, cluster, "alice"), await signup(http, cluster, "bob")
    lobbies = [
        await socket_on(alice, one, "/ws/lobby?subscribe-user"),
        await socket_on(bob, one, "/ws/lobby?subscribe-user"),
    ]
    await wait_subscribed(cluster, "user:bob:lobby")
    game_id = await new_game(alice, bob)
    alice_game, _ = await game_socket(alice, one, game_id)
    bob_game, _ = await game_socket(bob, two, game_id)
    assert (await alice_game.move({"cell": 0}))["seq"] == 1
    await bob_game.state_at(1)

    probe = HTTPConnection("127.0.0.1", one.port, timeout=5)
    assert readyz_on(probe)[0] == 200
    assert one.proc is not None
    proc = one.proc
    signalled = time.monotonic()
    proc.send_signal(signal.SIGTERM)

    status, body = await asyncio.to_thread(readyz_on, probe)
    failed_after = time.monotonic() - signalled
    print(f"MEASURE drain: /readyz answered {status} {failed_after * 1000:.0f} ms after SIGTERM")
    assert (status, body.get("draining")) == (503, True), body
    assert failed_after < 0.5
    probe.close()
    # No new sockets on the draining instance.
    with pytest.raises((OSError, ConnectionError, TimeoutError)):
        late = await socket_on(alice, one, "/ws/lobby?subscribe-user", timeout=2)
        late.close()

    ends = await asyncio.gather(*(closed(c, DRAIN_SECONDS) for c in (alice_game.conn, *lobbies)))
    last_close = max(at for at, _ in ends)
    print(f"MEASURE drain: sockets closed {last_close - signalled:.2f}s after SIGTERM")
    for conn in (alice_game.conn, *lobbies):
        assert conn.close_code == 1001, (conn.close_code, conn.close_reason)

    code = await asyncio.to_thread(proc.wait, DRAIN_SECONDS + 5)
    exited = time.monotonic() - signalled
    print(f"MEASURE drain: exit code {code} {exited:.2f}s after SIGTERM")
    assert code == 0, one.tail()
    assert exited < DRAIN_SECONDS + 1, f"exit took {exited:.2f}s (drain deadline 5 s)"
    one.proc = None

    # The clients reconnect through nginx and land on the other instance.
    again, resumed = await game_socket(alice, cluster, game_id, since=1)
    assert instance_of(again.conn) == "instance-2"
    assert resumed["seq"] == 1 and again.states == []
    lobby_again = await socket_on(bob, cluster, "/ws/lobby?subscribe-user")
    assert instance_of(lobby_again) == "instance-2"
    assert (await bob_game.move({"cell": 4}))["seq"] == 2
    assert (await again.state_at(2))["last"]["move"] == {"cell": 4}
    assert (await again.move({"cell": 8}))["seq"] == 3
    await bob_game.state_at(3)
    for conn in (again.conn, bob_game.conn, lobby_again):
        conn.close()


async def test_sigterm_lets_in_flight_work_finish_before_closing(
    cluster: Cluster, http: AsyncHTTPClient
) -> None:
    one, _ = cluster.instances
    alice, bob = await signup(http, cluster, "alice"), await signup(http, cluster, "bob")
    bob_lobby = await socket_on(bob, one, "/ws/lobby?subscribe-user")
    await wait_subscribed(cluster, "user:bob:lobby")
    game_id = await new_game(alice, bob)
    alice_game, _ = await game_socket(alice, one, game_id)
    # bob's chat line over HTTP on a connection already open to instance-1.
    chat = HTTPConnection("127.0.0.1", one.port, timeout=15)
    chat.request("GET", "/healthz")
    chat.getresponse().read()
    headers = {
        "Cookie": bob.cookie_header(),
        "X-XSRFToken": await bob.xsrf(),
        "Content-Type": "application/json",
    }
    before = (await metrics(http, one))["playhouse_ws_messages_in_total"]

    # MongoDB paused: the move and the chat line are stuck in their writes.
    mongo = cluster._mongo
    assert mongo is not None
    mongo.send_signal(signal.SIGSTOP)
    try:
        body = json.dumps({"text": "still there?"})
        chat.request("POST", f"/api/games/{game_id}/chat", body=body, headers=headers)
        in_flight = await alice_game.send({"type": "move", "seq": 0, "move": {"cell": 4}})

        async def received() -> bool:
            return (await metrics(http, one))["playhouse_ws_messages_in_total"] > before

        await wait_until(received, what="instance-1 received the move")
        assert one.proc is not None
        proc = one.proc
        proc.send_signal(signal.SIGTERM)
        await wait_until(lambda: "draining" in one.tail(5), what="instance-1 draining")
    finally:
        mongo.send_signal(signal.SIGCONT)

    chat_reply = await asyncio.to_thread(chat.getresponse)
    chat_status = chat_reply.status
    resumed_at = time.monotonic()
    (_, got), _, code = await asyncio.gather(
        closed(alice_game.conn, DRAIN_SECONDS + 2),
        closed(bob_lobby, DRAIN_SECONDS + 2),
        asyncio.to_thread(proc.wait, DRAIN_SECONDS + 5),
    )
    exited = time.monotonic() - resumed_at
    one.proc = None
    print(f"MEASURE drain with work in flight: exit {exited:.2f}s after MongoDB resumed")
    assert code == 0, one.tail()
    assert exited < DRAIN_SECONDS, one.tail()
    assert alice_game.conn.close_code == 1001
    assert bob_lobby.close_code == 1001
    assert chat_status == 200, (chat_status, one.tail())
    answers = [m for m in got if m.get("id") == in_flight]
    assert [(a["type"], a.get("seq")) for a in answers] == [("ack", 1)], (got, one.tail())
    stored = data(await alice.call("GET", f"/api/games/{game_id}"))
    assert stored["seq"] == 1 and stored["view"]["board"][4] is not None, stored


async def test_rolling_restart_behind_nginx_without_a_single_error(
    cluster: Cluster, http: AsyncHTTPClient
) -> None:
    alice = await signup(http, cluster, "alice")
    failures: list[str] = []
    served: dict[str, int] = {}
    stop = asyncio.Event()

    async def hammer(player: Player, path: str) -> None:
        while not stop.is_set():
            try:
                response = await player.call("GET", path)
            except Exception as error:  # a connection error counts as a failure
                failures.append(f"{path}: {error!r}")
                continue
            if response.code != 200:
                failures.append(f"{path}: {response.code} {response.body[:200]!r}")
                continue
            instance = response.headers.get("X-Playhouse-Instance", "?")
            served[instance] = served.get(instance, 0) + 1

    loops = [
        asyncio.ensure_future(hammer(alice, path))
        for path in ("/api/lobby", "/api/games/catalogue", "/healthz", "/api/me")
    ]
    try:
        for instance in cluster.instances:
            await restart(http, instance)
            count = served.get(instance.name, 0)
            await wait_until(
                lambda name=instance.name, count=count: served.get(name, 0) > count + 10,
                timeout=10,
                what=f"nginx sending requests to the restarted {instance.name}",
            )
    finally:
        stop.set()
        await asyncio.gather(*loops)
    total = sum(served.values())
    print(f"MEASURE rolling restart: {total} GETs through nginx, {len(failures)} failed")
    assert total > 100
    assert failures == [], (failures[:5], [i.tail(15) for i in cluster.instances])
    assert data(await alice.call("GET", "/api/me"))["username"] == "alice"


async def restart(http: AsyncHTTPClient, instance: Instance) -> None:
    code = await asyncio.to_thread(instance.terminate, timeout=DRAIN_SECONDS + 5)
    assert code == 0, instance.tail()
    await asyncio.to_thread(instance.start)

    # As docs/operations.md says: wait for its /readyz before restarting the next one.
    async def ready() -> bool:
        return await fetch_status(http, f"{instance.url}/readyz") == 200

    await wait_until(ready, timeout=10, what=f"{instance.name} ready")
