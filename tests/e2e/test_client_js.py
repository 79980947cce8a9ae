"""Our ``static/ws4redis.js`` on the index page in Chromium: it connects, shows
messages (never the heartbeat) and reconnects by itself after a server restart."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.conftest import HEARTBEAT, FrameLog, ServerProcess, wait_for
from tests.support import RedisProcess

pytestmark = [pytest.mark.browser, pytest.mark.redis]

CHANNEL = "broadcast:notifications"
STATUS_IS = "s => document.getElementById('status').textContent === s"
SHOWN = """m => window.playhouseIndex.received.includes(m)
    && [...document.querySelectorAll('#messages li')].some(li => li.textContent === m)"""
LIST = "[...document.querySelectorAll('#messages li')].map(li => li.textContent)"


def publish(redis_server: RedisProcess, message: str) -> None:
    """PUBLISH once the instance is subscribed (as ws4redis' publisher would)."""
    wait_for(lambda: redis_server.numsub(CHANNEL) == 1, what=f"a subscriber on {CHANNEL}")
    redis_server.client().publish(CHANNEL, message.encode())


@pytest.mark.parametrize("stop", ["sigterm", "sigkill"])
def test_index_connects_shows_messages_and_survives_a_restart(
    page: Any, playhouse: Callable[..., ServerProcess], redis_server: RedisProcess, stop: str
) -> None:
    server = playhouse()
    frames = FrameLog(page)
    page.goto(f"{server.url}/")
    page.wait_for_function(STATUS_IS, arg="connected")
    assert page.evaluate("document.getElementById('status').className") == (
        "status status-connected"
    )

    before = "vor dem Neustart: <b>not bold</b> & ünïcödé 🎲"
    publish(redis_server, before)
    page.wait_for_function(SHOWN, arg=before)
    frames.wait_for(lambda: HEARTBEAT in frames.received, what="a heartbeat from the server")
    assert page.evaluate("document.querySelectorAll('#messages li b').length") == 0

    if stop == "sigterm":  # a graceful restart: drain closes the socket with 1001
        assert server.stop() == 0, server.tail()
    else:  # a crash: the socket just goes away
        server.kill()
    page.wait_for_function(f"!({STATUS_IS})('connected')")
    wait_for(lambda: redis_server.numsub(CHANNEL) == 0, what="the old instance gone from Redis")
    server.start()  # on the same port
    page.wait_for_function(STATUS_IS, arg="connected", timeout=30_000)

    after = "nach dem Neustart ✓"
    publish(redis_server, after)
    page.wait_for_function(SHOWN, arg=after)
    heartbeats = frames.received.count(HEARTBEAT)
    frames.wait_for(
        lambda: frames.received.count(HEARTBEAT) > heartbeats,
        what="a heartbeat on the new connection",
    )

    assert frames.sockets >= 2, "a new socket after the restart"
    assert page.evaluate("window.playhouseIndex.received") == [before, after]
    assert page.evaluate(LIST) == [after, before], "newest first, heartbeats never listed"
