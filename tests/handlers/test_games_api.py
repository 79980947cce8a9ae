"""The games API over real HTTP: moves in over HTTP, each player's view out on their socket."""

from __future__ import annotations

from typing import Any

from tornado.httpclient import AsyncHTTPClient, HTTPResponse
from tornado.websocket import WebSocketClientConnection

from app.runtime import Instance
from tests.conftest import MakeInstance
from tests.handlers.test_accounts_api import Browser, assert_error, data
from tests.handlers.test_lobby_api import act, challenge, http, lobby, message, player, user_socket

__all__ = ["http"]  # the fixture, re-exported for pytest


async def new_game(http: AsyncHTTPClient, instance: Instance) -> tuple[Browser, Browser, str]:
    """alice (seat 0, moves first) and bob in a fresh Tic-tac-toe game."""
    alice, bob = await player(http, instance, "alice"), await player(http, instance, "bob")
    bob.lobby_socket = await lobby(bob, "bob")  # type: ignore[attr-defined]  # bob is online
    sent = data(await challenge(alice, "bob"))
    accepted = await act(bob, sent["id"], "accept")
    assert accepted.code == 200, accepted.body
    return alice, bob, data(accepted)["game_id"]


async def game_socket(browser: Browser, name: str, game_id: str) -> WebSocketClientConnection:
    return await user_socket(browser, f"/ws/{game_id}?subscribe-user", f"user:{name}:{game_id}")


async def move(browser: Browser, game_id: str, cell: int, version: int) -> HTTPResponse:
    body = {"move": {"cell": cell}, "seq": version}
    return await browser.call("POST", f"/api/games/{game_id}/moves", body)


async def test_full_game_over_http_with_views_on_sockets(
    started: Any, http: AsyncHTTPClient
) -> None:
    instance = await started()
    alice, bob, game_id = await new_game(http, instance)
    sockets = {"alice": await game_socket(alice, "alice", game_id)}
    sockets["bob"] = await game_socket(bob, "bob", game_id)
    browsers = {"alice": alice, "bob": bob}

    plan = [("alice", 0), ("bob", 3), ("alice", 1), ("bob", 4), ("alice", 2)]
    for version, (name, cell) in enumerate(plan):
        response = await move(browsers[name], game_id, cell, version)
        assert response.code == 200, response.body
        ack = data(response)
        assert (ack["seq"], ack["version"]) == (version + 1, version + 1)
        for conn in sockets.values():
            state = await message(conn)
            assert (state["type"], state["game"], state["seq"]) == ("state", game_id, version + 1)
            last = {k: state["last"][k] for k in ("seq", "player", "type", "move")}
            assert last == {
                "seq": version + 1,
                "player": name,
                "type": "move",
                "move": {"cell": cell},
            }

    won = {"status": "win", "winner": "alice", "reason": "three in a row"}
    assert ack["result"] == won
    assert state["status"] == "finished" and state["result"] == won
    final = await bob.call("GET", f"/api/games/{game_id}")
    assert final.code == 200 and data(final)["result"] == won
    assert_error(await move(bob, game_id, 5, 5), 400, "game_over")


async def test_refused_moves(make_instance: MakeInstance, http: AsyncHTTPClient) -> None:
    instance = await make_instance()
    alice, bob, game_id = await new_game(http, instance)
    assert (await move(alice, game_id, 4, 0)).code == 200

    stale = assert_error(await move(bob, game_id, 0, 0), 409, "stale")
    assert stale["current"]["version"] == 1 and stale["current"]["game"] == game_id
    assert_error(await move(alice, game_id, 0, 1), 400, "not_your_turn")
    assert_error(await move(bob, game_id, 4, 1), 400, "illegal_move")
    assert_error(await move(bob, game_id, 99, 1), 400, "bad_move")
    bad_version = await bob.call("POST", f"/api/games/{game_id}/moves", {"move": {"cell": 0}})
    assert_error(bad_version, 400, "invalid", field="seq")
    no_xsrf = await bob.call(
        "POST", f"/api/games/{game_id}/moves", {"move": {"cell": 0}, "seq": 1}, xsrf=False
    )
    assert_error(no_xsrf, 403, "xsrf")

    outsider = await player(http, instance, "carol")
    watched = await outsider.call("GET", f"/api/games/{game_id}")  # the public view
    assert watched.code == 200 and data(watched)["players"] == ["alice", "bob"]
    assert_error(await move(outsider, game_id, 0, 1), 403, "not_a_player")
    assert_error(await alice.call("GET", "/api/games/nosuchgame"), 404, "not_found")
    assert_error(
        await Browser(http, instance).call("GET", f"/api/games/{game_id}"), 401, "not_signed_in"
    )
    assert data(await bob.call("GET", f"/api/games/{game_id}"))["version"] == 1


async def test_resign_ends_the_game(make_instance: MakeInstance, http: AsyncHTTPClient) -> None:
    instance = await make_instance()
    alice, bob, game_id = await new_game(http, instance)
    alice_socket = await game_socket(alice, "alice", game_id)

    resigned = await bob.call("POST", f"/api/games/{game_id}/resign")
    assert resigned.code == 200, resigned.body
    result = {"status": "win", "winner": "alice", "reason": "resigned"}
    assert data(resigned) == {"seq": 1, "version": 1, "result": result}
    state = await message(alice_socket)
    assert (state["status"], state["result"]) == ("finished", result)
    assert_error(await bob.call("POST", f"/api/games/{game_id}/resign"), 400, "game_over")


async def test_draw_and_chat_over_http(make_instance: MakeInstance, http: AsyncHTTPClient) -> None:
    instance = await make_instance()
    alice, bob, game_id = await new_game(http, instance)
    said = await alice.call("POST", f"/api/games/{game_id}/chat", {"text": "hello"})
    assert said.code == 200 and data(said) == {"n": 1}
    assert_error(
        await alice.call("POST", f"/api/games/{game_id}/chat", {"text": ""}), 400, "bad_chat"
    )
    bad = await alice.call("POST", f"/api/games/{game_id}/draw", {"action": "maybe"})
    assert_error(bad, 400, "invalid", field="action")
    assert (
        data(await alice.call("POST", f"/api/games/{game_id}/draw", {"action": "offer"}))["seq"]
        == 1
    )
    nothing = await alice.call("POST", f"/api/games/{game_id}/draw", {"action": "accept"})
    assert_error(nothing, 400, "no_draw_offer")
    agreed = await bob.call("POST", f"/api/games/{game_id}/draw", {"action": "accept"})
    assert data(agreed)["result"] == {"status": "draw", "winner": None, "reason": "agreed"}
