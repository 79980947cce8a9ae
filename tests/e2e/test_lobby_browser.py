"""The lobby in Chromium, two players in browsers of their own, against ``server.py``.

Both see each other online; alice challenges bob from her player list; bob accepts
from his incoming list and both browsers land on the same ``/game/<id>``, which the
lobby then offers as "Return to your game". A decline reaches alice live, and a
reloaded lobby lists the open challenges it missed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import ServerProcess

pytestmark = [pytest.mark.browser, pytest.mark.redis]

PASSWORD = "correct horse battery"
PHONE = {"width": 360, "height": 740}
LOBBY_READY = "() => document.getElementById('lobby')?.dataset.state === 'ready'"
LOBBY_OPEN = "() => window.playhouseLobby?.client?.readyState === WebSocket.OPEN"

NewPage = Callable[..., Any]


@pytest.fixture
def new_page(browser: Any) -> Iterator[NewPage]:
    """``new_page(viewport=...)`` → a page in a context of its own (its own cookies).

    Uncaught errors and Content-Security-Policy violations on the lobby fail the
    test. The game page is someone else's: errors there are not this test's subject.
    """
    contexts: list[Any] = []
    problems: list[str] = []

    def watch(page: Any) -> None:
        def problem(text: str) -> None:
            if "/game/" not in page.url:
                problems.append(f"{page.url}: {text}")

        page.on("pageerror", lambda error: problem(str(error)))
        page.on(
            "console",
            lambda message: (
                problem(message.text) if "Content Security Policy" in message.text else None
            ),
        )

    def make(**options: Any) -> Any:
        context = browser.new_context(**options)
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = context.new_page()
        watch(page)
        return page

    yield make
    for context in contexts:
        context.close()
    assert not problems, f"errors in the lobby: {problems}"


def register(page: Any, base: str, username: str) -> None:
    """Register through the page; lands on the lobby with its socket open."""
    page.goto(f"{base}/register")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.fill("#password2", PASSWORD)
    page.click("#submit")
    page.wait_for_url(f"{base}/")
    page.wait_for_function(LOBBY_READY)
    page.wait_for_function(LOBBY_OPEN)


def player_row(page: Any, name: str) -> Any:
    return page.locator(f'#online li[data-user="{name}"]')


def test_challenge_and_accept_take_both_players_to_the_same_game(
    new_page: NewPage, playhouse: Callable[..., ServerProcess]
) -> None:
    base = playhouse().url
    alice, bob = new_page(), new_page(viewport=PHONE)
    register(alice, base, "alice")
    register(bob, base, "bob")

    # Each sees the other online (live for alice, who was there first), never themselves.
    bob_row = player_row(alice, "bob")
    expect(bob_row).to_contain_text("bob")
    expect(bob_row).to_contain_text("online")
    expect(player_row(bob, "alice")).to_contain_text("online")
    expect(player_row(alice, "alice")).to_have_count(0)
    expect(alice.locator("#catalogue")).to_contain_text("Connect Four")
    assert bob.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]

    bob_row.locator("select.challenge-game").select_option("connect4")
    bob_row.locator("button.challenge").click()
    sent = alice.locator("#outgoing li[data-challenge]")
    expect(sent).to_have_count(1)
    expect(sent).to_contain_text("Connect Four vs bob")
    expect(sent.locator("button.cancel")).to_be_visible()

    offer = bob.locator("#incoming li[data-challenge]")
    expect(offer).to_have_count(1)
    expect(offer).to_contain_text("alice challenges you to Connect Four")
    expect(offer.locator(".countdown")).to_have_text(re.compile(r"^[01]:\d\d$"))
    assert offer.get_attribute("data-challenge") == sent.get_attribute("data-challenge")
    offer.locator("button.accept").click()

    game_url = re.compile(re.escape(base) + r"/game/[0-9a-f]{16}$")
    bob.wait_for_url(game_url)  # from the accept call's answer
    alice.wait_for_url(game_url)  # from game_started on her lobby socket
    assert alice.url == bob.url

    # Back in the lobby, the game in progress is one click away.
    alice.goto(f"{base}/")
    back = alice.locator("#current-game-link")
    expect(back).to_be_visible()
    expect(back).to_have_attribute("href", bob.url.removeprefix(base))
    expect(alice.locator("#current-game")).to_contain_text("Connect Four with bob")


def test_decline_reaches_the_challenger_and_a_reload_lists_open_challenges(
    new_page: NewPage, playhouse: Callable[..., ServerProcess]
) -> None:
    base = playhouse().url
    alice, bob = new_page(), new_page()
    register(alice, base, "alice")
    register(bob, base, "bob")

    bob_row = player_row(alice, "bob")
    bob_row.locator("button.challenge").click()  # the first game on the list
    sent = alice.locator("#outgoing li[data-challenge]")
    expect(sent).to_contain_text("Tic-tac-toe vs bob")
    expect(bob.locator("#incoming li[data-challenge]")).to_have_count(1)

    # A second challenge of the same pair and game is refused, visibly.
    bob_row.locator("button.challenge").click()
    expect(alice.locator("#lobby-error")).to_be_visible()
    expect(alice.locator("#lobby-error")).to_contain_text("wait for an answer")

    # A lobby opened later lists what it missed, from GET /api/lobby.
    bob.reload()
    bob.wait_for_function(LOBBY_READY)
    offer = bob.locator("#incoming li[data-challenge]")
    expect(offer).to_contain_text("alice challenges you to Tic-tac-toe")
    bob.wait_for_function(LOBBY_OPEN)

    offer.locator("button.decline").focus()
    bob.keyboard.press("Enter")  # keyboard works as well as a click
    expect(offer).to_have_count(0)
    expect(sent).to_have_count(0)
    expect(alice.locator("#lobby-news")).to_contain_text("bob declined")
    expect(bob.locator("#lobby-news")).to_contain_text("You declined")
    assert alice.url == f"{base}/" and bob.url == f"{base}/"
