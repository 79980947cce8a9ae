"""Web security in Chromium, against ``server.py`` (issue "Hardening", item 5).

Cross-site WebSocket hijacking and cross-site request forgery from pages of other
origins while the victim is signed in, and stored XSS through every place other
people's text appears: game chat, guild chat, guild descriptions, admin notices.
The ``new_page`` fixture fails a test on any uncaught page error or any
Content-Security-Policy violation reported in the console.
"""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import ServerProcess, wait_for
from tests.e2e.test_accounts_browser import create_admin, log_in, toast
from tests.e2e.test_game_browser import GAME_READY, NewPage, Player, new_page, start_game
from tests.e2e.test_guild_browser import live

__all__ = ["new_page"]  # the fixture, re-exported for pytest

pytestmark = [pytest.mark.browser, pytest.mark.redis]

TOKEN = "security-browser-operator-token"
IMG = "<img src=x onerror=window.__xss=1>"
SCRIPT = "<script>window.__xss=1</script>"
SVG = '"><svg onload="window.__xss=1">'
PAYLOADS = [IMG, SCRIPT, SVG]

# Opens a socket and sends a forged POST; records what happened in window.attack.
ATTACK = """([socketUrl, postUrl]) => {
    const attack = window.attack = {events: [], messages: 0, socketDone: false, post: null};
    const ws = new WebSocket(socketUrl);
    ws.onopen = () => attack.events.push("open");
    ws.onmessage = () => { attack.messages += 1; };
    ws.onerror = () => attack.events.push("error");
    ws.onclose = (event) => {
        attack.events.push("close:" + event.code);
        attack.socketDone = true;
    };
    if (postUrl) {
        fetch(postUrl, {
            method: "POST", credentials: "include", mode: "no-cors",
            headers: {"Content-Type": "text/plain"},
            body: JSON.stringify({name: "Pwned", description: "csrf", open: true}),
        }).then((r) => { attack.post = "answered:" + r.type; },
                (e) => { attack.post = "failed:" + e; });
    } else {
        attack.post = "skipped";
    }
}"""
SOCKET_DONE = "() => window.attack.socketDone && window.attack.post !== null"
OPENED = "() => window.attack.events.includes('open')"


@pytest.fixture
def server(playhouse: Callable[..., ServerProcess]) -> ServerProcess:
    return playhouse(
        PLAYHOUSE_ADMIN_TOKEN=TOKEN,
        PLAYHOUSE_SERVER_COOKIE_SECRET="security-browser-tests-cookie-secret",
    )


class _EvilPage(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<!doctype html><title>free prizes</title><p>nothing to see here</p>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def evil_port() -> Iterator[int]:
    """A tiny HTTP server of the attacker's on another loopback port (a real server, not a
    Playwright route: Chromium's Private Network Access would block a route-fulfilled
    page's requests to 127.0.0.1 itself, and then the test would prove nothing)."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _EvilPage)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(httpd.server_address[1])
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def no_xss(page: Any) -> None:
    """No payload ran and none became markup."""
    assert page.evaluate("() => window.__xss") is None, f"XSS ran on {page.url}"
    assert page.locator("img[src='x']").count() == 0, f"an <img> was injected on {page.url}"
    assert page.locator("svg[onload]").count() == 0, f"an <svg> was injected on {page.url}"
    injected = "() => [...document.scripts].some((s) => s.textContent.includes('__xss'))"
    assert not page.evaluate(injected), f"a <script> was injected on {page.url}"


def broadcast(server: ServerProcess, text: str) -> None:
    """An operator notice, with the bearer token (as a script would send it)."""
    request = urllib.request.Request(
        f"{server.url}/api/admin/broadcast",
        data=json.dumps({"text": text, "expire": 3600}).encode(),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as reply:
        assert reply.status == 201


# --- cross-site WebSocket hijacking and CSRF -----------------------------------------


@pytest.mark.parametrize(
    "attacker",
    [
        # Same site (cookies are per host, not per port: the victim's SameSite=Lax session
        # cookie IS sent), other origin: only the Origin check and XSRF stand in the way.
        pytest.param("http://127.0.0.1:{other}", id="same-site-other-port"),
        # Another site altogether ("localhost" is not the site "127.0.0.1").
        pytest.param("http://localhost:{other}", id="cross-site"),
    ],
)
def test_a_page_of_another_origin_cannot_open_sockets_or_post_as_the_victim(
    new_page: NewPage, server: ServerProcess, attacker: str, evil_port: int
) -> None:
    base = server.url
    victim = Player(new_page(), base, "victim")
    ws = base.replace("http://", "ws://")
    origin = attacker.format(other=evil_port)

    # Control: from the site itself the very same script opens the socket.
    victim.page.evaluate(ATTACK, [f"{ws}/ws/lobby?subscribe-user", None])
    victim.page.wait_for_function(OPENED)

    # The attacker's page, in the victim's browser (same context: the victim's cookies).
    evil = victim.page.context.new_page()
    evil.goto(f"{origin}/prizes.html")
    for path in (
        "/ws/lobby?subscribe-user",
        "/ws/notifications?subscribe-broadcast",
        "/ws/lobby?subscribe-session&subscribe-group",
    ):
        evil.evaluate(ATTACK, [f"{ws}{path}", f"{base}/api/guilds"])
        evil.wait_for_function(SOCKET_DONE)
        attack = evil.evaluate("() => window.attack")
        assert "open" not in attack["events"], (path, attack)
        assert attack["messages"] == 0, (path, attack)
        assert attack["events"][-1] == "close:1006", (path, attack)  # handshake refused
        # Refused by the server (its Origin check), not by the browser.
        wait_for(
            lambda path=path: f"403 GET {path} " in server.tail(400),
            what=f"the server's 403 for {path}",
        )

    # All three handshakes were refused by the Origin check itself (not by the channel
    # policy: on the same site the victim's cookie went along and identified them).
    metrics = urllib.request.urlopen(f"{base}/metrics", timeout=10).read().decode()
    assert 'playhouse_ws_rejected_total{reason="origin"} 3.0' in metrics, [
        line for line in metrics.splitlines() if "rejected" in line
    ]

    # A classic form POST (a top-level navigation) with the victim's cookies, no token.
    evil.set_content(f'<form id="f" method="post" action="{base}/logout"></form>')
    with evil.expect_navigation():
        evil.evaluate("() => document.getElementById('f').submit()")
    assert evil.url == f"{base}/logout"

    # Nothing happened on the victim's behalf: still signed in, no guild founded.
    assert victim.call("GET", "/api/me")["username"] == "victim"
    names = [g["name"] for g in victim.call("GET", "/api/guilds")["guilds"]]
    assert "Pwned" not in names, names
    refused = server.tail(400)
    assert "403 POST /api/guilds" in refused, "the forged POST never reached the server"
    assert "403 POST /logout" in refused, refused
    evil.close()


# --- stored XSS ----------------------------------------------------------------------


def test_game_chat_is_shown_as_text(new_page: NewPage, server: ServerProcess) -> None:
    alice = Player(new_page(), server.url, "alice")
    bob = Player(new_page(), server.url, "bob")
    game_id = start_game(alice, bob, "tictactoe")
    alice.open_game(game_id)
    bob.open_game(game_id)

    alice.page.fill("#chat-text", IMG)  # through the page's own form
    alice.page.press("#chat-text", "Enter")
    for text in (SCRIPT, SVG):  # and through the HTTP API
        alice.call("POST", f"/api/games/{game_id}/chat", {"text": text})
    for who in (alice, bob):
        expect(who.page.locator("#chat-log .chat-text")).to_have_text(PAYLOADS)
        no_xss(who.page)

    bob.page.reload()  # the history replayed from the server is text as well
    bob.page.wait_for_function(GAME_READY)
    expect(bob.page.locator("#chat-log .chat-text")).to_have_text(PAYLOADS)
    no_xss(bob.page)


def test_guild_description_and_chat_are_shown_as_text(
    new_page: NewPage, server: ServerProcess
) -> None:
    alice = Player(new_page(), server.url, "alice")
    bob = Player(new_page(), server.url, "bob")
    description = f"{IMG} {SCRIPT} {SVG}"
    alice.call(
        "POST", "/api/guilds", {"name": "Xss-Club", "description": description, "open": True}
    )
    bob.call("POST", "/api/guilds/Xss-Club/join")

    bob.page.goto(f"{server.url}/guilds")
    about = bob.page.locator('#guild-list tr[data-guild="Xss-Club"] .guild-about')
    expect(about).to_have_text(description)
    no_xss(bob.page)

    for who in (alice, bob):
        who.page.goto(f"{server.url}/guilds/Xss-Club")
        live(who.page)
        expect(who.page.locator("#guild-description")).to_have_text(description)

    alice.page.fill("#chat-input", IMG)
    alice.page.press("#chat-input", "Enter")
    for text in (SCRIPT, SVG):
        alice.call("POST", "/api/guilds/Xss-Club/chat", {"text": text})
    lines = "#chat-log li.chat-line .chat-text"
    for who in (alice, bob):
        expect(who.page.locator(lines)).to_have_text(PAYLOADS)
        no_xss(who.page)

    bob.page.reload()  # chat history from the server
    live(bob.page)
    expect(bob.page.locator(lines)).to_have_text(PAYLOADS)
    no_xss(bob.page)


def test_admin_notices_are_shown_as_text(new_page: NewPage, server: ServerProcess) -> None:
    player = Player(new_page(), server.url, "victim")
    notice = f"Maintenance {IMG} {SCRIPT} {SVG}"
    broadcast(server, notice)
    shown = toast(player.page, "Maintenance")
    expect(shown.locator(".toast-text")).to_have_text(notice)
    no_xss(player.page)

    # The admin page lists the notice history, rendered by the server's template.
    create_admin(server, "boss", "correct horse battery")
    admin = new_page()
    log_in(admin, server.url, "boss", "correct horse battery")
    admin.goto(f"{server.url}/admin")
    expect(admin.locator("#notices .notice-text").first).to_have_text(notice)
    no_xss(admin)
