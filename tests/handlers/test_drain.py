"""Draining waits for work in hand: a move being written over HTTP or over a game socket
is answered before the instance lets go of it, then the socket closes with 1001."""

from __future__ import annotations

import asyncio
from typing import Any

from tornado.httpclient import AsyncHTTPClient

from tests.conftest import MakeInstance
from tests.handlers.test_accounts_api import data
from tests.handlers.test_game_socket import GameClient
from tests.handlers.test_games_api import new_game
from tests.handlers.test_lobby_api import http
from tests.support import wait_until

__all__ = ["http"]  # the fixture, re-exported for pytest


def hold_moves(instance: Any) -> tuple[asyncio.Event, asyncio.Event]:
    """Make ``Play.move`` wait for ``release`` once it has started (``started``)."""
    play = instance.deps.play
    real = play.move
    started, release = asyncio.Event(), asyncio.Event()

    async def held(*args: Any, **kwargs: Any) -> Any:
        started.set()
        await release.wait()
        return await real(*args, **kwargs)

    play.move = held
    return started, release


async def test_a_move_over_http_in_flight_is_answered_before_the_drain_ends(
    make_instance: MakeInstance,
    http: AsyncHTTPClient,
) -> None:
    instance = await make_instance(**{"server.drain_seconds": 5.0})
    alice, bob, game_id = await new_game(http, instance)
    bob.lobby_socket.close()  # type: ignore[attr-defined]  # unread: it would stall its close
    started, release = hold_moves(instance)
    move = asyncio.ensure_future(
        alice.call("POST", f"/api/games/{game_id}/moves", {"move": {"cell": 4}, "seq": 0})
    )
    await asyncio.wait_for(started.wait(), 5)

    async def shut_down() -> bool:  # what server.py does on SIGTERM
        drained = await instance.drain()
        await instance.stop()
        return drained

    shutdown = asyncio.ensure_future(shut_down())
    await wait_until(lambda: instance.deps.draining, what="draining")  # type: ignore[union-attr]
    release.set()
    answer = await asyncio.wait_for(move, 5)
    assert answer.code == 200 and data(answer)["seq"] == 1
    assert await asyncio.wait_for(shutdown, 10) is True


async def test_a_move_over_the_socket_is_acknowledged_then_the_socket_closes_1001(
    make_instance: MakeInstance,
    http: AsyncHTTPClient,
) -> None:
    instance = await make_instance(**{"server.drain_seconds": 5.0})
    alice_b, bob_b, game_id = await new_game(http, instance)
    bob_b.lobby_socket.close()  # type: ignore[attr-defined]  # unread: it would stall its close
    alice, _ = await GameClient.open(alice_b, "alice", game_id)
    started, release = hold_moves(instance)
    msg_id = await alice.send({"type": "move", "seq": 0, "move": {"cell": 4}})
    await asyncio.wait_for(started.wait(), 5)
    drain = asyncio.ensure_future(instance.drain())
    await wait_until(lambda: instance.deps.draining, what="draining")  # type: ignore[union-attr]
    assert alice.conn.close_code is None, "closed before its move was answered"
    release.set()
    while True:
        got = await alice.next()
        if got.get("id") == msg_id:
            break
    assert (got["type"], got["seq"]) == ("ack", 1)
    assert await asyncio.wait_for(drain, 5) is True
    await wait_until(lambda: alice.conn.close_code is not None, what="socket closed")
    assert alice.conn.close_code == 1001
