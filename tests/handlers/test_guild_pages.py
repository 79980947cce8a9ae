"""``/guilds`` and ``/guilds/<name>``: signed-in pages; signed out → /login; unknown → 404."""

from __future__ import annotations

import html

from tornado.httpclient import AsyncHTTPClient

from tests.conftest import MakeInstance
from tests.handlers.test_accounts_api import Browser
from tests.handlers.test_lobby_api import http, player

__all__ = ["http"]  # the fixture, re-exported for pytest


async def test_the_list_shows_guilds_mine_marked_and_the_form(
    make_instance: MakeInstance, http: AsyncHTTPClient
) -> None:
    instance = await make_instance()
    alice, bob = await player(http, instance, "alice"), await player(http, instance, "bob")
    empty = (await alice.call("GET", "/guilds")).body.decode()
    assert 'id="no-guilds"' in empty and 'id="create-guild"' in empty
    body = {"name": "Knights", "description": "<b>round</b> table", "open": False}
    assert (await alice.call("POST", "/api/guilds", body)).code == 201

    for who, member in ((alice, True), (bob, False)):
        page = await who.call("GET", "/guilds")
        assert page.code == 200
        text = page.body.decode()
        assert 'href="/guilds/Knights"' in text
        assert "&lt;b&gt;round&lt;/b&gt; table" in text and "<b>round</b>" not in text
        assert ">closed<" in text
        assert ('class="is-member"' in text) is member
        assert '<a class="nav-link" href="/guilds">Guilds</a>' in text
        assert "/static/guilds.js" in text and "/static/challenges.js" in text
        assert "<script>" not in text, "no inline script (CSP)"


async def test_the_guild_page_carries_the_guild_and_my_standing(
    make_instance: MakeInstance, http: AsyncHTTPClient
) -> None:
    instance = await make_instance()
    alice, bob = await player(http, instance, "alice"), await player(http, instance, "bob")
    body = {"name": "Knights", "description": "Ni! & co", "open": True}
    assert (await alice.call("POST", "/api/guilds", body)).code == 201

    page = await bob.call("GET", "/guilds/knights")  # any letter case
    assert page.code == 200
    text = page.body.decode()
    assert 'data-guild="Knights"' in text and 'data-me="bob"' in text
    assert "Ni! &amp; co" in text
    assert html.escape("You are not a member.", quote=False) in text
    assert 'data-user="alice"' in text and "owner" in text
    assert 'maxlength="500"' in text and 'for="chat-input"' in text
    assert "/static/guild.js" in text and "/static/challenges.js" in text
    assert "<script>" not in text, "no inline script (CSP)"

    own = (await alice.call("GET", "/guilds/Knights")).body.decode()
    assert "You own this guild." in own


async def test_signed_out_goes_to_login_and_an_unknown_guild_is_404(
    make_instance: MakeInstance, http: AsyncHTTPClient
) -> None:
    instance = await make_instance()
    stranger = Browser(http, instance)
    for path in ("/guilds", "/guilds/Knights"):
        response = await stranger.call("GET", path)
        assert response.code == 302, path
        assert response.headers["Location"] == f"/login?next={path}"

    alice = await player(http, instance, "alice")
    missing = await alice.call("GET", "/guilds/Nobody")
    assert missing.code == 404
    text = missing.body.decode()
    assert "Page not found" in text and "Nobody" in text
