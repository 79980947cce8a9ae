"""Guilds are ws4redis groups: ws4redis' ``RedisPublisher(groups=[...])`` from another
process reaches a guild's members on ``?subscribe-group``, and nobody else."""

from __future__ import annotations

from tornado.httpclient import AsyncHTTPClient

from app.runtime import Instance
from tests.handlers.test_accounts_api import data
from tests.handlers.test_guilds import create, guild_act
from tests.handlers.test_lobby_api import player, user_socket
from tests.interop.conftest import RunWs4Redis, publish, text
from tests.interop.test_ws4redis_publisher import (  # noqa: F401 (fixtures)
    channel,
    next_message,
    prefix,
    server,
    sockets,
    subscribed,
)
from tests.support import RedisProcess


async def test_ws4redis_group_publish_reaches_members_only(
    server: Instance,  # noqa: F811
    redis_server: RedisProcess,
    run_ws4redis: RunWs4Redis,
    prefix: str,  # noqa: F811
) -> None:
    http = AsyncHTTPClient(force_instance=True)
    try:
        alice, bob, eve = [await player(http, server, n) for n in ("alice", "bob", "eve")]
        assert (await create(alice, "Knights")).code == 201
        assert data(await guild_act(bob, "Knights", "join"))["state"] == "member"
        path = "/ws/quests?subscribe-group&subscribe-user"
        member_sockets = [
            await user_socket(alice, path, channel(prefix, "user", "quests", "alice")),
            await user_socket(bob, path, channel(prefix, "user", "quests", "bob")),
        ]
        outsider = await user_socket(eve, path, channel(prefix, "user", "quests", "eve"))
        await subscribed(server, redis_server, channel(prefix, "group", "quests", "Knights"), 2)

        await run_ws4redis(
            publish("quests", text("to the Knights, from ws4redis"), groups=["Knights"]),
            publish("quests", text("just for eve"), users=["eve"]),
            prefix=prefix,
        )

        for conn in member_sockets:
            assert await next_message(conn) == "to the Knights, from ws4redis"
        assert await next_message(outsider) == "just for eve", "the group message skipped eve"
        for conn in (*member_sockets, outsider):
            conn.close()
    finally:
        http.close()
