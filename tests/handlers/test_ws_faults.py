"""Faults: connection churn, slow and dead clients, Redis going away, two instances."""

from __future__ import annotations

import asyncio
import time

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPClientError

from app.connections import Connection
from app.errors import BrokerUnavailable
from app.runtime import Instance
from tests.conftest import MakeInstance, http_url, ws_url
from tests.support import (
    RedisProcess,
    raw_websocket,
    read_until_closed,
    recv,
    wait_until,
    ws_open,
)


def only_connection(instance: Instance) -> Connection:
    conns = tuple(instance.deps.connections._all)  # type: ignore[union-attr]
    assert len(conns) == 1
    return conns[0]


async def test_1000_connect_disconnect_cycles_leak_nothing(
    make_instance: MakeInstance, redis_server: RedisProcess
) -> None:
    instance = await make_instance(**{"redis.url": redis_server.url})
    url = ws_url(instance, "/ws/notifications?subscribe-broadcast")

    async def cycle() -> None:
        conn = await ws_open(url)
        conn.close()

    for _ in range(20):
        await asyncio.gather(*(cycle() for _ in range(50)))
    deps = instance.deps
    assert deps is not None
    await wait_until(lambda: len(deps.connections) == 0, timeout=10, what="all sockets closed")
    assert deps.pubsub.registry.channel_count == 1  # just the control channel
    await wait_until(
        lambda: redis_server.numsub("broadcast:notifications") == 0, what="PUBSUB NUMSUB back to 0"
    )
    # and the instance still works afterwards
    conn = await ws_open(url)
    await wait_until(lambda: redis_server.numsub("broadcast:notifications") == 1, what="subscribe")
    redis_server.client().publish("broadcast:notifications", "alive")
    message = await recv(conn)
    while message == "--heartbeat--":
        message = await recv(conn)
    assert message == "alive"


async def test_client_that_stops_reading_is_closed_and_memory_bounded(
    make_instance: MakeInstance,
) -> None:
    limit = 256 * 1024
    # Broadcast sockets drop what does not fit, then close a client behind for this long.
    instance = await make_instance(
        **{"limits.max_outgoing_bytes": limit, "limits.slow_client_seconds": 0.5}
    )
    deps = instance.deps
    assert deps is not None
    _, writer = await raw_websocket(
        instance.port, "/ws/notifications?subscribe-broadcast", rcvbuf=4096
    )
    try:
        await wait_until(lambda: len(deps.connections) == 1, what="raw client registered")
        conn = only_connection(instance)
        stream = conn._stream
        publisher = deps.pubsub.publisher("notifications", broadcast=True)
        chunk = "x" * 60_000
        most_queued = 0
        # Messages keep coming (60 MB if nothing bounded it) until the stalled client is
        # closed: slow_client_seconds after it first fell behind.
        loop = asyncio.get_running_loop()
        give_up = loop.time() + 10
        while conn.open and loop.time() < give_up:
            await publisher.publish(chunk, expire=0)
            if stream._write_buffer is not None:
                most_queued = max(most_queued, len(stream._write_buffer))
            await asyncio.sleep(0.001)  # let the loop flush what the socket takes
        assert not conn.open, "slow client was never closed"
        assert most_queued <= limit
        assert deps.metrics.slow_closes._value.get() == 1
        await wait_until(
            lambda: deps.pubsub.registry.subscribers("broadcast:notifications") == 0,
            timeout=10,
            what="slow client unsubscribed",
        )
    finally:
        writer.close()


async def test_client_that_never_answers_pings_is_reaped(make_instance: MakeInstance) -> None:
    interval, timeout = 0.3, 0.3
    instance = await make_instance(
        **{"limits.ping_interval": interval, "limits.ping_timeout": timeout}
    )
    deps = instance.deps
    assert deps is not None
    live = await ws_open(ws_url(instance, "/ws/notifications?subscribe-broadcast"))
    reader, writer = await raw_websocket(instance.port, "/ws/notifications?subscribe-broadcast")
    try:
        await wait_until(lambda: len(deps.connections) == 2, what="both registered")
        started = time.monotonic()
        await wait_until(lambda: len(deps.connections) == 1, timeout=5, what="dead peer reaped")
        # interval + timeout, plus one sweep period and scheduling slack
        assert time.monotonic() - started <= interval + timeout + 0.5
        assert deps.metrics.ping_timeouts._value.get() == 1
        received = await read_until_closed(reader)  # the server hung up on us
        assert b"\x89\x00" in received  # after pinging
    finally:
        writer.close()
    # The client that answers pings (Tornado's client does) stays connected.
    await deps.pubsub.publisher("notifications", broadcast=True).publish("still here")
    message = await recv(live)
    while message == "--heartbeat--":
        message = await recv(live)
    assert message == "still here"


async def test_redis_killed_mid_stream(
    make_instance: MakeInstance, redis_private: RedisProcess
) -> None:
    instance = await make_instance(**{"redis.url": redis_private.url, "redis.timeout": 0.5})
    deps = instance.deps
    assert deps is not None
    client = await ws_open(ws_url(instance, "/ws/notifications?subscribe-broadcast"))
    await wait_until(lambda: redis_private.numsub("broadcast:notifications") == 1, what="subscribe")
    publisher = deps.pubsub.publisher("notifications", broadcast=True)
    await publisher.publish("before")
    assert await recv(client) == "before"

    redis_private.kill()
    started = time.monotonic()
    with pytest.raises(BrokerUnavailable, match=r"Redis at redis://127\.0\.0\.1:\d+/0 unavailable"):
        await publisher.publish("during")
    assert time.monotonic() - started < 2, "publish must fail fast while Redis is down"
    assert (
        client.protocol is not None and not client.protocol.client_terminated
    )  # socket stays open
    with pytest.raises(HTTPClientError) as not_ready:
        await AsyncHTTPClient().fetch(http_url(instance, "/readyz"))
    assert not_ready.value.code == 503
    assert b'"broker":false' in not_ready.value.response.body  # type: ignore[union-attr]

    redis_private.start()
    returned = time.monotonic()
    await wait_until(
        lambda: redis_private.numsub("broadcast:notifications") == 1, timeout=5, what="resubscribe"
    )
    await publisher.publish("after")
    message = await recv(client)
    while message == "--heartbeat--":
        message = await recv(client)
    assert message == "after"
    assert time.monotonic() - returned < 5
    assert deps.metrics.broker_reconnects._value.get() >= 1
    ready = await AsyncHTTPClient().fetch(http_url(instance, "/readyz"))
    assert ready.code == 200


async def test_broadcast_crosses_instances_through_redis(
    make_instance: MakeInstance, redis_server: RedisProcess
) -> None:
    first = await make_instance(**{"redis.url": redis_server.url, "server.instance_id": "a"})
    second = await make_instance(**{"redis.url": redis_server.url, "server.instance_id": "b"})
    on_first = await ws_open(ws_url(first, "/ws/lobby?subscribe-broadcast"))
    on_second = await ws_open(ws_url(second, "/ws/lobby?subscribe-broadcast"))
    await wait_until(lambda: redis_server.numsub("broadcast:lobby") == 2, what="both instances")
    assert first.deps is not None
    await first.deps.pubsub.publisher("lobby", broadcast=True).publish("to everyone")
    for conn in (on_first, on_second):
        message = await recv(conn)
        while message == "--heartbeat--":
            message = await recv(conn)
        assert message == "to everyone"


async def test_raw_socket_garbage_is_survived(make_instance: MakeInstance) -> None:
    instance = await make_instance()
    good = await ws_open(ws_url(instance, "/ws/notifications?subscribe-broadcast"))
    # Unmasked frames, reserved opcodes, a bogus 2**63 length: each connection is dropped.
    for garbage in (b"\x81\x05hello", b"\x83\x80\x00\x00\x00\x00", b"\x81\xff" + b"\xff" * 12):
        reader, writer = await raw_websocket(instance.port, "/ws/notifications?subscribe-broadcast")
        writer.write(garbage)
        await read_until_closed(reader, close_frame=True)
        writer.close()
    reader, writer = await asyncio.open_connection("127.0.0.1", instance.port)
    writer.write(b"\xff\xfe garbage that is not HTTP\r\n\r\n")
    assert (await read_until_closed(reader)).startswith(b"HTTP/1.1 400")
    writer.close()
    assert instance.deps is not None
    await instance.deps.pubsub.publisher("notifications", broadcast=True).publish("ok")
    message = await recv(good)
    while message == "--heartbeat--":
        message = await recv(good)
    assert message == "ok"
