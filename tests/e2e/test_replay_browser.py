"""The replay page in Chromium: a finished Tic-tac-toe game stepped through by keyboard,
by a click on a move and by autoplay, against ``server.py``."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import ServerProcess
from tests.e2e.test_game_browser import NewPage, Player, new_page, server, start_game

__all__ = ["new_page", "server"]  # the fixtures, re-exported for pytest

pytestmark = [pytest.mark.browser, pytest.mark.redis]

REPLAY_READY = "() => window.playhouseReplay && window.playhouseReplay.ready"


def test_replay_steps_through_a_finished_game(new_page: NewPage, server: ServerProcess) -> None:
    alice = Player(new_page(), server.url, "alice")
    bob = Player(new_page(), server.url, "bob")
    game_id = start_game(alice, bob, "tictactoe")
    plan = [(alice, 0), (bob, 3), (alice, 1), (bob, 4), (alice, 2)]  # alice: the top row
    seq = 0
    for who, cell in plan:
        body = {"move": {"cell": cell}, "seq": seq}
        ack = who.call("POST", f"/api/games/{game_id}/moves", body)
        seq = ack["seq"]
    assert ack["result"]["winner"] == "alice"

    page = bob.page
    page.goto(f"{server.url}/replay/{game_id}")
    page.wait_for_function(REPLAY_READY)
    counter = page.locator("#counter")
    marks = page.locator("#board .cell-taken")
    expect(counter).to_have_text("move 0 of 5")
    expect(marks).to_have_count(0)
    expect(page.locator("#moves li")).to_have_count(5)
    expect(page.locator("#game-result")).to_be_hidden()
    expect(page.locator("#replay-first")).to_be_disabled()
    expect(page.locator("a[href='/']").first).to_be_visible()

    page.keyboard.press("End")
    expect(counter).to_have_text("move 5 of 5")
    expect(marks).to_have_count(5)
    expect(page.locator("#board .cell-win")).to_have_count(3)
    expect(page.locator("#game-result")).to_be_visible()
    expect(page.locator("#result-text")).to_contain_text("alice wins")
    expect(page.locator("#moves li.move-current")).to_have_attribute("data-position", "5")
    expect(page.locator("#replay-next")).to_be_disabled()

    page.keyboard.press("Home")
    expect(counter).to_have_text("move 0 of 5")
    expect(marks).to_have_count(0)
    expect(page.locator("#game-result")).to_be_hidden()
    expect(page.locator("#moves li.move-current")).to_have_count(0)

    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    expect(counter).to_have_text("move 2 of 5")
    expect(marks).to_have_count(2)
    expect(page.locator('#board [data-cell="3"]')).to_have_class("cell cell-taken hit hit-disabled")
    current = page.locator("#moves li.move-current")
    expect(current).to_have_attribute("data-position", "2")
    expect(current).to_contain_text("bob played O at row 2, column 1")

    page.keyboard.press("ArrowLeft")
    expect(counter).to_have_text("move 1 of 5")
    expect(marks).to_have_count(1)

    page.locator('#moves li[data-position="4"] button').click()
    expect(counter).to_have_text("move 4 of 5")
    expect(marks).to_have_count(4)

    page.locator("#replay-play").click()  # autoplay: one move a second, stops at the end
    expect(page.locator("#replay-play")).to_have_attribute("aria-pressed", "true")
    expect(counter).to_have_text("move 5 of 5", timeout=5_000)
    expect(page.locator("#replay-play")).to_have_attribute("aria-pressed", "false")
    expect(page.locator("#replay-play")).to_have_text("▶ Play")

    # The board is read-only: a click on an empty cell sends nothing.
    page.keyboard.press("Home")
    cell = page.locator('#board [data-cell="8"]')
    expect(cell).to_have_attribute("aria-disabled", "true")
    cell.click(force=True)
    expect(counter).to_have_text("move 0 of 5")
    expect(marks).to_have_count(0)


def test_an_active_game_has_no_replay(new_page: NewPage, server: ServerProcess) -> None:
    alice = Player(new_page(), server.url, "carol")
    bob = Player(new_page(), server.url, "dave")
    game_id = start_game(alice, bob, "tictactoe")
    alice.page.goto(f"{server.url}/replay/{game_id}")
    expect(alice.page.locator("body")).to_contain_text("still being played")
