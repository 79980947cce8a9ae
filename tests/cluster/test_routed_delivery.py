"""Routed delivery, read from each instance's own /metrics: a message for one user or one
game is handled (decoded and written) only by the instances holding its subscribers, once
per instance however many local sockets it has; a broadcast reaches every instance once.

``playhouse_ws_messages_out_total``: broker messages dispatched to local subscribers;
``playhouse_ws_deliveries_total``: frames written (one per subscriber per message).
"""

from __future__ import annotations

from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient
from tornado.websocket import WebSocketClientConnection

from deploy.cluster import Cluster, Instance
from tests.cluster.helpers import (
    admin,
    expect,
    game_socket,
    metrics,
    new_game,
    numsub,
    publish,
    signup,
    socket_on,
    wait_subscribed,
    wait_until,
)

pytestmark = [pytest.mark.redis]

OUT = "playhouse_ws_messages_out_total"
DELIVERIES = "playhouse_ws_deliveries_total"
RECEIVED = "playhouse_broker_messages_received_total"
NOTES = "/ws/notes?subscribe-user"


class Counters:
    """Per-instance counter deltas since the last :meth:`mark`."""

    def __init__(self, http: AsyncHTTPClient, instances: list[Instance]) -> None:
        self.http = http
        self.instances = instances
        self.base: dict[str, dict[str, float]] = {}
        self.received: dict[str, int] = {}  # broker messages that reached each instance

    async def mark(self) -> None:
        for instance in self.instances:
            self.base[instance.name] = await metrics(self.http, instance)

    async def delta(self) -> dict[str, tuple[int, int]]:
        """{instance: (messages out, deliveries)} since :meth:`mark`."""
        result = {}
        for instance in self.instances:
            now, then = await metrics(self.http, instance), self.base[instance.name]
            self.received[instance.name] = int(now[RECEIVED] - then[RECEIVED])
            result[instance.name] = (
                int(now[OUT] - then[OUT]),
                int(now[DELIVERIES] - then[DELIVERIES]),
            )
        return result


async def settle(
    cluster: Cluster, channel: str, conns: list[WebSocketClientConnection], text: str
) -> None:
    """Publish ``text`` on ``channel`` and read it on ``conns``: the instance holding them
    has dispatched everything published on its subscriber connection before."""
    assert await publish(cluster, channel, text) == 1
    for conn in conns:
        await expect(conn, lambda m, t=text: m == t, what=f"{text} on {channel}")


def is_state(seq: int) -> Any:
    return lambda m: isinstance(m, dict) and m.get("type") == "state" and m["seq"] == seq


async def test_user_game_and_broadcast_messages_are_routed_to_holding_instances(
    cluster: Cluster, http: AsyncHTTPClient
) -> None:
    one, two = cluster.instances
    counters = Counters(http, [one, two])
    alice, bob = await signup(http, cluster, "alice"), await signup(http, cluster, "bob")
    # alice: two sockets, both on instance-1; bob: one, on instance-2.
    alice_notes = [await socket_on(alice, one, NOTES), await socket_on(alice, one, NOTES)]
    bob_notes = [await socket_on(bob, two, NOTES)]
    await wait_subscribed(cluster, "user:alice:notes", 1)  # one SUBSCRIBE for two sockets
    await wait_subscribed(cluster, "user:bob:notes", 1)
    await settle(cluster, "user:alice:notes", alice_notes, "ready-1")
    await settle(cluster, "user:bob:notes", bob_notes, "ready-2")

    # 1. A message for one user: only instance-1 handles it, decoded once, written twice.
    await counters.mark()
    for n in range(5):
        # Redis itself reports one receiver: instance-2 never even sees it.
        assert await publish(cluster, "user:alice:notes", f"for alice {n}") == 1
    for conn in alice_notes:
        for n in range(5):
            await expect(conn, lambda m, n=n: m == f"for alice {n}", what=f"note {n}")
    await settle(cluster, "user:bob:notes", bob_notes, "marker-2")
    assert await counters.delta() == {"instance-1": (5, 10), "instance-2": (1, 1)}
    assert counters.received["instance-2"] == 1  # the marker only: alice's notes never came

    # 2. A game whose two players are both on instance-1: moves (sent through nginx, to
    # either instance) are handled by instance-1 only.
    lobby = await socket_on(bob, one, "/ws/lobby?subscribe-user")
    await wait_subscribed(cluster, "user:bob:lobby")
    game_id = await new_game(alice, bob)
    alice_game, _ = await game_socket(alice, one, game_id)
    bob_game, _ = await game_socket(bob, one, game_id)
    await settle(cluster, "user:alice:notes", alice_notes, "game-ready-1")
    await settle(cluster, "user:bob:notes", bob_notes, "game-ready-2")
    await counters.mark()
    for seq, (player, cell) in enumerate([(alice, 0), (bob, 4), (alice, 8)], start=1):
        reply = await player.call(
            "POST", f"/api/games/{game_id}/moves", {"move": {"cell": cell}, "seq": seq - 1}
        )
        assert reply.code == 200, reply.body
    for client in (alice_game, bob_game):
        await client.state_at(3)
    await settle(cluster, "user:alice:notes", alice_notes, "game-done-1")
    await settle(cluster, "user:bob:notes", bob_notes, "game-done-2")
    moved = await counters.delta()
    # One state per player per move (+ the marker); nothing at all on instance-2.
    assert moved == {"instance-1": (3 * 2 + 1, 3 * 2 + 2), "instance-2": (1, 1)}, moved

    # 3. A broadcast: every instance handles it exactly once, and writes it to each of
    # its own subscribers (two sockets on instance-1, one on instance-2).
    ops = await admin(http, cluster)
    notices = [
        await socket_on(alice, one, "/ws/notifications?subscribe-broadcast"),
        await socket_on(bob, one, "/ws/notifications?subscribe-broadcast"),
        await socket_on(bob, two, "/ws/notifications?subscribe-broadcast"),
    ]
    await wait_subscribed(cluster, "broadcast:notifications", 2)
    await counters.mark()
    sent = await ops.call("POST", "/api/admin/broadcast", {"text": "hello all", "expire": 0})
    assert sent.code == 201, sent.body
    for conn in notices:
        got = await expect(conn, lambda m: isinstance(m, dict) and m.get("type") == "notice")
        assert got["text"] == "hello all"
    assert await counters.delta() == {"instance-1": (1, 2), "instance-2": (1, 1)}

    # The channels of sockets that closed are given up (ref-counted UNSUBSCRIBE).
    for conn in [*alice_notes, *notices, lobby, alice_game.conn, bob_game.conn, *bob_notes]:
        conn.close()

    async def unsubscribed() -> bool:
        channels = ("user:alice:notes", "broadcast:notifications", f"user:bob:{game_id}")
        return all([await numsub(cluster, channel) == 0 for channel in channels])

    await wait_until(unsubscribed, what="instances unsubscribed from closed channels")
