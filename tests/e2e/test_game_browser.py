"""The game page in Chromium, two players in two browser contexts, against ``server.py``.

Games are started through the HTTP API (register, challenge, accept); moves are played
by clicking and with the keyboard; a reload mid-game resumes the same position.
``PLAYHOUSE_SCREENSHOTS=1`` also saves ``docs/screenshots/game-<kind>.png`` (1280×800)
of every game mid-game.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect

from tests.e2e.conftest import ServerProcess
from tests.support import ROOT

pytestmark = [pytest.mark.browser, pytest.mark.redis]

PASSWORD = "correct horse battery"
DESKTOP = {"width": 1280, "height": 800}
SCREENSHOTS = ROOT / "docs" / "screenshots"
GAME_READY = "() => window.playhouseGame && window.playhouseGame.state !== null"
SEQ_AT_LEAST = "n => window.playhouseGame && window.playhouseGame.lastSeq >= n"
KINDS = ("tictactoe", "connect4", "dots", "snakes", "bingo", "rps")

NewPage = Callable[..., Any]


@pytest.fixture
def new_page(browser: Any) -> Iterator[NewPage]:
    """``new_page()`` → a page in a context of its own (its own cookies).

    Uncaught page errors and Content-Security-Policy violations fail the test.
    """
    contexts: list[Any] = []
    problems: list[str] = []

    def console(message: Any) -> None:
        if "Content Security Policy" in message.text:
            problems.append(message.text)

    def make(**options: Any) -> Any:
        context = browser.new_context(**{"viewport": DESKTOP, **options})
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.on("console", console)
        return page

    yield make
    for context in contexts:
        context.close()
    assert not problems, f"errors in the pages: {problems}"


GAME_URL = re.compile(r".*/game/[0-9a-f]{16}$")


class Player:
    """A signed-in browser: its page, and JSON calls with its cookies and XSRF token."""

    def __init__(self, page: Any, base: str, name: str) -> None:
        self.page = page
        self.base = base
        self.name = name
        page.goto(f"{base}/register")
        page.fill("#username", name)
        page.fill("#password", PASSWORD)
        page.fill("#password2", PASSWORD)
        page.click("#submit")
        page.wait_for_url(f"{base}/")  # "/" keeps a socket open: the player is online
        page.wait_for_function("() => window.playhouseNotices?.client.readyState === 1")
        # The lobby's own socket brings game_started (open_game waits for it to navigate).
        page.wait_for_function("() => window.playhouseLobby?.client?.readyState === 1")

    def call(self, method: str, path: str, body: Any = None) -> Any:
        request = self.page.request
        if method == "GET":
            reply = request.get(f"{self.base}{path}")
        else:
            token = request.get(f"{self.base}/api/xsrf").json()["xsrf"]
            reply = request.post(
                f"{self.base}{path}",
                data=json.dumps(body if body is not None else {}),
                headers={"X-XSRFToken": token, "Content-Type": "application/json"},
            )
        assert reply.ok, f"{method} {path}: {reply.status} {reply.text()}"
        return reply.json()

    def open_game(self, game_id: str) -> None:
        """Go to the game page; a lobby page on ``/`` goes there by itself on game_started."""
        url = f"{self.base}/game/{game_id}"
        if self.page.url != url:
            try:
                lobby = bool(self.page.evaluate("() => !!window.playhouseLobby"))
            except PlaywrightError:  # the lobby is navigating away already
                lobby = True
            if lobby:
                self.page.wait_for_url(url)
            else:
                self.page.goto(url)
        self.page.wait_for_function(GAME_READY)

    def seq(self) -> int:
        return int(self.page.evaluate("window.playhouseGame.lastSeq"))

    def wait_seq(self, seq: int) -> None:
        self.page.wait_for_function(SEQ_AT_LEAST, arg=seq)

    def board(self) -> Any:
        return self.page.locator("#board")


def start_game(alice: Player, bob: Player, kind: str) -> str:
    """In the lobby pages: alice sees bob online and challenges him to ``kind``, bob sees the
    challenge and accepts, and both pages go to the same game (alice has the first seat)."""
    row = alice.page.locator(f'#online li[data-user="{bob.name}"]')
    expect(row).to_contain_text("online")
    expect(bob.page.locator(f'#online li[data-user="{alice.name}"]')).to_contain_text("online")
    row.locator("select.challenge-game").select_option(kind)
    row.locator("button.challenge").click()
    incoming = bob.page.locator("#incoming li[data-challenge]")
    expect(incoming).to_contain_text(f"{alice.name} challenges you")
    incoming.locator("button.accept").click()
    bob.page.wait_for_url(GAME_URL)
    alice.page.wait_for_url(bob.page.url)
    return bob.page.url.rsplit("/", 1)[1]


def both(alice: Player, bob: Player, seq: int) -> None:
    alice.wait_seq(seq)
    bob.wait_seq(seq)


@pytest.fixture
def server(playhouse: Callable[..., ServerProcess]) -> ServerProcess:
    # A fixed cookie secret, so sessions outlive a restart (as in any real deployment).
    return playhouse(PLAYHOUSE_SERVER_COOKIE_SECRET="game-browser-tests-cookie-secret")


@pytest.fixture
def players(
    new_page: NewPage, server: ServerProcess
) -> Callable[[str], tuple[Player, Player, str]]:
    count = [0]

    def make(kind: str) -> tuple[Player, Player, str]:
        count[0] += 1
        alice = Player(new_page(), server.url, f"alice{count[0]}")
        bob = Player(new_page(), server.url, f"bob{count[0]}")
        game_id = start_game(alice, bob, kind)
        alice.open_game(game_id)
        bob.open_game(game_id)
        return alice, bob, game_id

    return make


def test_connect_four_by_mouse_and_keyboard_to_a_win_with_a_reload(
    players: Callable[[str], tuple[Player, Player, str]],
) -> None:
    alice, bob, _ = players("connect4")
    expect(alice.page.locator("#turn")).to_have_text("Your turn")
    expect(bob.page.locator("#turn")).to_contain_text(f"Waiting for {alice.name}")
    expect(alice.page.locator("#game-heading")).to_contain_text("Connect Four")
    expect(alice.page.locator("a[href='/']").first).to_be_visible()

    # alice stacks column 1, bob column 2 (bob plays by keyboard: Tab in, arrow, Enter).
    plan = [(alice, 0), (bob, 1), (alice, 0), (bob, 1), (alice, 0), (bob, 1), (alice, 0)]
    for seq, (who, column) in enumerate(plan, start=1):
        expect(who.page.locator("#turn")).to_have_text("Your turn")
        if who is bob and seq == 2:
            who.board().locator('[data-column="0"]').focus()
            who.page.keyboard.press("ArrowRight")
            focused = who.page.evaluate("document.activeElement.dataset.column")
            assert focused == "1", "ArrowRight moves to the next column"
            who.page.keyboard.press("Enter")
        elif who is bob and seq == 4:
            who.board().locator(f'[data-column="{column}"]').focus()
            who.page.keyboard.press(" ")
        else:
            who.board().locator(f'[data-column="{column}"]').click()
        both(alice, bob, seq)
        if seq == 4:
            # Reload mid-game: the same position comes back (same seq, pieces, moves).
            before_moves = bob.page.locator("#moves li").count()
            bob.page.reload()
            bob.page.wait_for_function(GAME_READY)
            bob.wait_seq(4)
            expect(bob.board().locator(".disc:not(.ghost)")).to_have_count(4)
            expect(bob.page.locator("#moves li")).to_have_count(before_moves)
            assert before_moves == 4
            expect(bob.page.locator("#turn")).to_contain_text(f"Waiting for {alice.name}")

    for who in (alice, bob):
        expect(who.page.locator("#game-result")).to_be_visible()
        expect(who.page.locator("#turn")).to_contain_text("four in a row")
        expect(who.board().locator(".disc-win")).to_have_count(4)
        expect(who.page.locator("#resign")).to_be_disabled()
    expect(alice.page.locator("#result-text")).to_contain_text("You win")
    expect(bob.page.locator("#result-text")).to_contain_text(f"{alice.name} wins")
    expect(alice.page.locator("#moves li")).to_have_count(7)
    expect(alice.page.locator("#moves li").last).to_contain_text("column 1")
    assert alice.page.evaluate("window.playhouseGame.state.status") == "finished"


def test_bingo_to_a_result(players: Callable[[str], tuple[Player, Player, str]]) -> None:
    alice, bob, _ = players("bingo")
    expect(alice.board().locator(".bingo-cell")).to_have_count(25)
    expect(alice.page.locator("#bingo-opponent")).to_have_count(0)  # hidden while playing
    pages = {alice.name: alice, bob.name: bob}
    seq = 0
    while alice.page.evaluate("window.playhouseGame.state.status") != "finished":
        to_move = alice.page.evaluate(
            "(() => { const v = window.playhouseGame.state.view; return v.players[v.turn]; })()"
        )
        who = pages[to_move]
        expect(who.page.locator("#turn")).to_have_text("Your turn")
        free = who.board().locator(".bingo-figure:not(.bingo-theirs) .bingo-cell.hit-enabled")
        if seq % 3 == 1:  # sometimes by keyboard
            free.first.focus()
            who.page.keyboard.press("Enter")
        else:
            free.first.click()
        seq += 1
        both(alice, bob, seq)
        expect(alice.page.locator("#called li")).to_have_count(seq)
        assert seq <= 25, "Bingo always ends within 25 calls"

    for who in (alice, bob):
        expect(who.page.locator("#game-result")).to_be_visible()
        expect(who.page.locator("#result-text")).to_contain_text("five lines")
        expect(who.page.locator("#bingo-opponent")).to_be_visible()  # revealed at the end
        expect(who.board().locator(".bingo-strike")).not_to_have_count(0)


def test_a_server_restart_shows_reconnecting_then_resumes(
    players: Callable[[str], tuple[Player, Player, str]], server: ServerProcess
) -> None:
    alice, bob, _ = players("tictactoe")
    alice.board().locator('[data-cell="4"]').click()
    both(alice, bob, 1)
    bob.board().locator('[data-cell="0"]').click()
    both(alice, bob, 2)

    server.stop()
    for who in (alice, bob):
        expect(who.page.locator("#connection")).to_have_text("reconnecting…")
    server.start()
    for who in (alice, bob):
        expect(who.page.locator("#connection")).to_have_text("live", timeout=40_000)
        expect(who.page.locator("#moves li")).to_have_count(2)  # resumed: no duplicates
        expect(who.board().locator(".cell-taken")).to_have_count(2)
    alice.board().locator('[data-cell="8"]').click()
    both(alice, bob, 3)
    expect(bob.board().locator(".cell-taken")).to_have_count(3)
    expect(bob.page.locator("#turn")).to_have_text("Your turn")

    # bob leaves: alice sees the forfeit countdown; he comes back: it goes away.
    game_url = bob.page.url
    bob.page.goto("about:blank")
    away = alice.page.locator(f'.player[data-player="{bob.name}"] .player-away')
    expect(away).to_contain_text("disconnected — forfeits in")
    bob.page.goto(game_url)
    bob.page.wait_for_function(GAME_READY)
    expect(away).to_have_count(0)
    expect(bob.page.locator("#moves li")).to_have_count(3)


def test_chat_and_draw_offers(players: Callable[[str], tuple[Player, Player, str]]) -> None:
    alice, bob, _ = players("tictactoe")
    alice.page.wait_for_function("() => window.playhouseGame.resumed")

    # Chat: text only, on both pages, numbered once (no duplicates after a reload).
    text = "good luck <b>bob</b> & have fun"
    alice.page.fill("#chat-text", text)
    alice.page.press("#chat-text", "Enter")
    for who in (alice, bob):
        expect(who.page.locator("#chat-log .chat-text")).to_have_text([text])
        assert who.page.locator("#chat-log b.chat-from").count() == 1, "no markup from chat"
    expect(alice.page.locator("#chat-text")).to_have_value("")
    bob.page.reload()
    bob.page.wait_for_function("() => window.playhouseGame.lastChat >= 1")
    expect(bob.page.locator("#chat-log .chat-text")).to_have_text([text])

    # On a phone the page stacks and does not scroll sideways.
    bob.page.set_viewport_size({"width": 360, "height": 740})
    assert bob.page.evaluate("document.documentElement.scrollWidth") <= 360
    if os.environ.get("PLAYHOUSE_PHONE_SHOT"):
        bob.page.screenshot(path=os.environ["PLAYHOUSE_PHONE_SHOT"], full_page=True)

    # A draw offer: bob sees Accept/Decline, declines; alice offers again, bob accepts.
    alice.page.click("#offer-draw")
    expect(bob.page.locator("#draw-offer")).to_be_visible()
    expect(bob.page.locator("#draw-offer-text")).to_contain_text(alice.name)
    expect(alice.page.locator("#offer-draw")).to_be_disabled()
    expect(alice.page.locator("#draw-offer")).to_be_hidden()
    bob.page.click("#draw-decline")
    expect(bob.page.locator("#draw-offer")).to_be_hidden()
    expect(alice.page.locator("#offer-draw")).to_be_enabled()
    alice.page.click("#offer-draw")
    expect(bob.page.locator("#draw-offer")).to_be_visible()
    bob.page.click("#draw-accept")
    for who in (alice, bob):
        expect(who.page.locator("#result-text")).to_have_text("Draw — by agreement.")
        expect(who.page.locator("#offer-draw")).to_be_disabled()
        expect(who.page.locator("#moves li").last).to_contain_text("accepted the draw")


def test_signing_out_in_another_tab_stops_the_game_page_with_a_way_back(
    players: Callable[[str], tuple[Player, Player, str]],
) -> None:
    """The session ends elsewhere: the game socket cannot come back (its handshake gets
    403), so the page says the player is signed out and links to the login, instead of
    "reconnecting…" forever."""
    alice, bob, game_id = players("tictactoe")
    alice.page.wait_for_function("() => window.playhouseGame.resumed")
    expect(alice.page.locator("#game-error")).to_be_empty()
    expect(alice.board().locator(".hit-enabled")).to_have_count(9)

    other_tab = alice.page.context.new_page()  # same cookies: the same session
    other_tab.goto(f"{alice.base}/")
    other_tab.click("#logout")
    other_tab.wait_for_url(f"{alice.base}/")
    expect(other_tab.locator("#logout")).to_have_count(0)

    page = alice.page
    error = page.locator("#game-error")
    expect(error).to_contain_text("signed out", timeout=5_000)
    link = error.locator("a")
    expect(link).to_have_attribute("href", f"/login?next=/game/{game_id}")
    expect(link).to_be_visible()
    expect(page.locator("#connection")).to_have_text("signed out")
    expect(page.locator("#turn")).to_have_text("This game is not live on this page.")
    page.wait_for_function("() => window.playhouseGame.client.readyState === WebSocket.CLOSED")
    assert page.evaluate("window.playhouseGame.stopped") == "signed_out"
    expect(page.locator("#resign")).to_be_disabled()
    expect(page.locator("#chat-text")).to_be_disabled()
    expect(alice.board().locator(".hit-enabled")).to_have_count(0)  # her turn, but no moves
    # bob, still signed in, stays live.
    expect(bob.page.locator("#connection")).to_have_text("live")
    expect(bob.page.locator("#game-error")).to_be_empty()

    # The link signs alice in and brings her back to the same game.
    link.click()
    page.wait_for_url(re.compile(re.escape(f"{alice.base}/login?next=/game/{game_id}") + "$"))
    page.fill("#username", alice.name)
    page.fill("#password", PASSWORD)
    page.click("#submit")
    page.wait_for_url(f"{alice.base}/game/{game_id}")
    page.wait_for_function(GAME_READY)
    expect(page.locator("#connection")).to_have_text("live")


def test_resign_with_a_keyboard_confirmation(
    players: Callable[[str], tuple[Player, Player, str]],
) -> None:
    alice, bob, _ = players("rps")
    alice.page.locator('[data-choice="rock"]').click()
    expect(alice.page.locator("#rps-prompt")).to_contain_text("You chose Rock")
    expect(alice.page.locator('[data-choice="paper"]')).to_be_disabled()
    expect(bob.page.locator(".rps-side-0 .rps-chosen")).to_contain_text("has chosen")
    assert "rock" not in json.dumps(bob.page.evaluate("window.playhouseGame.state"))

    page = bob.page
    page.locator("#resign").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#resign-confirm")).to_be_visible()
    expect(page.locator("#resign-no")).to_be_focused()
    page.keyboard.press("Escape")  # changed my mind
    expect(page.locator("#resign-confirm")).to_be_hidden()
    expect(page.locator("#resign")).to_be_focused()
    page.keyboard.press("Enter")
    page.keyboard.press("Shift+Tab")
    expect(page.locator("#resign-yes")).to_be_focused()
    page.keyboard.press("Enter")
    for who in (alice, bob):
        expect(who.page.locator("#game-result")).to_be_visible()
        expect(who.page.locator("#moves li").last).to_contain_text(f"{bob.name} resigned")
    expect(alice.page.locator("#result-text")).to_have_text("You win — by resignation!")
    expect(bob.page.locator("#result-text")).to_have_text(f"{alice.name} wins — by resignation.")


@pytest.mark.skipif(
    os.environ.get("PLAYHOUSE_SCREENSHOTS") != "1", reason="set PLAYHOUSE_SCREENSHOTS=1"
)
@pytest.mark.parametrize("kind", KINDS)
def test_screenshot_mid_game(
    players: Callable[[str], tuple[Player, Player, str]], kind: str
) -> None:
    """``docs/screenshots/game-<kind>.png``: a few moves in, from the player to move."""
    alice, bob, game_id = players(kind)
    by_name = {alice.name: alice, bob.name: bob}
    plans: dict[str, list[Any]] = {
        "tictactoe": [{"cell": 4}, {"cell": 0}, {"cell": 2}, {"cell": 6}, {"cell": 3}],
        "connect4": [{"column": c} for c in (3, 3, 4, 2, 5, 6, 2, 4, 2)],
        "dots": [
            {"line": spec[0], "row": int(spec[1]), "col": int(spec[2])}
            for spec in ("h00", "h10", "v00", "v01", "h22", "v13", "h41", "v34", "h03", "v20")
        ],
        "snakes": [{"roll": True}] * 12,
        "bingo": [{"number": n} for n in (7, 13, 21, 2, 18, 9, 25, 4)],
        "rps": [
            {"choice": c}
            for c in ("rock", "scissors", "paper", "paper", "scissors", "rock", "paper")
        ],
    }
    seq = 0
    for move in plans[kind]:
        view = alice.call("GET", f"/api/games/{game_id}")
        turn = view["view"]
        if kind == "rps":
            mover = turn["players"][turn["chosen"].index(False)]
        else:
            mover = turn["players"][turn["turn"]]
        by_name[mover].call(
            "POST",
            f"/api/games/{game_id}/moves",
            {"move": move, "seq": view["seq"]},
        )
        seq += 1
    both(alice, bob, seq)
    final = alice.call("GET", f"/api/games/{game_id}")["view"]
    # The player to move; in RPS alice, who has chosen: her page shows her pending choice.
    shot = alice if kind == "rps" else by_name[final["players"][final["turn"]]]
    other = bob if shot is alice else alice
    other.page.wait_for_function("() => window.playhouseGame.resumed")
    other.page.fill("#chat-text", "good luck, have fun!")
    other.page.click("#chat-send")
    shot.page.wait_for_function("() => window.playhouseGame.lastChat >= 1")
    expect(shot.page.locator("#turn")).to_have_text(
        "Your turn" if kind != "rps" else "Waiting for " + bob.name + "…"
    )
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shot.page.mouse.move(0, 0)
    shot.page.screenshot(path=str(SCREENSHOTS / f"game-{kind}.png"))
