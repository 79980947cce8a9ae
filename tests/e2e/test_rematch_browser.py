"""Rematch in Chromium: after a game, one player offers, the other accepts on the game
page, and both pages land on the same new game with the seats swapped."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import expect

from tests.e2e.test_game_browser import (  # noqa: F401 (fixtures)
    GAME_READY,
    Player,
    both,
    new_page,
    players,
    server,
)

pytestmark = [pytest.mark.browser, pytest.mark.redis]


def test_rematch_from_the_result_swaps_the_seats(
    players: Callable[[str], tuple[Player, Player, str]],  # noqa: F811
) -> None:
    alice, bob, old = players("tictactoe")  # alice has the first seat
    expect(alice.page.locator("#rematch")).to_be_hidden()  # not while playing
    alice.call("POST", f"/api/games/{old}/resign")
    for who in (alice, bob):
        expect(who.page.locator("#game-result")).to_be_visible()
        expect(who.page.locator("#rematch")).to_be_visible()

    alice.page.locator("#rematch").click()
    expect(alice.page.locator("#rematch")).to_have_text("Rematch offered")
    expect(alice.page.locator("#rematch")).to_be_disabled()
    expect(alice.page.locator("#rematch-status")).to_contain_text(f"Waiting for {bob.name}")
    offer = bob.page.locator("#rematch-offer")
    expect(offer).to_be_visible()
    expect(bob.page.locator("#rematch-offer-text")).to_have_text(f"{alice.name} offers a rematch")
    expect(bob.page.locator("#rematch")).to_be_hidden()  # accept instead of a second offer

    bob.page.locator("#rematch-accept").click()
    new_url = re.compile(rf".*/game/(?!{old}$)[0-9a-f]{{16}}$")
    bob.page.wait_for_url(new_url)
    alice.page.wait_for_url(bob.page.url)
    new = bob.page.url.rsplit("/", 1)[1]
    for who in (alice, bob):
        who.page.wait_for_function(GAME_READY)
        state = who.page.evaluate("window.playhouseGame.state")
        assert (state["game"], state["players"]) == (new, [bob.name, alice.name])
    expect(bob.page.locator("#turn")).to_have_text("Your turn")  # bob moves first now
    bob.board().locator('[data-cell="4"]').click()
    both(alice, bob, 1)
    expect(alice.page.locator("#turn")).to_have_text("Your turn")
