"""Screenshots for the README, taken in Chromium against ``server.py``.

Runs only with ``PLAYHOUSE_SCREENSHOTS=1`` (like the game screenshots in
``test_game_browser.py``, whose fixtures and helpers it reuses) and saves
``docs/screenshots/lobby.png`` (1280×800): alice's lobby with three other players online,
a challenge from carol waiting for her answer and hers to bob waiting for his; and
``docs/screenshots/home.png`` (1000×600): an operator's notice arriving as a toast.
"""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Callable

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import ServerProcess
from tests.e2e.test_game_browser import SCREENSHOTS, NewPage, Player, new_page, server

__all__ = ["new_page", "server"]  # the fixtures, re-exported for pytest

pytestmark = [
    pytest.mark.browser,
    pytest.mark.redis,
    pytest.mark.skipif(
        os.environ.get("PLAYHOUSE_SCREENSHOTS") != "1", reason="set PLAYHOUSE_SCREENSHOTS=1"
    ),
]

LOBBY_READY = "() => document.getElementById('lobby')?.dataset.state === 'ready'"


def test_screenshot_lobby(new_page: NewPage, server: ServerProcess) -> None:
    """``docs/screenshots/lobby.png``: one challenge in, one out, three players online."""
    alice = Player(new_page(), server.url, "alice")
    others = {name: Player(new_page(), server.url, name) for name in ("bob", "carol", "dave")}
    page = alice.page
    page.wait_for_function(LOBBY_READY)
    for name in others:
        expect(page.locator(f'#online li[data-user="{name}"]')).to_contain_text("online")

    # alice challenges bob from her player list; carol challenges alice.
    row = page.locator('#online li[data-user="bob"]')
    row.locator("select.challenge-game").select_option("connect4")
    row.locator("button.challenge").click()
    others["carol"].call("POST", "/api/challenges", {"to": "alice", "game": "dots"})

    expect(page.locator("#outgoing li[data-challenge]")).to_contain_text("Connect Four vs bob")
    incoming = page.locator("#incoming li[data-challenge]")
    expect(incoming).to_contain_text("carol challenges you to Dots")
    expect(incoming.locator(".countdown")).not_to_be_empty()
    expect(page.locator("#lobby-connection")).to_have_text("connected")
    expect(page.locator("#lobby-error")).to_be_hidden()

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.mouse.move(0, 0)
    page.evaluate("document.activeElement && document.activeElement.blur()")
    page.screenshot(path=str(SCREENSHOTS / "lobby.png"))


ADMIN_TOKEN = "screenshot-operator-token"


def test_screenshot_notice_toast(
    new_page: NewPage, playhouse: Callable[..., ServerProcess]
) -> None:
    """``docs/screenshots/home.png``: a notice from an operator script arrives as a toast."""
    server = playhouse(
        PLAYHOUSE_SERVER_COOKIE_SECRET="screenshot-cookie-secret",
        PLAYHOUSE_ADMIN_TOKEN=ADMIN_TOKEN,
    )
    alice = Player(new_page(), server.url, "alice")
    Player(new_page(), server.url, "bob")
    page = alice.page
    page.set_viewport_size({"width": 1000, "height": 600})
    page.wait_for_function(LOBBY_READY)
    expect(page.locator('#online li[data-user="bob"]')).to_contain_text("online")
    text = "Server maintenance tonight at 02:00 UTC; games in progress are kept."
    request = urllib.request.Request(
        f"{server.url}/api/admin/broadcast",
        data=json.dumps({"text": text, "expire": 60}).encode(),
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 201
    expect(page.locator(".toast .toast-text")).to_have_text(text)
    page.mouse.move(0, 0)
    page.screenshot(path=str(SCREENSHOTS / "home.png"))
