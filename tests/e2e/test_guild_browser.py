"""Guilds in Chromium, each player in a browser context of their own, against ``server.py``.

alice founds a guild through the /guilds form and lands on its page; bob joins from
the guild page and appears, online, on alice's page without a reload; the chat works
both ways and shows markup as literal text. In a closed guild carol asks to join, the
request reaches alice live, alice accepts and carol's page turns into the member view.
Statuses follow presence live (offline and back online), and a challenge sent from the
guild page and accepted on the other guild page takes both players to the same game.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import ServerProcess
from tests.e2e.test_lobby_browser import NewPage, new_page, register

__all__ = ["new_page"]  # the fixture, re-exported for pytest

pytestmark = [pytest.mark.browser, pytest.mark.redis]

GUILD_READY = "() => document.getElementById('guild')?.dataset.state === 'ready'"
GUILD_OPEN = (
    "() => ['guild', 'lobby'].every("
    "(s) => window.playhouseGuild?.sockets[s]?.readyState === WebSocket.OPEN)"
)


def found(page: Any, base: str, name: str, *, open_: bool = True, about: str = "") -> None:
    """Found a guild through the /guilds form; lands on the guild page, live."""
    page.goto(f"{base}/guilds")
    page.fill("#guild-name-input", name)
    page.fill("#guild-description-input", about)
    page.locator("#guild-open-input").set_checked(open_)
    page.click("#create-submit")
    page.wait_for_url(f"{base}/guilds/{name}")
    live(page)


def visit(page: Any, base: str, name: str) -> None:
    page.goto(f"{base}/guilds/{name}")
    live(page)


def live(page: Any) -> None:
    page.wait_for_function(GUILD_READY)
    page.wait_for_function(GUILD_OPEN)


def member(page: Any, name: str) -> Any:
    return page.locator(f'#members li[data-user="{name}"]')


def say(page: Any, text: str) -> None:
    page.fill("#chat-input", text)
    page.press("#chat-input", "Enter")
    expect(page.locator("#chat-input")).to_have_value("")


def chat_line(page: Any, text: str) -> Any:
    return page.locator("#chat-log li.chat-line", has_text=text)


@pytest.fixture
def base(playhouse: Callable[..., ServerProcess]) -> str:
    # A short presence grace, so "offline" shows within a second of leaving.
    return playhouse(PLAYHOUSE_PRESENCE_GRACE="0.5").url


def test_found_join_see_online_and_chat_both_ways(new_page: NewPage, base: str) -> None:
    alice, bob = new_page(), new_page()
    register(alice, base, "alice")
    register(bob, base, "bob")

    # A bad name is refused under its field; then the guild is founded.
    alice.goto(f"{base}/guilds")
    expect(alice.locator("#no-guilds")).to_be_visible()
    alice.fill("#guild-name-input", "no spaces")
    alice.click("#create-submit")
    expect(alice.locator("#guild-name-error")).to_contain_text("3-32 letters")
    expect(alice.locator("#guild-name-input")).to_have_attribute("aria-invalid", "true")
    found(alice, base, "Knights", about="Of the round table")
    expect(alice.locator("#guild")).to_have_attribute("data-standing", "owner")
    expect(alice.locator("#guild-description")).to_have_text("Of the round table")
    expect(member(alice, "alice")).to_contain_text("owner")
    expect(alice.locator("#chat-panel")).to_be_visible()

    # bob sees it listed, opens it and joins; alice sees him appear, online, live.
    bob.goto(f"{base}/guilds")
    row = bob.locator('#guild-list tr[data-guild="Knights"]')
    expect(row).to_contain_text("alice")
    expect(row).to_contain_text("open")
    row.locator("a.guild-link").click()
    bob.wait_for_url(f"{base}/guilds/Knights")
    live(bob)
    expect(bob.locator("#chat-panel")).to_be_hidden()
    expect(bob.locator("#guild-join")).to_have_text("Join")
    bob.click("#guild-join")
    expect(bob.locator("#guild")).to_have_attribute("data-standing", "member")
    expect(bob.locator("#guild-leave")).to_have_text("Leave")
    expect(member(alice, "bob")).to_contain_text("member")
    expect(member(alice, "bob").locator(".player-status")).to_have_text("online")
    expect(member(bob, "alice").locator(".player-status")).to_have_text("online")
    expect(alice.locator("#guild-members-count")).to_have_text("2")

    # Chat both ways; markup is shown as text, never parsed.
    expect(bob.locator("#chat-panel")).to_be_visible()
    say(alice, "hello bob")
    expect(chat_line(bob, "hello bob").locator(".chat-from")).to_have_text("alice")
    say(bob, "<b>html</b>")
    line = chat_line(alice, "<b>html</b>")
    expect(line.locator(".chat-text")).to_have_text("<b>html</b>")
    expect(line.locator(".chat-from")).to_have_text("bob")
    assert alice.locator("#chat-log .chat-text b").count() == 0
    expect(bob.locator("#chat-log li.chat-line")).to_have_count(2)  # own line once

    # A reload brings the history back.
    bob.reload()
    live(bob)
    expect(bob.locator("#chat-log li.chat-line")).to_have_count(2)
    expect(chat_line(bob, "<b>html</b>").locator(".chat-text")).to_have_text("<b>html</b>")

    # bob goes away: offline on alice's page; back: online again, no reload for alice.
    bob.goto("about:blank")
    expect(member(alice, "bob").locator(".player-status")).to_have_text("offline")
    expect(member(alice, "bob").locator("button.challenge")).to_be_hidden()
    visit(bob, base, "Knights")
    expect(member(alice, "bob").locator(".player-status")).to_have_text("online")

    # bob leaves: gone from alice's list live.
    bob.click("#guild-leave")
    expect(bob.locator("#guild")).to_have_attribute("data-standing", "none")
    expect(bob.locator("#chat-panel")).to_be_hidden()
    expect(member(alice, "bob")).to_have_count(0)


def test_closed_guild_request_is_accepted_live(new_page: NewPage, base: str) -> None:
    alice, carol = new_page(), new_page()
    register(alice, base, "alice")
    register(carol, base, "carol")
    found(alice, base, "Castle", open_=False)
    expect(alice.locator("#guild-open")).to_contain_text("Closed")
    expect(alice.locator("#requests-panel")).to_be_visible()
    expect(alice.locator("#requests li")).to_have_count(0)

    visit(carol, base, "castle")  # any letter case
    expect(carol.locator("#guild-join")).to_have_text("Ask to join")
    carol.click("#guild-join")
    expect(carol.locator("#guild")).to_have_attribute("data-standing", "pending")
    expect(carol.locator("#guild-leave")).to_have_text("Withdraw request")
    expect(carol.locator("#chat-panel")).to_be_hidden()

    request = alice.locator('#requests li[data-user="carol"]')
    expect(request).to_be_visible()
    expect(alice.locator("#guild-news")).to_contain_text("carol asks to join")
    request.locator("button.accept").click()
    expect(request).to_have_count(0)

    expect(carol.locator("#guild")).to_have_attribute("data-standing", "member")
    expect(carol.locator("#chat-panel")).to_be_visible()
    expect(carol.locator("#guild-news")).to_contain_text("now a member")
    expect(member(carol, "carol").locator(".player-status")).to_have_text("online")
    expect(member(alice, "carol").locator(".player-status")).to_have_text("online")

    # The group socket was re-planned in place: chat reaches carol without a reload.
    say(alice, "welcome carol")
    expect(chat_line(carol, "welcome carol")).to_be_visible()
    # The owner's tools: only on alice's page, not for herself.
    expect(member(alice, "carol").locator("button.make-owner")).to_be_visible()
    expect(member(alice, "alice").locator("button.remove")).to_be_hidden()
    expect(member(carol, "alice").locator("button.remove")).to_be_hidden()


def test_challenge_from_the_guild_page_starts_a_game(new_page: NewPage, base: str) -> None:
    alice, bob = new_page(), new_page()
    register(alice, base, "alice")
    register(bob, base, "bob")
    found(alice, base, "Knights")
    visit(bob, base, "Knights")
    bob.click("#guild-join")
    expect(member(alice, "alice").locator("button.challenge")).to_be_hidden()  # not myself

    row = member(alice, "bob")
    expect(row.locator(".player-status")).to_have_text("online")
    expect(row.locator("select.challenge-game option[value='connect4']")).to_have_count(1)
    row.locator("select.challenge-game").select_option("connect4")
    row.locator("button.challenge").click()
    sent = alice.locator("#outgoing li[data-challenge]")
    expect(sent).to_contain_text("Connect Four vs bob")

    offer = bob.locator("#incoming li[data-challenge]")
    expect(offer).to_contain_text("alice challenges you to Connect Four")
    offer.locator("button.accept").click()

    game_url = re.compile(re.escape(base) + r"/game/[0-9a-f]{16}$")
    bob.wait_for_url(game_url)  # from the accept call's answer
    alice.wait_for_url(game_url)  # from game_started on her lobby socket
    assert alice.url == bob.url
