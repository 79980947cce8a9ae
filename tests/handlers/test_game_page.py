"""``/game/<id>``: signed-in players only; the page carries the game in data attributes."""

from __future__ import annotations

import html
import json
import re
from typing import Any

from tornado.httpclient import AsyncHTTPClient

from app.games import snakes
from tests.conftest import MakeInstance
from tests.handlers.test_accounts_api import Browser, data
from tests.handlers.test_lobby_api import act, challenge, http, lobby, player

__all__ = ["http"]  # the fixture, re-exported for pytest


def attributes(page: str) -> dict[str, str]:
    """The ``data-*`` attributes of the ``#game`` root element, unescaped."""
    root = re.search(r'<div id="game"(.*?)>', page, re.S)
    assert root is not None, "no #game element"
    return {k: html.unescape(v) for k, v in re.findall(r'data-([a-z-]+)="([^"]*)"', root.group(1))}


async def started_game(http: AsyncHTTPClient, instance: Any, kind: str) -> tuple[Browser, str]:
    alice, bob = await player(http, instance, "alice"), await player(http, instance, "bob")
    bob.lobby_socket = await lobby(bob, "bob")  # type: ignore[attr-defined]  # bob is online
    sent = data(await challenge(alice, "bob", kind))
    accepted = await act(bob, sent["id"], "accept")
    assert accepted.code == 200, accepted.body
    return alice, data(accepted)["game_id"]


async def test_a_player_gets_the_page(make_instance: MakeInstance, http: AsyncHTTPClient) -> None:
    instance = await make_instance()
    alice, game_id = await started_game(http, instance, "connect4")

    page = await alice.call("GET", f"/game/{game_id}")
    assert page.code == 200
    body = page.body.decode()
    found = attributes(body)
    assert found["game-id"] == game_id
    assert found["kind"] == "connect4"
    assert found["title"] == "Connect Four"
    assert json.loads(found["players"]) == ["alice", "bob"]
    assert found["me"] == "alice"
    assert json.loads(found["board"]) == {}
    assert "/static/boards/connect4.js" in body and "/static/game.js" in body
    assert "<script>" not in body, "no inline script (CSP)"


async def test_snakes_page_carries_the_board_layout(
    make_instance: MakeInstance, http: AsyncHTTPClient
) -> None:
    instance = await make_instance()
    alice, game_id = await started_game(http, instance, "snakes")
    board = json.loads(
        attributes((await alice.call("GET", f"/game/{game_id}")).body.decode())["board"]
    )
    assert {int(k): v for k, v in board["ladders"].items()} == snakes.LADDERS
    assert {int(k): v for k, v in board["snakes"].items()} == snakes.SNAKES


async def test_signed_out_unknown_and_outsiders(
    make_instance: MakeInstance, http: AsyncHTTPClient
) -> None:
    instance = await make_instance()
    alice, game_id = await started_game(http, instance, "tictactoe")

    signed_out = await Browser(http, instance).call("GET", f"/game/{game_id}")
    assert signed_out.code == 302
    assert signed_out.headers["Location"] == f"/login?next=/game/{game_id}"

    unknown = await alice.call("GET", "/game/no-such-game")
    assert unknown.code == 404
    assert "Page not found" in unknown.body.decode()

    carol = await player(http, instance, "carol")
    outsider = await carol.call("GET", f"/game/{game_id}")  # signed in: a spectator
    assert outsider.code == 200
    assert 'data-spectator="yes"' in outsider.body.decode()

    bad_id = await alice.call("GET", "/game/not:valid")
    assert bad_id.code == 404
