"""The whole platform in one story, in Chromium against ``server.py``, three players
each in a browser context of their own:

alice founds a guild, bob joins it, they chat both ways; the lobby filters players by
the guild; alice challenges bob from the guild page and both land on the game; carol,
who is in no guild, finds the game among the live games and watches it read-only while
the players see "1 watching"; alice wins by clicking the board; the record shows up in
alice's history, the replay steps through it, and the leaderboard has moved.

With ``PLAYHOUSE_SCREENSHOTS=1`` it also saves ``docs/screenshots/guild.png``,
``history.png``, ``replay.png`` and ``leaderboard.png`` along the way.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import ServerProcess
from tests.e2e.test_game_browser import (
    GAME_READY,
    GAME_URL,
    SCREENSHOTS,
    NewPage,
    Player,
    both,
    new_page,
)
from tests.e2e.test_guild_browser import chat_line, found, live, member, say
from tests.e2e.test_replay_browser import REPLAY_READY

__all__ = ["new_page"]  # the fixture, re-exported for pytest

pytestmark = [pytest.mark.browser, pytest.mark.redis]

LOBBY_READY = "() => document.getElementById('lobby')?.dataset.state === 'ready'"


def screenshot(page: Any, name: str) -> None:
    if os.environ.get("PLAYHOUSE_SCREENSHOTS") != "1":
        return
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.mouse.move(0, 0)
    page.evaluate("document.activeElement && document.activeElement.blur()")
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


@pytest.fixture
def server(playhouse: Callable[..., ServerProcess]) -> ServerProcess:
    return playhouse(
        PLAYHOUSE_SERVER_COOKIE_SECRET="walkthrough-cookie-secret", PLAYHOUSE_PRESENCE_GRACE="0.5"
    )


def test_guild_game_spectator_history_replay_and_leaderboard(
    new_page: NewPage, server: ServerProcess
) -> None:
    base = server.url
    alice = Player(new_page(), base, "alice")
    bob = Player(new_page(), base, "bob")
    carol = Player(new_page(), base, "carol")

    # No rated games yet.
    carol.page.goto(f"{base}/leaderboard?kind=tictactoe")
    expect(carol.page.locator("#no-players")).to_be_visible()

    # The guild: founded by alice, joined by bob, chat both ways.
    found(alice.page, base, "Knights", about="Tic-tac-toe on Thursdays")
    bob.page.goto(f"{base}/guilds/Knights")
    live(bob.page)
    bob.page.click("#guild-join")
    expect(bob.page.locator("#guild")).to_have_attribute("data-standing", "member")
    expect(member(alice.page, "bob").locator(".player-status")).to_have_text("online")
    say(alice.page, "Fancy a game, bob?")
    expect(chat_line(bob.page, "Fancy a game, bob?")).to_be_visible()
    say(bob.page, "Always <3")
    expect(chat_line(alice.page, "Always <3").locator(".chat-text")).to_have_text("Always <3")
    screenshot(alice.page, "guild")

    # The lobby, filtered by the guild: carol (online, not a member) drops out.
    lobby = carol.page
    lobby.goto(f"{base}/")
    lobby.wait_for_function(LOBBY_READY)
    expect(lobby.locator('#online li[data-user="alice"]')).to_be_visible()
    alice_lobby = new_page()
    alice_lobby.context.add_cookies(alice.page.context.cookies())
    alice_lobby.goto(f"{base}/")
    alice_lobby.wait_for_function(LOBBY_READY)
    expect(alice_lobby.locator('#online li[data-user="carol"]')).to_be_visible()
    alice_lobby.select_option("#guild-filter", "Knights")
    expect(alice_lobby.locator('#online li[data-user="carol"]')).to_have_count(0)
    expect(alice_lobby.locator('#online li[data-user="bob"]')).to_be_visible()
    assert alice_lobby.url.endswith("/?guild=Knights")
    alice_lobby.select_option("#guild-filter", "")
    expect(alice_lobby.locator('#online li[data-user="carol"]')).to_be_visible()
    alice_lobby.close()

    # A challenge from the guild page; both land on the game.
    row = member(alice.page, "bob")
    row.locator("select.challenge-game").select_option("tictactoe")
    row.locator("button.challenge").click()
    offer = bob.page.locator("#incoming li[data-challenge]")
    expect(offer).to_contain_text("alice challenges you to Tic-tac-toe")
    offer.locator("button.accept").click()
    bob.page.wait_for_url(GAME_URL)
    alice.page.wait_for_url(bob.page.url)
    game_id = bob.page.url.rsplit("/", 1)[1]
    for player in (alice, bob):
        player.page.wait_for_function(GAME_READY)

    # carol watches from the lobby's live games.
    watch = lobby.locator(f'#live-games li[data-game-id="{game_id}"]')
    expect(watch).to_contain_text("alice vs bob")
    watch.get_by_role("link", name="Watch").click()
    lobby.wait_for_url(GAME_URL)
    lobby.wait_for_function(GAME_READY)
    expect(lobby.locator("#watching-banner")).to_be_visible()
    for player in (alice, bob, carol):
        expect(player.page.locator("#watchers")).to_have_text("1 watching")

    # alice takes the top row by clicking; carol sees every move, and cannot move.
    for seq, (who, cell) in enumerate(
        [(alice, 0), (bob, 4), (alice, 1), (bob, 5), (alice, 2)], start=1
    ):
        who.board().locator(f'[data-cell="{cell}"]').click()
        both(alice, bob, seq)
        carol.wait_seq(seq)
    expect(carol.board().locator(".cell-taken")).to_have_count(5)
    expect(carol.board().locator(".hit-enabled")).to_have_count(0)
    expect(alice.page.locator("#result-text")).to_contain_text("You win")
    expect(bob.page.locator("#result-text")).to_contain_text("alice wins")
    expect(carol.page.locator("#result-text")).to_contain_text("alice wins")

    # The record: in alice's history, won, with a replay link.
    page = alice.page
    page.goto(f"{base}/users/alice/history")
    record = page.locator(f'#records tr[data-game-id="{game_id}"]')
    expect(record).to_have_attribute("data-outcome", "win")
    expect(record.locator(".record-opponent a")).to_have_text("bob")
    screenshot(page, "history")

    # The replay steps through it.
    record.locator(".replay-link").click()
    page.wait_for_url(re.compile(rf".*/replay/{game_id}$"))
    page.wait_for_function(REPLAY_READY)
    counter = page.locator("#counter")
    expect(counter).to_have_text("move 0 of 5")
    page.click("#replay-next")
    page.click("#replay-next")
    page.click("#replay-next")
    expect(counter).to_have_text("move 3 of 5")
    expect(page.locator("#board .cell-taken")).to_have_count(3)
    screenshot(page, "replay")
    page.click("#replay-last")
    expect(counter).to_have_text("move 5 of 5")
    expect(page.locator("#result-text")).to_contain_text("alice wins")
    page.click("#replay-first")
    expect(page.locator("#board .cell-taken")).to_have_count(0)

    # The leaderboard moved: alice above 1200, bob below (K = 32, equal ratings: ±16).
    carol.page.goto(f"{base}/leaderboard?kind=tictactoe")
    board = carol.page.locator("#board tbody tr")
    expect(board).to_have_count(2)
    expect(board.nth(0)).to_have_attribute("data-user", "alice")
    expect(board.nth(0).locator(".rating")).to_have_text("1216")
    expect(board.nth(1).locator(".rating")).to_have_text("1184")
    screenshot(carol.page, "leaderboard")
