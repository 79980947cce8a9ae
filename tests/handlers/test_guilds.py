"""Guilds over real HTTP and sockets: membership, requests, group channels, chat, races."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from tornado.httpclient import AsyncHTTPClient, HTTPResponse
from tornado.websocket import WebSocketClientConnection

from app.runtime import Instance
from tests.handlers.test_accounts_api import Browser, assert_error, data
from tests.handlers.test_lobby_api import (
    http,  # noqa: F401 (fixture)
    message,
    player,
    user_socket,
)
from tests.support import wait_until

GUILD_SOCKET = "/ws/guild?subscribe-user&subscribe-group"


async def create(browser: Browser, name: str, *, open_: bool = True, **extra: Any) -> HTTPResponse:
    body = {"name": name, "description": f"the {name} guild", "open": open_, **extra}
    return await browser.call("POST", "/api/guilds", body)


async def guild_act(browser: Browser, guild: str, action: str, body: Any = None) -> HTTPResponse:
    if body is None:
        return await browser.call("POST", f"/api/guilds/{guild}/{action}")
    return await browser.call("POST", f"/api/guilds/{guild}/{action}", body)


async def view(browser: Browser, guild: str) -> Any:
    response = await browser.call("GET", f"/api/guilds/{guild}")
    assert response.code == 200, response.body
    return data(response)


async def say(browser: Browser, guild: str, text: Any) -> HTTPResponse:
    return await browser.call("POST", f"/api/guilds/{guild}/chat", {"text": text})


async def guild_socket(browser: Browser, name: str) -> WebSocketClientConnection:
    """The guild page's socket (own user channel and every group channel)."""
    return await user_socket(browser, GUILD_SOCKET, f"user:{name}:guild")


async def until(conn: WebSocketClientConnection, kind: str) -> Any:
    while True:
        msg = await asyncio.wait_for(message(conn), timeout=5)
        if msg.get("type") == kind:
            return msg


async def group_subscribed(instance: Instance, guild: str, sockets: int) -> None:
    registry = instance.deps.pubsub.registry  # type: ignore[union-attr]
    channel = f"group:{guild}:guild"
    await wait_until(
        lambda: registry.subscribers(channel) == sockets, what=f"{sockets} socket(s) on {channel}"
    )


async def test_open_guild_create_join_view_and_list(started: Any, http: AsyncHTTPClient) -> None:  # noqa: F811
    instance = await started()
    alice, bob = await player(http, instance, "alice"), await player(http, instance, "bob")

    created = await create(alice, "Knights")
    assert created.code == 201, created.body
    assert data(created)["owner"] == "alice" and data(created)["members"] == 1
    assert_error(await create(bob, "KNIGHTS"), 409, "guild_taken")  # any letter case
    assert_error(await create(bob, "no spaces"), 400, "invalid", "name")
    assert_error(await create(bob, "x" * 40), 400, "invalid", "name")
    assert_error(await create(bob, "Fine", description="d" * 281), 400, "invalid", "description")

    alice_socket = await guild_socket(alice, "alice")
    joined = await guild_act(bob, "knights", "join")  # the URL takes any letter case
    assert joined.code == 200 and data(joined) == {"state": "member", "guild": "Knights"}
    assert await until(alice_socket, "guild_member") == {
        "type": "guild_member",
        "username": "bob",
        "change": "joined",
        "guild": "Knights",
    }
    assert_error(await guild_act(bob, "Knights", "join"), 409, "already_member")

    seen = await view(bob, "Knights")
    assert seen["guild"]["members"] == 2
    assert [(m["username"], m["role"]) for m in seen["members"]] == [
        ("alice", "owner"),
        ("bob", "member"),
    ]
    assert seen["members"][0]["status"] == "online"  # alice's socket is open
    assert seen["members"][1]["status"] == "offline"
    assert seen["me"] == {"member": True, "owner": False, "pending": False}

    listing = data(await bob.call("GET", "/api/guilds"))
    assert listing["mine"] == ["Knights"]
    assert [(g["name"], g["members"], g["member"]) for g in listing["guilds"]] == [
        ("Knights", 2, True)
    ]
    assert_error(await bob.call("GET", "/api/guilds/Nobody"), 404, "no_guild")
    signed_out = Browser(http, instance)
    assert_error(await signed_out.call("GET", "/api/guilds"), 401, "not_signed_in")


async def test_closed_guild_request_accept_decline_live(
    started: Any,
    http: AsyncHTTPClient,  # noqa: F811
) -> None:
    instance = await started()
    owner, bob, carol = [await player(http, instance, n) for n in ("owner", "bob", "carol")]
    assert (await create(owner, "Vault", open_=False)).code == 201
    owner_socket, bob_socket = await guild_socket(owner, "owner"), await guild_socket(bob, "bob")

    asked = await guild_act(bob, "Vault", "join")
    assert data(asked) == {"state": "pending", "guild": "Vault"}
    assert await until(owner_socket, "guild_request") == {
        "type": "guild_request",
        "guild": "Vault",
        "username": "bob",
    }
    assert data(await guild_act(bob, "Vault", "join"))["state"] == "pending"  # idempotent
    assert (await view(bob, "Vault"))["me"]["pending"] is True
    assert [r["username"] for r in (await view(owner, "Vault"))["requests"]] == ["bob"]
    assert (await view(bob, "Vault"))["requests"] == []  # only the owner sees them

    assert_error(await guild_act(carol, "Vault", "requests/bob/accept"), 403, "not_owner")
    accepted = await guild_act(owner, "Vault", "requests/bob/accept")
    assert data(accepted) == {"username": "bob", "accepted": True}
    assert await until(bob_socket, "guild_answer") == {
        "type": "guild_answer",
        "guild": "Vault",
        "accepted": True,
    }
    assert (await view(bob, "Vault"))["me"]["member"] is True
    assert_error(await guild_act(owner, "Vault", "requests/bob/decline"), 409, "no_request")

    assert data(await guild_act(carol, "Vault", "join"))["state"] == "pending"
    declined = await guild_act(owner, "Vault", "requests/carol/decline")
    assert data(declined) == {"username": "carol", "accepted": False}
    assert (await view(carol, "Vault"))["me"] == {"member": False, "owner": False, "pending": False}
    assert_error(await guild_act(owner, "Vault", "requests/carol/explode"), 404, "not_found")


async def test_accept_and_decline_at_once_exactly_one_wins(
    started: Any,
    http: AsyncHTTPClient,  # noqa: F811
) -> None:
    instance = await started()
    owner = await player(http, instance, "owner")
    assert (await create(owner, "Vault", open_=False)).code == 201
    for round_ in range(5):
        name = f"asker{round_}"
        asker = await player(http, instance, name)
        assert data(await guild_act(asker, "Vault", "join"))["state"] == "pending"
        answers = await asyncio.gather(
            *(
                guild_act(owner, "Vault", f"requests/{name}/{verb}")
                for verb in ("accept", "decline", "accept", "decline")
            )
        )
        codes = sorted(a.code for a in answers)
        assert codes == [200, 409, 409, 409], [(a.code, a.body) for a in answers]
        won = data(next(a for a in answers if a.code == 200))
        member = (await view(asker, "Vault"))["me"]["member"]
        assert member is won["accepted"]
    members = (await view(owner, "Vault"))["members"]
    assert (await view(owner, "Vault"))["guild"]["members"] == len(members)


async def test_group_channel_follows_membership_live(
    started: Any,
    http: AsyncHTTPClient,  # noqa: F811
) -> None:
    """A socket opened before joining gets the guild's channel on join, loses it on removal;
    a non-member never gets it."""
    instance = await started()
    alice, bob, eve = [await player(http, instance, n) for n in ("alice", "bob", "eve")]
    assert (await create(alice, "Knights")).code == 201
    alice_socket = await guild_socket(alice, "alice")
    bob_socket, eve_socket = await guild_socket(bob, "bob"), await guild_socket(eve, "eve")
    await group_subscribed(instance, "Knights", 1)

    assert (await guild_act(bob, "Knights", "join")).code == 200
    await group_subscribed(instance, "Knights", 2)  # bob's open socket, re-planned in place
    assert_error(await say(eve, "Knights", "let me in"), 403, "not_member")
    posted = await say(bob, "Knights", "hello <b>knights</b>\x07")
    assert posted.code == 201, posted.body
    line = data(posted)
    assert (line["from"], line["text"], line["seq"]) == ("bob", "hello <b>knights</b>", 1)
    for conn in (alice_socket, bob_socket):
        assert await until(conn, "guild_chat") == line

    removed = await guild_act(alice, "Knights", "members/bob/remove")
    assert data(removed) == {"removed": "bob"}
    assert (await until(bob_socket, "guild_member"))["change"] == "removed"
    await group_subscribed(instance, "Knights", 1)
    assert_error(await say(bob, "Knights", "still here?"), 403, "not_member")
    assert (await say(alice, "Knights", "bye bob")).code == 201
    assert (await until(alice_socket, "guild_chat"))["text"] == "bye bob"
    # Neither eve (never a member) nor bob (removed) got that line: the next thing on
    # their sockets is a message sent to them after it.
    for name, conn in (("eve", eve_socket), ("bob", bob_socket)):
        await instance.deps.pubsub.publisher("guild", users=[name]).publish(  # type: ignore[union-attr]
            json.dumps({"type": "marker"}), expire=0
        )
        assert (await until(conn, "marker")) == {"type": "marker"}
    assert eve_socket.close_code is None


async def test_chat_limits_history_and_rate(started: Any, http: AsyncHTTPClient) -> None:  # noqa: F811
    instance = await started()
    alice = await player(http, instance, "alice")
    assert (await create(alice, "Scribes")).code == 201
    guilds = instance.deps.guilds  # type: ignore[union-attr]
    guilds.limits.chat_per_window = 1000
    assert_error(await say(alice, "Scribes", ""), 400, "bad_chat")
    assert_error(await say(alice, "Scribes", "x" * 501), 400, "bad_chat")
    assert_error(await say(alice, "Scribes", 42), 400, "bad_chat")
    assert (await say(alice, "Scribes", "x" * 500)).code == 201
    for n in range(2, 106):
        assert (await say(alice, "Scribes", f"line {n}")).code == 201
    history = data(await alice.call("GET", "/api/guilds/Scribes/chat"))["messages"]
    assert [m["seq"] for m in history] == list(range(6, 106))
    assert history[-1]["text"] == "line 105"

    guilds.limits.chat_per_window = 3
    guilds.limits.chat_window = 60
    answers = [await say(alice, "Scribes", f"burst {n}") for n in range(5)]
    assert [a.code for a in answers].count(429) >= 1
    outsider = await player(http, instance, "outsider")
    assert_error(await outsider.call("GET", "/api/guilds/Scribes/chat"), 403, "not_member")


async def test_owner_leaving_and_hand_over(started: Any, http: AsyncHTTPClient) -> None:  # noqa: F811
    instance = await started()
    alice, bob = await player(http, instance, "alice"), await player(http, instance, "bob")
    assert (await create(alice, "Knights")).code == 201
    assert (await guild_act(bob, "Knights", "join")).code == 200
    assert_error(await guild_act(alice, "Knights", "leave"), 409, "owner_must_hand_over")
    assert_error(await guild_act(bob, "Knights", "owner", {"username": "bob"}), 403, "not_owner")
    assert_error(
        await guild_act(alice, "Knights", "owner", {"username": "nobody"}), 409, "not_member"
    )
    assert_error(await guild_act(alice, "Knights", "owner", {}), 400, "invalid")
    handed = await guild_act(alice, "Knights", "owner", {"username": "BOB"})
    assert data(handed) == {"owner": "bob"}
    assert data(await guild_act(alice, "Knights", "leave")) == {"left": "Knights"}
    assert_error(await guild_act(alice, "Knights", "leave"), 409, "not_member")
    assert data(await guild_act(bob, "Knights", "leave")) == {"left": "Knights", "dissolved": True}
    assert_error(await bob.call("GET", "/api/guilds/Knights"), 404, "no_guild")
    assert data(await bob.call("GET", "/api/guilds"))["mine"] == []


async def test_two_owner_actions_at_once_leave_a_consistent_guild(
    started: Any,
    http: AsyncHTTPClient,  # noqa: F811
) -> None:
    """Hand-over to bob racing bob's leaving, and racing bob's removal, and two hand-overs:
    whatever wins, the owner is a member and the count matches the members."""
    instance = await started()
    alice, bob, carol = [await player(http, instance, n) for n in ("alice", "bob", "carol")]
    for round_ in range(6):
        name = f"Guild{round_}"
        assert (await create(alice, name)).code == 201
        assert (await guild_act(bob, name, "join")).code == 200
        assert (await guild_act(carol, name, "join")).code == 200
        if round_ % 3 == 0:
            racing = [
                guild_act(alice, name, "owner", {"username": "bob"}),
                guild_act(bob, name, "leave"),
            ]
        elif round_ % 3 == 1:
            racing = [
                guild_act(alice, name, "owner", {"username": "bob"}),
                guild_act(alice, name, "members/bob/remove"),
            ]
        else:
            racing = [
                guild_act(alice, name, "owner", {"username": "bob"}),
                guild_act(alice, name, "owner", {"username": "carol"}),
            ]
        answers = await asyncio.gather(*racing)
        assert all(a.code in (200, 409) for a in answers), [(a.code, a.body) for a in answers]
        seen = await view(carol, name)
        members = [m["username"] for m in seen["members"]]
        owner = seen["guild"]["owner"]
        assert owner in members, (round_, owner, members)
        assert seen["guild"]["members"] == len(members), (round_, seen)
        if round_ % 3 == 2:
            assert [a.code for a in answers].count(200) == 1


async def test_joins_and_creates_racing(started: Any, http: AsyncHTTPClient) -> None:  # noqa: F811
    instance = await started()
    alice, bob = await player(http, instance, "alice"), await player(http, instance, "bob")
    creates = await asyncio.gather(create(alice, "Twins"), create(bob, "twins"))
    assert sorted(c.code for c in creates) == [201, 409]
    owner, other = (alice, bob) if creates[0].code == 201 else (bob, alice)
    joins = await asyncio.gather(*(guild_act(other, "Twins", "join") for _ in range(8)))
    assert sorted(j.code for j in joins) == [200] + [409] * 7
    assert (await view(owner, "Twins"))["guild"]["members"] == 2


async def test_lobby_filters_players_by_guild(started: Any, http: AsyncHTTPClient) -> None:  # noqa: F811
    instance = await started()
    alice, bob, eve = [await player(http, instance, n) for n in ("alice", "bob", "eve")]
    assert (await create(alice, "Knights")).code == 201
    assert (await guild_act(bob, "Knights", "join")).code == 200
    sockets = [await guild_socket(b, n) for b, n in ((alice, "alice"), (bob, "bob"), (eve, "eve"))]

    async def everyone_online() -> bool:
        lobby = data(await alice.call("GET", "/api/lobby"))
        return {p["username"] for p in lobby["online"]} == {"alice", "bob", "eve"}

    await wait_until(everyone_online, what="three players online")
    filtered = data(await alice.call("GET", "/api/lobby?guild=knights"))
    assert [p["username"] for p in filtered["online"]] == ["alice", "bob"]
    assert filtered["guild"] == "knights"
    assert sorted(filtered["guild_members"]) == ["alice", "bob"]  # online or not
    assert filtered["my_guilds"] == ["Knights"]
    everyone = data(await eve.call("GET", "/api/lobby"))
    assert (everyone["guild_members"], everyone["my_guilds"]) == (None, [])
    assert_error(await alice.call("GET", "/api/lobby?guild=Nobody"), 404, "no_guild")
    assert len(sockets) == 3
