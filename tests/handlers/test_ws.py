"""The ws4redis endpoint over real sockets, on LocalBroker and RedisBroker."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.websocket import WebSocketClientConnection

from app.runtime import Instance
from tests.conftest import MakeInstance, http_url, ws_url
from tests.support import recv, wait_until, ws_open

HEARTBEAT = "--heartbeat--"


async def published(instance: Instance, facility: str, message: str, **audience: Any) -> None:
    await instance.deps.pubsub.publisher(facility, **audience).publish(message)  # type: ignore[union-attr]


async def next_non_heartbeat(conn: WebSocketClientConnection, timeout: float = 5.0) -> Any:
    while True:
        message = await recv(conn, timeout)
        if message != HEARTBEAT:
            return message


async def subscribed(instance: Instance, channel: str, count: int = 1) -> None:
    registry = instance.deps.pubsub.registry  # type: ignore[union-attr]
    await wait_until(
        lambda: registry.subscribers(channel) >= count, what=f"subscriber on {channel}"
    )


async def test_broadcast_reaches_every_subscriber_verbatim(started: Any) -> None:
    instance = await started()
    clients = [
        await ws_open(ws_url(instance, "/ws/notifications?subscribe-broadcast")) for _ in range(3)
    ]
    await subscribed(instance, "broadcast:notifications", 3)
    message = '{"type": "notice", "text": "héllo ✓"}'
    await published(instance, "notifications", message, broadcast=True)
    for client in clients:
        assert await next_non_heartbeat(client) == message
    metrics = instance.deps.metrics  # type: ignore[union-attr]
    await wait_until(lambda: metrics.deliveries._value.get() >= 3, what="delivery metric")


async def test_publish_flags_and_echo_suppression(started: Any) -> None:
    instance = await started(**{"channels.publishable": ["chat"]})
    quiet = await ws_open(ws_url(instance, "/ws/chat?subscribe-broadcast&publish-broadcast"))
    echoing = await ws_open(ws_url(instance, "/ws/chat?subscribe-broadcast&publish-broadcast&echo"))
    listener = await ws_open(ws_url(instance, "/ws/chat?subscribe-broadcast"))
    await subscribed(instance, "broadcast:chat", 3)
    await quiet.write_message("from quiet")
    assert await next_non_heartbeat(listener) == "from quiet"
    assert await next_non_heartbeat(echoing) == "from quiet"
    await echoing.write_message("from echoing")
    assert await next_non_heartbeat(echoing) == "from echoing"
    assert await next_non_heartbeat(listener) == "from echoing"
    # ws4redis suppresses only the sender's own last message: quiet got "from echoing"
    # but never "from quiet".
    assert await next_non_heartbeat(quiet) == "from echoing"


async def test_client_heartbeat_is_answered_never_published(started: Any) -> None:
    instance = await started(
        **{"channels.publishable": ["chat"], "limits.heartbeat_interval": 60.0}
    )
    sender = await ws_open(ws_url(instance, "/ws/chat?subscribe-broadcast&publish-broadcast"))
    listener = await ws_open(ws_url(instance, "/ws/chat?subscribe-broadcast"))
    await subscribed(instance, "broadcast:chat", 2)
    await sender.write_message(HEARTBEAT)
    assert await recv(sender) == HEARTBEAT
    await sender.write_message("real")
    assert await recv(listener) == "real"  # the heartbeat never reached the listener


async def test_idle_socket_gets_server_heartbeat(started: Any) -> None:
    instance = await started(**{"limits.heartbeat_interval": 0.4})
    client = await ws_open(ws_url(instance, "/ws/notifications?subscribe-broadcast"))
    opened = time.monotonic()
    assert await recv(client, timeout=2) == HEARTBEAT
    assert time.monotonic() - opened <= 1.0


async def test_no_heartbeat_when_disabled(started: Any) -> None:
    instance = await started(**{"ws4redis.heartbeat": "", "limits.heartbeat_interval": 0.2})
    client = await ws_open(ws_url(instance, "/ws/notifications?subscribe-broadcast"))
    await subscribed(instance, "broadcast:notifications")
    await asyncio.sleep(0.6)  # three sweep periods during which nothing may arrive
    await published(instance, "notifications", "first", broadcast=True)
    assert await recv(client) == "first"


async def test_last_message_replayed_on_connect(started: Any) -> None:
    instance = await started()
    await published(instance, "notifications", "kept", broadcast=True)
    client = await ws_open(ws_url(instance, "/ws/notifications?subscribe-broadcast"))
    assert await next_non_heartbeat(client) == "kept"


async def test_nothing_replayed_with_expire_zero(started: Any) -> None:
    instance = await started(**{"ws4redis.expire": 0})
    await instance.deps.pubsub.publisher("notifications", broadcast=True).publish("gone")  # type: ignore[union-attr]
    client = await ws_open(ws_url(instance, "/ws/notifications?subscribe-broadcast"))
    await subscribed(instance, "broadcast:notifications")
    await published(instance, "notifications", "live", broadcast=True)
    assert await next_non_heartbeat(client) == "live"


async def test_prefix_applies_to_channel_names(started: Any) -> None:
    instance = await started(**{"ws4redis.prefix": "ph"})
    client = await ws_open(ws_url(instance, "/ws/lobby?subscribe-broadcast"))
    await subscribed(instance, "ph:broadcast:lobby")
    await published(instance, "lobby", "prefixed", broadcast=True)
    assert await next_non_heartbeat(client) == "prefixed"


# --- Refusals before the upgrade -----------------------------------------------------


@pytest.mark.parametrize(
    ("path", "status", "reason"),
    [
        ("/ws/notifications?subscribe-broadcast&bogus", 400, "unknown flag 'bogus'"),
        ("/ws/notifications", 400, "no subscribe-* or publish-* flag given"),
        ("/ws/notifications?echo", 400, "no subscribe-* or publish-* flag given"),
        ("/ws/notifications?subscribe-user&publish-user", 403, "flag 'publish-user' not allowed"),
        ("/ws/notifications?publish-broadcast", 403, "flag 'publish-broadcast' not allowed"),
        ("/ws/secret?subscribe-broadcast", 403, "not allowed on facility 'secret'"),
        ("/ws/bad:facility?subscribe-broadcast", 400, "invalid facility 'bad:facility'"),
        ("/ws/a/b?subscribe-broadcast", 400, "invalid facility 'a/b'"),
        ("/ws/%00x?subscribe-broadcast", 400, "invalid facility"),
        ("/ws/?subscribe-broadcast", 400, "invalid facility ''"),
        ("/ws/" + "x" * 65 + "?subscribe-broadcast", 400, "invalid facility"),
    ],
)
async def test_handshake_refusals_explain_themselves(
    make_instance: MakeInstance, path: str, status: int, reason: str
) -> None:
    instance = await make_instance()
    with pytest.raises(HTTPClientError) as caught:
        await ws_open(ws_url(instance, path))
    assert caught.value.code == status
    body = caught.value.response.body.decode() if caught.value.response else ""
    assert reason in body
    assert "Traceback" not in body


async def test_anonymous_subscribe_user_is_ignored(make_instance: MakeInstance) -> None:
    """As ws4redis: no identity, no user channel — never a bogus ``user::x`` subscription."""
    instance = await make_instance()
    conn = await ws_open(ws_url(instance, "/ws/notifications?subscribe-user&subscribe-session"))
    registry = instance.deps.pubsub.registry  # type: ignore[union-attr]
    await wait_until(lambda: len(instance.deps.connections) == 1, what="socket open")  # type: ignore[union-attr]
    assert registry.channel_count == 1  # only the instance's control channel
    conn.close()


async def test_cross_origin_socket_refused(make_instance: MakeInstance) -> None:
    instance = await make_instance()
    url = ws_url(instance, "/ws/notifications?subscribe-broadcast")
    with pytest.raises(HTTPClientError) as caught:
        await ws_open(HTTPRequest(url, headers={"Origin": "https://evil.example"}))
    assert caught.value.code == 403
    same = await ws_open(HTTPRequest(url, headers={"Origin": f"http://127.0.0.1:{instance.port}"}))
    same.close()


async def test_allowed_origin_list(make_instance: MakeInstance) -> None:
    instance = await make_instance(**{"security.allowed_origins": ["https://play.example"]})
    url = ws_url(instance, "/ws/notifications?subscribe-broadcast")
    conn = await ws_open(HTTPRequest(url, headers={"Origin": "https://play.example"}))
    conn.close()
    with pytest.raises(HTTPClientError):
        await ws_open(HTTPRequest(url, headers={"Origin": "https://other.example"}))


# --- Bad frames after the upgrade ----------------------------------------------------


async def test_oversize_frame_closes_1009(make_instance: MakeInstance) -> None:
    instance = await make_instance(
        **{"channels.publishable": ["chat"], "limits.max_message_bytes": 1024}
    )
    conn = await ws_open(ws_url(instance, "/ws/chat?publish-broadcast"))
    await conn.write_message("x" * 1025)
    assert await recv(conn) is None
    assert conn.close_code == 1009
    deps = instance.deps
    assert deps is not None
    assert deps.metrics.rejected.labels("too_big")._value.get() == 1  # counted in /metrics


async def test_binary_frame_closes_1003(make_instance: MakeInstance) -> None:
    instance = await make_instance(**{"channels.publishable": ["chat"]})
    conn = await ws_open(ws_url(instance, "/ws/chat?publish-broadcast"))
    await conn.write_message(b"\x00\x01", binary=True)
    assert await recv(conn) is None
    assert conn.close_code == 1003
    assert conn.close_reason == "binary frames are not supported"


async def test_message_without_publish_flag_closes_1008(make_instance: MakeInstance) -> None:
    instance = await make_instance()
    conn = await ws_open(ws_url(instance, "/ws/notifications?subscribe-broadcast"))
    await conn.write_message("may I?")
    while (message := await recv(conn)) is not None:
        assert message == HEARTBEAT
    assert conn.close_code == 1008


async def test_bad_client_does_not_disturb_others(make_instance: MakeInstance) -> None:
    instance = await make_instance(**{"limits.max_message_bytes": 1024})
    good = await ws_open(ws_url(instance, "/ws/notifications?subscribe-broadcast"))
    for _ in range(20):
        bad = await ws_open(ws_url(instance, "/ws/notifications?subscribe-broadcast"))
        await bad.write_message(b"\xff" * 2048, binary=True)
        assert await recv(bad) is None
    await published(instance, "notifications", "still fine", broadcast=True)
    assert await next_non_heartbeat(good) == "still fine"


# --- Health endpoints ----------------------------------------------------------------


async def test_health_ready_and_metrics(started: Any) -> None:
    instance = await started()
    client = AsyncHTTPClient()
    health = await client.fetch(http_url(instance, "/healthz"))
    assert health.code == 200
    ready = await client.fetch(http_url(instance, "/readyz"))
    assert b'"ready":true' in ready.body
    metrics = (await client.fetch(http_url(instance, "/metrics"))).body.decode()
    for name in (
        "playhouse_ws_connections",
        "playhouse_ws_messages_in_total",
        "playhouse_ws_deliveries_total",
        "playhouse_fanout_seconds_bucket",
        "playhouse_ws_slow_client_closes_total",
        "playhouse_broker_reconnects_total",
        "playhouse_ioloop_lag_seconds_bucket",
    ):
        assert name in metrics
    instance.deps.draining = True  # type: ignore[union-attr]
    with pytest.raises(HTTPClientError) as caught:
        await client.fetch(http_url(instance, "/readyz"))
    assert caught.value.code == 503


async def test_empty_and_heartbeat_payloads_are_not_delivered(started: Any) -> None:
    """As ws4redis' RedisMessage: empty and heartbeat-equal messages are dropped."""
    instance = await started(**{"limits.heartbeat_interval": 60.0})
    await published(instance, "notifications", HEARTBEAT, broadcast=True)  # kept, but not replayed
    client = await ws_open(ws_url(instance, "/ws/notifications?subscribe-broadcast"))
    await subscribed(instance, "broadcast:notifications")
    await published(instance, "notifications", "", broadcast=True)
    await published(instance, "notifications", HEARTBEAT, broadcast=True)
    await published(instance, "notifications", "real", broadcast=True)
    assert await recv(client) == "real"
