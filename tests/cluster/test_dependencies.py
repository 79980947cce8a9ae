"""Dependencies going away and coming back, with both instances behind nginx.

Redis restart: sockets stay open, publishes fail fast with a clear error while it is down,
subscriptions and presence are back within 5 s of its return. MongoDB restart: APIs answer
503 JSON, sockets stay open, the service recovers by itself with its data.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient

from deploy.cluster import Cluster
from tests.cluster.helpers import (
    Player,
    Recorder,
    admin,
    fetch_status,
    game_socket,
    lobby_online,
    metrics,
    new_game,
    numsub,
    publish,
    signup,
    socket_on,
    wait_subscribed,
    wait_until,
)
from tests.handlers.test_accounts_api import assert_error, data

pytestmark = [pytest.mark.redis]

RESTORED_WITHIN = 5.0
LOBBY = "/ws/lobby?subscribe-broadcast&subscribe-user"


def text(value: str) -> Any:
    return lambda message: message == value


async def ready(http: AsyncHTTPClient, cluster: Cluster) -> list[dict[str, Any]]:
    """Each instance's ``/readyz`` body (asked directly, all at once)."""
    replies = await asyncio.gather(
        *(http.fetch(f"{i.url}/readyz", raise_error=False) for i in cluster.instances)
    )
    return [{"status": reply.code, **data(reply)} for reply in replies]


async def test_redis_restart_keeps_sockets_and_restores_delivery_and_presence(
    cluster: Cluster, http: AsyncHTTPClient
) -> None:
    one, two = cluster.instances
    ops = await admin(http, cluster)
    alice, bob = await signup(http, cluster, "alice"), await signup(http, cluster, "bob")
    sockets = {
        "alice": Recorder(await socket_on(alice, one, LOBBY)),
        "bob": Recorder(await socket_on(bob, two, LOBBY)),
    }
    await wait_subscribed(cluster, "broadcast:lobby", 2)

    async def both_online() -> bool:
        online = await lobby_online(alice)
        return online.get("alice") == "online" and online.get("bob") == "online"

    await wait_until(both_online, what="both online")
    reconnects_before = [
        (await metrics(http, i))["playhouse_broker_reconnects_total"] for i in (one, two)
    ]

    cluster.stop_redis()
    # Publishes fail at once with a clear error; the API says so in JSON.
    started = time.monotonic()
    refused = await ops.call("POST", "/api/admin/broadcast", {"text": "lost", "expire": 0})
    took = time.monotonic() - started
    print(f"MEASURE Redis down: admin broadcast refused in {took * 1000:.0f} ms")
    body = assert_error(refused, 503, "broker_unavailable")
    assert "Redis" in body["message"] and "unavailable" in body["message"], body
    assert took < 1.0, f"publish took {took:.2f}s to fail"
    assert [(b["status"], b["broker"]) for b in await ready(http, cluster)] == [
        (503, False),
        (503, False),
    ]
    # Pages that need no Redis still work through nginx.
    assert (await alice.call("GET", "/api/me")).code == 200

    cluster.start_redis()
    back = time.monotonic()
    channels = ("broadcast:lobby", "user:alice:lobby", "user:bob:lobby")

    async def resubscribed() -> bool:
        counts = [await numsub(cluster, channel) for channel in channels]
        return counts == [2, 1, 1]

    await wait_until(resubscribed, timeout=RESTORED_WITHIN, what="subscriptions restored")
    subscribed_in = time.monotonic() - back
    await wait_until(both_online, timeout=RESTORED_WITHIN, what="presence restored")
    presence_in = time.monotonic() - back
    print(
        f"MEASURE Redis back: subscriptions restored in {subscribed_in:.2f}s, "
        f"presence in {presence_in:.2f}s"
    )
    assert presence_in < RESTORED_WITHIN and subscribed_in < RESTORED_WITHIN

    # Delivery works again on the very same sockets, on both instances.
    for name, recorder in sockets.items():
        assert await publish(cluster, f"user:{name}:lobby", f"hello {name}") == 1
        await recorder.wait_for(text(f"hello {name}"), what=f"delivery to {name}")
    sent = await ops.call("POST", "/api/admin/broadcast", {"text": "back", "expire": 0})
    assert sent.code == 201, sent.body
    assert [b["status"] for b in await ready(http, cluster)] == [200, 200]
    for recorder in sockets.values():
        assert recorder.closed_at is None, "a socket was closed during the Redis outage"
        recorder.close()
    reconnects = [(await metrics(http, i))["playhouse_broker_reconnects_total"] for i in (one, two)]
    assert all(after > before for after, before in zip(reconnects, reconnects_before, strict=True))


async def test_mongodb_restart_answers_503_keeps_sockets_and_recovers(
    cluster: Cluster, http: AsyncHTTPClient
) -> None:
    one, two = cluster.instances
    alice, bob = await signup(http, cluster, "alice"), await signup(http, cluster, "bob")
    lobbies = [
        Recorder(await socket_on(alice, one, LOBBY)),
        Recorder(await socket_on(bob, two, LOBBY)),
    ]
    await wait_subscribed(cluster, "user:bob:lobby")
    game_id = await new_game(alice, bob)
    alice_game, _ = await game_socket(alice, one, game_id)
    bob_game, _ = await game_socket(bob, two, game_id)
    assert (await alice_game.move({"cell": 0}))["seq"] == 1
    await bob_game.state_at(1)

    cluster.stop_mongo()
    down = time.monotonic()
    # Each instance answers 503 JSON (asked directly), and so does nginx for a POST;
    # readiness fails; on the socket a move gets a clear error and the socket stays open.
    # (All at once: each waits out the driver's 2 s timeout.)
    direct, posted, readiness, refused = await asyncio.gather(
        asyncio.gather(*(alice.via(i).call("GET", "/api/lobby") for i in (one, two))),
        bob.call("POST", f"/api/games/{game_id}/chat", {"text": "hi"}),
        ready(http, cluster),
        bob_game.move({"cell": 4}),
    )
    took = time.monotonic() - down
    print(f"MEASURE MongoDB down: 503s answered within {took:.2f}s")
    for reply in (*direct, posted):
        assert_error(reply, 503, "storage_unavailable")
    assert [(b["status"], b["storage"]) for b in readiness] == [(503, False), (503, False)]
    assert (refused["type"], refused["code"]) == ("error", "storage_unavailable"), refused
    # Redis deliveries still reach the sockets.
    for name, recorder in zip(("alice", "bob"), lobbies, strict=True):
        assert await publish(cluster, f"user:{name}:lobby", "still here") == 1
        await recorder.wait_for(text("still here"), what=f"{name}'s socket during the outage")
    print(f"MEASURE MongoDB down for {time.monotonic() - down:.2f}s")

    cluster.start_mongo()
    back = time.monotonic()

    async def recovered() -> bool:
        for instance in (one, two):
            if await fetch_status(http, f"{instance.url}/readyz") != 200:
                return False
            if (await alice.via(instance).call("GET", "/api/lobby")).code != 200:
                return False
        return True

    await wait_until(recovered, timeout=20, what="both instances serving again")
    print(f"MEASURE MongoDB back: both instances serving in {time.monotonic() - back:.2f}s")

    # Data kept (the server is on disk), sessions still valid, the game goes on.
    assert data(await bob.call("GET", "/api/me"))["username"] == "bob"
    again = Player(http, cluster, "alice")
    assert (await again.login("alice")).code == 200
    assert (await bob_game.move({"cell": 4}))["seq"] == 2
    assert (await alice_game.state_at(2))["last"]["move"] == {"cell": 4}
    assert data(await alice.call("GET", f"/api/games/{game_id}"))["seq"] == 2
    for recorder in lobbies:
        assert recorder.closed_at is None
        recorder.close()
    for conn in (alice_game.conn, bob_game.conn):
        assert conn.close_code is None
        conn.close()
