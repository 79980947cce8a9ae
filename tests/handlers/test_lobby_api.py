"""The lobby API over real HTTP: challenges, their outcomes on the lobby sockets, game start."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from tornado.httpclient import AsyncHTTPClient, HTTPRequest, HTTPResponse
from tornado.websocket import WebSocketClientConnection, websocket_connect

from app.runtime import Instance
from tests.conftest import MakeInstance, ws_url
from tests.handlers.test_accounts_api import Browser, assert_error, data, next_message
from tests.support import wait_until

LOBBY = "/ws/lobby?subscribe-user"


@pytest.fixture
async def http() -> AsyncIterator[AsyncHTTPClient]:
    client = AsyncHTTPClient(force_instance=True, max_clients=64)
    yield client
    client.close()


async def player(http: AsyncHTTPClient, instance: Instance, name: str) -> Browser:
    browser = Browser(http, instance)
    assert (await browser.register(name)).code == 201
    return browser


async def user_socket(browser: Browser, path: str, channel: str) -> WebSocketClientConnection:
    """A socket on ``path`` with ``browser``'s session, once it is subscribed to ``channel``."""
    request = HTTPRequest(
        ws_url(browser.instance, path), headers={"Cookie": browser.cookie_header()}
    )
    conn = await asyncio.wait_for(websocket_connect(request), timeout=5)
    registry = browser.instance.deps.pubsub.registry  # type: ignore[union-attr]
    await wait_until(lambda: registry.subscribers(channel) >= 1, what=f"subscriber on {channel}")
    return conn


async def lobby(browser: Browser, name: str) -> WebSocketClientConnection:
    return await user_socket(browser, LOBBY, f"user:{name}:lobby")


async def message(conn: WebSocketClientConnection) -> Any:
    raw = await next_message(conn)
    assert raw is not None, "socket closed"
    return json.loads(raw)


async def challenge(browser: Browser, to: Any, game: Any = "tictactoe") -> HTTPResponse:
    return await browser.call("POST", "/api/challenges", {"to": to, "game": game})


async def act(browser: Browser, challenge_id: str, action: str) -> HTTPResponse:
    return await browser.call("POST", f"/api/challenges/{challenge_id}/{action}")


async def stored_games(instance: Instance) -> list[dict[str, Any]]:
    mongo = instance.settings.mongodb
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        mongo.url, serverSelectionTimeoutMS=5000
    )
    try:
        return [doc async for doc in client[mongo.database]["games"].find({})]
    finally:
        await client.close()


async def test_catalogue_needs_no_login(make_instance: MakeInstance, http: AsyncHTTPClient) -> None:
    instance = await make_instance()
    response = await Browser(http, instance).call("GET", "/api/games/catalogue")
    assert response.code == 200
    kinds = {game["kind"]: game for game in data(response)}
    assert kinds["tictactoe"]["title"] == "Tic-tac-toe"
    assert kinds["tictactoe"]["min_players"] == 2


async def test_challenge_accept_starts_one_game_for_both(
    started: Any, http: AsyncHTTPClient
) -> None:
    instance = await started()
    alice, bob = await player(http, instance, "alice"), await player(http, instance, "bob")
    alice_lobby, bob_lobby = await lobby(alice, "alice"), await lobby(bob, "bob")

    created = await challenge(alice, "BOB")  # any spelling finds the user
    assert created.code == 201, created.body
    sent = data(created)
    assert (sent["from"], sent["to"], sent["status"]) == ("alice", "bob", "pending")
    for conn in (alice_lobby, bob_lobby):
        assert await message(conn) == {"type": "challenge", **sent}

    accepted = await act(bob, sent["id"], "accept")
    assert accepted.code == 200, accepted.body
    started_msg = data(accepted)
    game_id = started_msg["game_id"]
    assert started_msg == {"type": "game_started", "game_id": game_id, "url": f"/game/{game_id}"}
    for conn in (alice_lobby, bob_lobby):
        update = await message(conn)
        assert (update["type"], update["status"], update["game_id"]) == (
            "challenge_update",
            "accepted",
            game_id,
        )
        assert await message(conn) == started_msg

    again = await act(bob, sent["id"], "accept")  # a double click, or a second tab
    assert again.code == 200 and data(again) == started_msg
    games = await stored_games(instance)
    assert [(g["_id"], g["players"], g["kind"]) for g in games] == [
        (game_id, ["alice", "bob"], "tictactoe")
    ]
    view = await alice.call("GET", f"/api/games/{game_id}")
    assert view.code == 200 and data(view)["version"] == 0


async def test_decline_and_cancel_are_announced(
    make_instance: MakeInstance, http: AsyncHTTPClient
) -> None:
    instance = await make_instance()
    alice, bob = await player(http, instance, "alice"), await player(http, instance, "bob")
    alice_lobby, _bob_lobby = await lobby(alice, "alice"), await lobby(bob, "bob")

    first = data(await challenge(alice, "bob"))
    assert (await message(alice_lobby))["type"] == "challenge"
    assert_error(await act(alice, first["id"], "accept"), 403, "not_yours")
    declined = await act(bob, first["id"], "decline")
    assert declined.code == 200 and data(declined)["status"] == "declined"
    update = await message(alice_lobby)
    assert (update["type"], update["id"], update["status"]) == (
        "challenge_update",
        first["id"],
        "declined",
    )
    assert_error(await act(bob, first["id"], "accept"), 409, "not_pending")

    second = data(await challenge(alice, "bob"))
    assert (await message(alice_lobby))["id"] == second["id"]
    assert_error(await challenge(bob, "alice"), 409, "challenge_pending")
    cancelled = await act(alice, second["id"], "cancel")
    assert cancelled.code == 200 and data(cancelled)["status"] == "cancelled"
    update = await message(alice_lobby)
    assert (update["type"], update["status"]) == ("challenge_update", "cancelled")
    assert await stored_games(instance) == []


async def test_bad_challenges_are_clear_errors(
    make_instance: MakeInstance, http: AsyncHTTPClient
) -> None:
    instance = await make_instance()
    alice = await player(http, instance, "alice")
    bob = await player(http, instance, "bob")
    await player(http, instance, "carol")
    _bob_lobby = await lobby(bob, "bob")

    # registered, not online
    assert_error(await challenge(alice, "carol"), 409, "player_unavailable")
    assert_error(await challenge(alice, "alice"), 400, "invalid", field="to")
    assert_error(await challenge(alice, "bob", "chess"), 400, "invalid", field="game")
    assert_error(await challenge(alice, "nobody"), 404, "unknown_user")
    assert_error(await challenge(alice, None), 400, "invalid", field="to")
    assert_error(await challenge(alice, "bob", ["x"]), 400, "invalid", field="game")
    assert_error(await act(alice, "deadbeef", "accept"), 404, "not_found")

    missing_xsrf = await alice.call("POST", "/api/challenges", {"to": "bob"}, xsrf=False)
    assert_error(missing_xsrf, 403, "xsrf")
    stranger = Browser(http, instance)
    assert_error(await challenge(stranger, "bob"), 401, "not_signed_in")


async def lobby_state(browser: Browser) -> Any:
    response = await browser.call("GET", "/api/lobby")
    assert response.code == 200, response.body
    return data(response)


async def test_lobby_lists_my_open_challenges_and_current_game(
    started: Any, http: AsyncHTTPClient
) -> None:
    instance = await started()
    alice, bob, cat = [await player(http, instance, name) for name in ("alice", "bob", "cat")]
    _sockets = [await lobby(b, n) for b, n in ((alice, "alice"), (bob, "bob"), (cat, "cat"))]

    empty = await lobby_state(alice)
    assert empty["me"] == "alice"
    assert empty["challenges"] == {"incoming": [], "outgoing": []}
    assert empty["current_game"] is None
    assert {g["kind"] for g in empty["games"]} >= {"tictactoe", "connect4"}
    assert {p["username"] for p in empty["online"]} == {"alice", "bob", "cat"}

    to_bob = data(await challenge(alice, "Bob"))
    to_cat = data(await challenge(alice, "cat", "connect4"))
    from_cat = data(await challenge(cat, "ALICE"))
    state = await lobby_state(alice)
    assert state["challenges"] == {"incoming": [from_cat], "outgoing": [to_cat, to_bob]}
    assert (await lobby_state(bob))["challenges"] == {"incoming": [to_bob], "outgoing": []}

    assert (await act(cat, to_cat["id"], "decline")).code == 200
    game_id = data(await act(bob, to_bob["id"], "accept"))["game_id"]
    state = await lobby_state(alice)
    assert state["challenges"] == {"incoming": [from_cat], "outgoing": []}
    if hasattr(instance.deps.play, "current_game"):  # Play.current_game lands separately
        assert state["current_game"]["game_id"] == game_id
        assert state["current_game"]["url"] == f"/game/{game_id}"
    assert (await lobby_state(cat))["challenges"] == {"incoming": [], "outgoing": [from_cat]}


async def test_expired_challenges_are_announced_to_both_players(
    started: Any, http: AsyncHTTPClient
) -> None:
    instance = await started()
    alice, bob = await player(http, instance, "alice"), await player(http, instance, "bob")
    alice_lobby, bob_lobby = await lobby(alice, "alice"), await lobby(bob, "bob")
    sent = data(await challenge(alice, "bob"))
    for conn in (alice_lobby, bob_lobby):
        assert (await message(conn))["type"] == "challenge"

    sweep = instance.deps.lobby.expire_due
    assert await sweep() == 0  # not due yet
    later = datetime.now(UTC) + timedelta(seconds=61)
    assert await sweep(later) == 1
    assert await sweep(later) == 0  # expired once, announced once
    for conn in (alice_lobby, bob_lobby):
        update = await message(conn)
        assert update == {**update, "type": "challenge_update", "id": sent["id"]}
        assert update["status"] == "expired"
        assert {k: update[k] for k in ("from", "to", "game")} == {
            "from": "alice",
            "to": "bob",
            "game": "tictactoe",
        }
    assert (await lobby_state(bob))["challenges"] == {"incoming": [], "outgoing": []}
    assert_error(await act(bob, sent["id"], "accept"), 409, "expired")
    assert (await challenge(alice, "bob")).code == 201  # the pair is free again
