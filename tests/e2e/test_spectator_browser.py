"""Watching a game in Chromium: a third user finds the live game in the lobby, clicks
Watch, follows the moves read-only, and the players see "1 watching"."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import FrameLog, ServerProcess
from tests.e2e.test_game_browser import (
    GAME_READY,
    GAME_URL,
    NewPage,
    Player,
    both,
    new_page,
    start_game,
)

pytestmark = [pytest.mark.browser, pytest.mark.redis]

__all__ = ["new_page"]  # the fixture, re-exported for pytest


@pytest.fixture
def server(playhouse: Callable[..., ServerProcess]) -> ServerProcess:
    return playhouse(PLAYHOUSE_SERVER_COOKIE_SECRET="spectator-browser-tests-cookie-secret")


def sent_types(frames: FrameLog) -> list[Any]:
    types = []
    for frame in frames.sent:
        try:
            types.append(json.loads(frame).get("type"))
        except (ValueError, AttributeError):
            continue  # heartbeats
    return types


def test_a_third_user_watches_from_the_lobby(new_page: NewPage, server: ServerProcess) -> None:
    carol = Player(new_page(), server.url, "carol")  # in the lobby before the game starts
    alice = Player(new_page(), server.url, "alice")
    bob = Player(new_page(), server.url, "bob")
    expect(carol.page.locator("#live-games")).to_be_empty()
    game_id = start_game(alice, bob, "tictactoe")
    alice.open_game(game_id)
    bob.open_game(game_id)

    # The live-games panel updates by itself (game_live on broadcast:lobby).
    row = carol.page.locator(f'#live-games li[data-game-id="{game_id}"]')
    expect(row).to_contain_text("Tic-tac-toe")
    expect(row).to_contain_text("alice vs bob")
    frames = FrameLog(carol.page)
    row.get_by_role("link", name="Watch").click()
    carol.page.wait_for_url(GAME_URL)
    carol.page.wait_for_function(GAME_READY)

    spectator = carol.page
    expect(spectator.locator("#watching-banner")).to_be_visible()
    expect(spectator.locator("#watching-banner")).to_contain_text("Watching")
    for hidden in ("#game-actions", "#chat-panel", "#resign", "#offer-draw", "#chat-text"):
        expect(spectator.locator(hidden)).to_be_hidden()
    expect(carol.board().locator(".hit-enabled")).to_have_count(0)
    expect(spectator.locator("#turn")).to_have_text("alice to move")
    for who in (alice, bob, carol):
        expect(who.page.locator("#watchers")).to_have_text("1 watching")

    alice.board().locator('[data-cell="4"]').click()
    both(alice, bob, 1)
    carol.wait_seq(1)
    expect(carol.board().locator('[data-cell="4"].cell-taken')).to_have_count(1)
    expect(spectator.locator("#moves li")).to_have_count(1)

    # Clicking the board as a spectator sends nothing and changes nothing.
    carol.board().locator('[data-cell="0"]').click(force=True)
    bob.board().locator('[data-cell="8"]').click()
    both(alice, bob, 2)
    carol.wait_seq(2)
    expect(carol.board().locator('[data-cell="0"].cell-taken')).to_have_count(0)
    expect(carol.board().locator('[data-cell="8"].cell-taken')).to_have_count(1)
    assert sent_types(frames) and set(sent_types(frames)) == {"resume"}
    received = spectator.evaluate("window.playhouseGame.received")
    assert not any(m.get("type") == "chat" for m in received)

    # carol leaves: the players' pages stop counting her.
    spectator.goto(f"{server.url}/")
    for who in (alice, bob):
        expect(who.page.locator("#watchers")).to_be_hidden()
