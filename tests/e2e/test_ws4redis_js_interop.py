"""The unmodified ``ws4redis.js`` of django-websocket-redis 0.6.0 (with jQuery) against
Playhouse in Chromium: it connects, receives, and stays connected on heartbeats."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import HEARTBEAT, FrameLog, ServerProcess, require, wait_for
from tests.support import RedisProcess

pytestmark = [pytest.mark.browser, pytest.mark.redis, pytest.mark.bypass_csp]

PREFIX = "pfx"
CHANNEL = f"{PREFIX}:broadcast:notifications"
KEEP_ALIVE_MS = 30_000

START_CLIENT = """([uri, heartbeat]) => {
    const log = {connected: 0, connecting: 0, disconnected: [], received: []};
    window.original = log;
    window.client = new WS4Redis({
        uri: uri,
        heartbeat_msg: heartbeat,
        connecting: () => { log.connecting += 1; },
        connected: () => { log.connected += 1; },
        receive_message: (msg) => { log.received.push(msg); },
        disconnected: (evt) => { log.disconnected.push({code: evt.code, reason: evt.reason}); },
    });
}"""


@pytest.fixture(scope="module")
def original_client() -> Path:
    spec = importlib.util.find_spec("ws4redis")
    require(
        spec is not None, "django-websocket-redis is not installed (tests/requirements-interop.txt)"
    )
    assert spec is not None and spec.submodule_search_locations
    path = Path(next(iter(spec.submodule_search_locations))) / "static" / "js" / "ws4redis.js"
    assert path.is_file(), path
    return path


def serve_file(path: Path) -> Callable[[Any], None]:
    def fulfill(route: Any) -> None:
        route.fulfill(path=str(path), content_type="text/javascript")

    return fulfill


def test_original_client_connects_receives_and_keeps_alive(
    page: Any,
    jquery: Path,
    original_client: Path,
    playhouse: Callable[..., ServerProcess],
    redis_server: RedisProcess,
) -> None:
    server = playhouse(PLAYHOUSE_WS4REDIS_PREFIX=PREFIX)
    frames = FrameLog(page)
    console_errors: list[str] = []
    page.on("console", lambda msg: msg.type == "error" and console_errors.append(msg.text))
    # Our own client scripts are served empty: the only socket is the original's.
    page.route(
        "**/static/*.js*",
        lambda route: route.fulfill(status=200, content_type="text/javascript", body=""),
    )
    # Served as same-origin files, so the page's CSP (script-src 'self') allows them.
    for name, path in (("jquery.js", jquery), ("ws4redis.js", original_client)):
        page.route(f"**/vendor/{name}", serve_file(path))
    page.goto(f"{server.url}/")
    page.add_script_tag(url=f"{server.url}/vendor/jquery.js")
    page.add_script_tag(url=f"{server.url}/vendor/ws4redis.js")
    assert page.evaluate("typeof jQuery.Deferred === 'function' && WS4Redis.length === 2")

    uri = f"ws://127.0.0.1:{server.port}/ws/notifications?subscribe-broadcast"
    page.evaluate(START_CLIENT, [uri, HEARTBEAT])
    page.wait_for_function("window.original.connected === 1")
    wait_for(lambda: redis_server.numsub(CHANNEL) == 1, what=f"a subscriber on {CHANNEL}")

    first = json.dumps({"hello": "wörld", "dice": "🎲🎲"}, ensure_ascii=False)
    redis_server.client().publish(CHANNEL, first.encode())
    page.wait_for_function("m => window.original.received.includes(m)", arg=first)

    # The point of this test: 30 s of idle connection on heartbeats alone.
    page.wait_for_timeout(KEEP_ALIVE_MS)

    log = page.evaluate("window.original")
    assert log["connected"] == 1, log
    assert log["connecting"] == 1, log
    assert log["disconnected"] == [], log
    assert page.evaluate("window.client.is_connected()")
    assert frames.sockets == 1
    assert frames.sent.count(HEARTBEAT) >= 5, "ws4redis.js sends one every 5 s"
    assert frames.received.count(HEARTBEAT) >= 5, "and gets each answered"
    assert HEARTBEAT not in log["received"]

    last = "still here — après 30 s ✓"
    redis_server.client().publish(CHANNEL, last.encode())
    page.wait_for_function("m => window.original.received.includes(m)", arg=last)
    assert page.evaluate("window.original.received") == [first, last]
    assert console_errors == [], console_errors
