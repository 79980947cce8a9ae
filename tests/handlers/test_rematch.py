"""Rematch over real HTTP: seats swapped, one pending offer per pair, both pages told."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from tornado.httpclient import AsyncHTTPClient, HTTPResponse
from tornado.websocket import WebSocketClientConnection

from app.runtime import Instance
from tests.handlers.test_accounts_api import Browser, assert_error, data
from tests.handlers.test_lobby_api import (
    act,
    challenge,
    http,  # noqa: F401 (fixture)
    lobby,
    lobby_state,
    message,
    player,
    stored_games,
    user_socket,
)
from tests.support import wait_until


async def rematch(browser: Browser, game_id: str) -> HTTPResponse:
    return await browser.call("POST", f"/api/games/{game_id}/rematch")


async def game_page(browser: Browser, name: str, game_id: str) -> WebSocketClientConnection:
    """The game page's socket, resumed, so live frames flow."""
    conn = await user_socket(browser, f"/ws/{game_id}?subscribe-user", f"user:{name}:{game_id}")
    await conn.write_message(json.dumps({"type": "resume", "since": 0, "chat_since": 0}))
    return conn


async def until(conn: WebSocketClientConnection, kind: str) -> Any:
    """The next message of type ``kind`` (states and chat before it are skipped)."""
    while True:
        msg = await asyncio.wait_for(message(conn), timeout=5)
        if msg.get("type") == kind:
            return msg


async def online(instance: Instance, *names: str) -> None:
    presence = instance.deps.presence  # type: ignore[union-attr]

    async def all_online() -> bool:
        status = await presence.online()
        return all(status.get(name) == "online" for name in names)

    await wait_until(all_online, what=f"{names} online")


async def finished_game(instance: Instance, alice: Browser, bob: Browser) -> str:
    """alice challenges bob, bob accepts (alice has seat 0), bob resigns."""
    sent = data(await challenge(alice, "bob"))
    game_id = str(data(await act(bob, sent["id"], "accept"))["game_id"])
    assert_error(await rematch(alice, game_id), 409, "game_active")
    assert (await bob.call("POST", f"/api/games/{game_id}/resign")).code == 200
    await online(instance, "alice", "bob")
    return game_id


async def test_rematch_swaps_seats_and_tells_both_pages(
    started: Any,
    http: AsyncHTTPClient,  # noqa: F811
) -> None:
    instance = await started()
    alice, bob = await player(http, instance, "alice"), await player(http, instance, "bob")
    _lobbies = [await lobby(alice, "alice"), await lobby(bob, "bob")]
    old = await finished_game(instance, alice, bob)
    pages = [await game_page(alice, "alice", old), await game_page(bob, "bob", old)]

    offered = await rematch(alice, old)
    assert offered.code == 201, offered.body
    offer = data(offered)
    assert (offer["from"], offer["to"], offer["game"]) == ("alice", "bob", "tictactoe")
    assert (offer["rematch_of"], offer["seats"]) == (old, ["bob", "alice"])
    for page in pages:
        assert await until(page, "rematch_offer") == {"type": "rematch_offer", "challenge": offer}

    accepted = await act(bob, offer["id"], "accept")
    assert accepted.code == 200, accepted.body
    started_msg = data(accepted)
    new = started_msg["game_id"]
    assert started_msg == {"type": "game_started", "game_id": new, "url": f"/game/{new}"}
    for page in pages:
        assert await until(page, "rematch") == {
            "type": "rematch",
            "game_id": new,
            "url": f"/game/{new}",
        }
    again = await act(bob, offer["id"], "accept")  # a double click: the same game
    assert again.code == 200 and data(again) == started_msg

    games = {g["_id"]: g for g in await stored_games(instance)}
    assert set(games) == {old, new}
    assert games[old]["players"] == ["alice", "bob"]
    assert games[new]["players"] == ["bob", "alice"]  # bob moves first now
    view = data(await bob.call("GET", f"/api/games/{new}"))
    assert view["to_move"] == ["bob"]


async def test_simultaneous_offers_end_in_one_pending_challenge(
    started: Any,
    http: AsyncHTTPClient,  # noqa: F811
) -> None:
    instance = await started()
    alice, bob = await player(http, instance, "alice"), await player(http, instance, "bob")
    _lobbies = [await lobby(alice, "alice"), await lobby(bob, "bob")]
    old = await finished_game(instance, alice, bob)

    replies = await asyncio.gather(rematch(alice, old), rematch(bob, old))
    assert sorted(r.code for r in replies) == [201, 409], [r.body for r in replies]
    won = next(data(r) for r in replies if r.code == 201)
    lost = next(r for r in replies if r.code == 409)
    assert_error(lost, 409, "challenge_pending")
    assert data(lost)["challenge_id"] == won["id"]
    assert data(lost)["challenge"] == won
    for me in (alice, bob):
        found = (await lobby_state(me))["challenges"]
        assert [c["id"] for c in found["incoming"] + found["outgoing"]] == [won["id"]]
    repeat = await rematch(alice if won["from"] == "alice" else bob, old)
    assert_error(repeat, 409, "challenge_pending")


async def test_only_players_of_a_finished_game_offer_a_rematch(
    started: Any,
    http: AsyncHTTPClient,  # noqa: F811
) -> None:
    instance = await started()
    alice, bob = await player(http, instance, "alice"), await player(http, instance, "bob")
    carol = await player(http, instance, "carol")
    _lobbies = [await lobby(alice, "alice"), await lobby(bob, "bob")]
    old = await finished_game(instance, alice, bob)
    assert_error(await rematch(carol, old), 403, "not_a_player")
    assert_error(await rematch(carol, "0123456789abcdef"), 404, "not_found")
    stranger = Browser(http, instance)
    assert_error(await stranger.call("POST", f"/api/games/{old}/rematch"), 401, "not_signed_in")
    declined = data(await rematch(bob, old))
    assert declined["seats"] == ["bob", "alice"]  # seat order of the new game, whoever offers
    assert (await act(alice, declined["id"], "decline")).code == 200
    assert (await rematch(alice, old)).code == 201  # the pair is free again
