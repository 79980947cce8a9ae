"""Who is online: lobby sockets feed presence; ``GET /api/lobby`` and ``broadcast:lobby`` diffs."""

from __future__ import annotations

import json
from typing import Any

from tornado.httpclient import AsyncHTTPClient

from app.runtime import Instance
from tests.conftest import ws_url
from tests.handlers.test_accounts_api import assert_error, data
from tests.handlers.test_lobby_api import (  # noqa: F401  (http is a fixture)
    act,
    challenge,
    http,
    lobby,
    player,
)
from tests.support import recv, wait_until, ws_open


async def online(browser: Any) -> dict[str, str]:
    response = await browser.call("GET", "/api/lobby")
    assert response.code == 200
    return {p["username"]: p["status"] for p in data(response)["online"]}


async def test_lobby_lists_who_is_online_and_publishes_diffs(
    started: Any,
    http: AsyncHTTPClient,  # noqa: F811
) -> None:
    instance: Instance = await started(**{"presence.grace": 0.2})
    watcher = await ws_open(ws_url(instance, "/ws/lobby?subscribe-broadcast"))
    registry = instance.deps.pubsub.registry  # type: ignore[union-attr]
    await wait_until(lambda: registry.subscribers("broadcast:lobby") >= 1, what="watcher")
    ann, bob = await player(http, instance, "ann"), await player(http, instance, "bob")
    assert await online(ann) == {}

    ann_socket = await lobby(ann, "ann")
    await wait_until(lambda: _has(online(bob), {"ann": "online"}), what="ann online")
    assert json.loads(await _next(watcher)) == {
        "type": "presence",
        "user": "ann",
        "status": "online",
    }
    catalogue = data(await ann.call("GET", "/api/lobby"))["games"]
    assert {g["kind"] for g in catalogue} >= {"tictactoe", "connect4", "bingo", "rps"}

    ann_socket.close()
    await wait_until(lambda: _has(online(bob), {}), what="ann offline after the grace")
    assert json.loads(await _next(watcher))["status"] == "offline"


async def test_lobby_needs_a_session(started: Any, http: AsyncHTTPClient) -> None:  # noqa: F811
    instance: Instance = await started()
    response = await http.fetch(f"http://127.0.0.1:{instance.port}/api/lobby", raise_error=False)
    assert_error(response, 401, "not_signed_in")


async def _has(result: Any, expected: dict[str, str]) -> bool:
    return await result == expected


async def _next(conn: Any) -> str:
    message = await recv(conn)
    while message == "--heartbeat--":
        message = await recv(conn)
    assert isinstance(message, str)
    return message


async def test_players_are_in_game_until_it_ends(
    started: Any,
    http: AsyncHTTPClient,  # noqa: F811
) -> None:
    instance: Instance = await started()
    ann, bob, cat = [await player(http, instance, name) for name in ("ann", "bob", "cat")]
    sockets = [await lobby(b, name) for b, name in ((ann, "ann"), (bob, "bob"), (cat, "cat"))]
    await wait_until(lambda: _has(online(cat), dict.fromkeys(("ann", "bob", "cat"), "online")))

    sent = data(await challenge(ann, "bob"))
    game_id = data(await act(bob, sent["id"], "accept"))["game_id"]
    both_playing = {"ann": "in_game", "bob": "in_game", "cat": "online"}
    await wait_until(lambda: _has(online(cat), both_playing), what="both players in a game")
    assert_error(await challenge(cat, "ann"), 409, "player_unavailable")

    assert (await ann.call("POST", f"/api/games/{game_id}/resign")).code == 200
    await wait_until(
        lambda: _has(online(cat), dict.fromkeys(("ann", "bob", "cat"), "online")),
        what="both back online after the game",
    )
    assert (await challenge(cat, "ann")).code == 201
    for conn in sockets:
        conn.close()
