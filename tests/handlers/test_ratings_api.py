"""Leaderboard and profiles over real HTTP, from games finished through the games API."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from tornado.httpclient import AsyncHTTPClient

from tests.conftest import MakeInstance
from tests.handlers.test_accounts_api import Browser, assert_error, data
from tests.handlers.test_games_api import new_game
from tests.handlers.test_lobby_api import http
from tests.handlers.test_records import draw, online, resign, start

__all__ = ["http"]  # the fixture, re-exported for pytest


async def leaderboard(browser: Browser, **params: Any) -> Any:
    query = f"?{urlencode(params)}" if params else ""
    response = await browser.call("GET", f"/api/leaderboard{query}")
    assert response.code == 200, response.body
    return data(response)


async def profile(browser: Browser, name: str) -> Any:
    response = await browser.call("GET", f"/api/users/{name}/profile")
    assert response.code == 200, response.body
    return data(response)


def ranking(board: Any) -> list[tuple[int, str, int, int, int, int, int]]:
    return [
        (p["rank"], p["username"], p["rating"], p["games"], p["wins"], p["draws"], p["losses"])
        for p in board["players"]
    ]


async def test_one_resigned_game(make_instance: MakeInstance, http: AsyncHTTPClient) -> None:
    instance = await make_instance()
    alice, bob, game_id = await new_game(http, instance)
    assert await leaderboard(alice, kind="tictactoe") == {"kind": "tictactoe", "players": []}
    await resign(bob, game_id)
    board = await leaderboard(bob, kind="tictactoe")
    assert ranking(board) == [(1, "alice", 1216, 1, 1, 0, 0), (2, "bob", 1184, 1, 0, 0, 1)]
    assert (await leaderboard(bob))["kind"] == ""
    mine = await profile(alice, "BOB")
    assert mine["username"] == "bob"
    assert mine["ratings"] == [
        {
            "kind": "tictactoe",
            "title": "Tic-tac-toe",
            "rating": 1184,
            "games": 1,
            "wins": 0,
            "draws": 0,
            "losses": 1,
        }
    ]
    assert mine["totals"] == {"games": 1, "wins": 0, "draws": 0, "losses": 1}
    assert [g["game_id"] for g in mine["recent"]] == [game_id]


async def test_leaderboard_order_and_profile_counts(
    make_instance: MakeInstance, http: AsyncHTTPClient
) -> None:
    instance = await make_instance()
    alice = await online(http, instance, "alice")
    bob = await online(http, instance, "bob")
    carol = await online(http, instance, "carol")
    alice.peers = {"bob": bob, "carol": carol}  # type: ignore[attr-defined]
    bob.peers = {"carol": carol}  # type: ignore[attr-defined]

    await resign(bob, await start(alice, "bob"))  # alice 1216, bob 1184
    await resign(carol, await start(alice, "carol"))  # alice beats carol
    await draw(alice, bob, await start(alice, "bob"))
    await resign(carol, await start(bob, "carol", "connect4"))  # bob 1216 at connect4

    board = await leaderboard(alice, kind="tictactoe")
    names = [p["username"] for p in board["players"]]
    assert names == ["alice", "bob", "carol"]
    ratings = [p["rating"] for p in board["players"]]
    assert ratings == sorted(ratings, reverse=True) and sum(ratings) == 3 * 1200
    assert ranking(board)[0][3:] == (3, 2, 1, 0)
    assert [p["rank"] for p in board["players"]] == [1, 2, 3]
    assert [
        p["username"] for p in (await leaderboard(alice, kind="tictactoe", limit=1))["players"]
    ] == ["alice"]
    connect4 = await leaderboard(alice, kind="connect4")
    assert ranking(connect4) == [(1, "bob", 1216, 1, 1, 0, 0), (2, "carol", 1184, 1, 0, 0, 1)]

    # Overall: the mean of each player's ratings over the kinds they played.
    overall = {p["username"]: p for p in (await leaderboard(alice))["players"]}
    by_kind = {p["username"]: p["rating"] for p in board["players"]}
    assert overall["bob"]["rating"] == round((by_kind["bob"] + 1216) / 2)
    assert overall["bob"]["games"] == 3 and overall["alice"]["games"] == 3
    assert overall["carol"]["losses"] == 2

    bobs = await profile(carol, "bob")
    assert bobs["totals"] == {"games": 3, "wins": 1, "draws": 1, "losses": 1}
    assert [r["kind"] for r in bobs["ratings"]] == ["connect4", "tictactoe"]
    assert len(bobs["recent"]) == 3 and bobs["recent"][0]["kind"] == "connect4"

    for page in ("/leaderboard", "/leaderboard?kind=connect4", "/users/bob"):
        response = await alice.call("GET", page)
        assert response.code == 200, (page, response.body)
        assert b"<script>" not in response.body
    assert b'data-user="bob"' in (await alice.call("GET", "/users/bob")).body

    assert_error(await alice.call("GET", "/api/leaderboard?kind=chess"), 400, "invalid")
    assert_error(await alice.call("GET", "/api/leaderboard?limit=0"), 400, "invalid")
    assert_error(await alice.call("GET", "/api/users/nobody/profile"), 404, "unknown_user")
