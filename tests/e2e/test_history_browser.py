"""The history page in Chromium: a finished game shows up for both players, with the
outcome each had, links to the opponent's history and the replay, and working filters."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import ServerProcess
from tests.e2e.test_game_browser import NewPage, Player, new_page, server, start_game

__all__ = ["new_page", "server"]  # the fixtures, re-exported for pytest

pytestmark = [pytest.mark.browser, pytest.mark.redis]


def test_a_resigned_game_in_both_histories(new_page: NewPage, server: ServerProcess) -> None:
    alice = Player(new_page(), server.url, "hist_alice")
    bob = Player(new_page(), server.url, "hist_bob")
    game_id = start_game(alice, bob, "tictactoe")
    alice.open_game(game_id)
    result = alice.call("POST", f"/api/games/{game_id}/resign")["result"]
    assert result == {"status": "win", "winner": bob.name, "reason": "resigned"}

    # alice's own history: lost by resignation, against bob.
    alice.page.goto(f"{server.url}/users/{alice.name}/history")
    expect(alice.page.locator("#history-heading")).to_have_text("My games")
    row = alice.page.locator(f'#records tr[data-game-id="{game_id}"]')
    expect(row).to_have_attribute("data-outcome", "loss")
    expect(row.locator(".record-outcome")).to_have_text("Lost")
    expect(row.locator(".record-kind")).to_have_text("Tic-tac-toe")
    expect(row.locator(".record-reason")).to_have_text("resign")
    expect(row.locator(".replay-link")).to_have_attribute("href", f"/replay/{game_id}")

    # Following the opponent link: the same game in bob's history, won.
    row.locator(".record-opponent a").click()
    alice.page.wait_for_url(re.compile(rf".*/users/{bob.name}/history$"))
    expect(alice.page.locator("#history-heading")).to_have_text(f"{bob.name}'s games")
    bobs_row = alice.page.locator(f'#records tr[data-game-id="{game_id}"]')
    expect(bobs_row).to_have_attribute("data-outcome", "win")
    expect(bobs_row.locator(".record-outcome")).to_have_text("Won")
    alice.page.locator("#my-games").click()
    alice.page.wait_for_url(re.compile(rf".*/users/{alice.name}/history$"))

    # bob's own view, then the filters (query parameters of a plain GET form).
    bob.page.goto(f"{server.url}/users/{bob.name}/history")
    mine = bob.page.locator(f'#records tr[data-game-id="{game_id}"]')
    expect(mine).to_have_attribute("data-outcome", "win")
    expect(mine.locator(".record-opponent a")).to_have_text(alice.name)
    bob.page.select_option("#filter-outcome", "loss")
    bob.page.click("#filter-submit")
    bob.page.wait_for_url(re.compile(r".*[?&]outcome=loss"))
    expect(bob.page.locator("#no-records")).to_be_visible()
    expect(bob.page.locator("#filter-outcome")).to_have_value("loss")
    bob.page.select_option("#filter-outcome", "win")
    bob.page.select_option("#filter-kind", "tictactoe")
    bob.page.click("#filter-submit")
    bob.page.wait_for_url(re.compile(r".*kind=tictactoe.*outcome=win"))
    expect(bob.page.locator(f'#records tr[data-game-id="{game_id}"]')).to_be_visible()
    expect(bob.page.locator("#older")).to_have_count(0)
