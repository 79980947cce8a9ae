"""A signed-in player whose browser dies without a goodbye: pings reap the socket within
interval + timeout, and the lobby shows them offline after the presence grace."""

from __future__ import annotations

import time

from tornado.httpclient import AsyncHTTPClient

from tests.conftest import MakeInstance
from tests.handlers.test_lobby_api import http, player
from tests.support import raw_websocket, wait_until

__all__ = ["http"]  # the fixture, re-exported for pytest


async def test_a_dead_player_is_reaped_then_goes_offline(
    make_instance: MakeInstance,
    http: AsyncHTTPClient,
) -> None:
    interval, timeout, grace = 0.3, 0.3, 0.3
    instance = await make_instance(
        **{
            "limits.ping_interval": interval,
            "limits.ping_timeout": timeout,
            "presence.grace": grace,
        }
    )
    deps = instance.deps
    assert deps is not None
    bob = await player(http, instance, "bob")
    _reader, writer = await raw_websocket(
        instance.port, "/ws/lobby?subscribe-user", headers={"Cookie": bob.cookie_header()}
    )
    try:

        async def bob_is(status: str | None) -> bool:
            return (await deps.presence.online()).get("bob") == status

        await wait_until(lambda: bob_is("online"), what="bob online")
        started = time.monotonic()  # from here on bob's "browser" never answers a ping
        await wait_until(lambda: len(deps.connections) == 0, timeout=5, what="bob reaped")
        assert time.monotonic() - started <= interval + timeout + 0.5
        await wait_until(lambda: bob_is(None), timeout=5, what="bob offline")
        assert time.monotonic() - started <= interval + timeout + grace + 1.0
        assert deps.metrics.ping_timeouts._value.get() == 1
    finally:
        writer.close()
