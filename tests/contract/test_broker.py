"""One Broker contract, run against every implementation (LocalBroker, RedisBroker)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from app.errors import BrokerUnavailable
from app.pubsub import Broker, LocalBroker, Registry
from app.redis_broker import RedisBroker
from tests.support import RedisProcess, wait_until


class Recorder:
    """A subscriber that keeps what it is given."""

    def __init__(self) -> None:
        self.payloads: list[bytes] = []
        self.frames: list[bytes] = []

    def deliver(self, frame: bytes, payload: bytes) -> None:
        self.frames.append(frame)
        self.payloads.append(payload)


@pytest.fixture(params=["local", "redis"])
async def broker(request: pytest.FixtureRequest) -> AsyncIterator[Broker]:
    if request.param == "local":
        impl: Broker = LocalBroker()
    else:
        server: RedisProcess = request.getfixturevalue("redis_server")
        impl = RedisBroker(server.url, timeout=1.0)
    await impl.start()
    yield impl
    await impl.close()


async def test_subscribed_channel_receives_bytes_verbatim(broker: Broker) -> None:
    registry = Registry(broker)
    sub = Recorder()
    await asyncio.gather(*registry.attach(sub, ["c1"]))
    message = 'héllo {"a": 1}'.encode()
    await broker.publish("c1", message)
    await wait_until(lambda: sub.payloads == [message], what="delivery")
    assert sub.frames[0][2:] == message and sub.frames[0][0] == 0x81


async def test_other_channels_are_not_delivered(broker: Broker) -> None:
    registry = Registry(broker)
    sub = Recorder()
    await asyncio.gather(*registry.attach(sub, ["wanted"]))
    await broker.publish("unwanted", b"no")
    await broker.publish("wanted", b"yes")
    await wait_until(lambda: sub.payloads == [b"yes"], what="only the wanted channel")


async def test_per_channel_order_is_kept(broker: Broker) -> None:
    registry = Registry(broker)
    sub = Recorder()
    await asyncio.gather(*registry.attach(sub, ["ordered"]))
    expected = [str(i).encode() for i in range(500)]
    for payload in expected:
        await broker.publish("ordered", payload)
    await wait_until(lambda: len(sub.payloads) == 500, what="500 messages")
    assert sub.payloads == expected


async def test_publish_many_delivers_each_to_its_channel_in_order(broker: Broker) -> None:
    registry = Registry(broker)
    alice, bob, watchers = Recorder(), Recorder(), Recorder()
    await asyncio.gather(
        *registry.attach(alice, ["user:alice"]),
        *registry.attach(bob, ["user:bob"]),
        *registry.attach(watchers, ["public"]),
    )
    for seq in range(50):
        await broker.publish_many(
            [
                ("user:alice", b"a%d" % seq),
                ("user:bob", b"b%d" % seq),
                ("nobody", b"x"),
                ("public", b"p%d" % seq),
            ]
        )
    await wait_until(lambda: len(watchers.payloads) == 50, what="50 public messages")
    assert alice.payloads == [b"a%d" % i for i in range(50)]
    assert bob.payloads == [b"b%d" % i for i in range(50)]
    assert watchers.payloads == [b"p%d" % i for i in range(50)]
    assert await broker.last_message("user:alice") is None  # nothing kept


async def test_unsubscribe_stops_delivery(broker: Broker) -> None:
    registry = Registry(broker)
    first, second = Recorder(), Recorder()
    await asyncio.gather(*registry.attach(first, ["ch"]), *registry.attach(second, ["ch"]))
    registry.detach(first, ["ch"])
    await broker.publish("ch", b"one")
    await wait_until(lambda: second.payloads == [b"one"], what="second subscriber")
    registry.detach(second, ["ch"])
    # Re-subscribing after a full unsubscribe works and sees only new messages.
    third = Recorder()
    await asyncio.gather(*registry.attach(third, ["ch"]))
    await broker.publish("ch", b"two")
    await wait_until(lambda: third.payloads == [b"two"], what="re-subscription")
    assert first.payloads == [] and second.payloads == [b"one"]


async def test_last_message_kept_only_with_expire(broker: Broker) -> None:
    await broker.publish("kept", b"first", expire=60)
    await broker.publish("kept", b"second", expire=60)
    await broker.publish("not-kept", b"x", expire=0)
    assert await broker.last_message("kept") == b"second"
    assert await broker.last_message("not-kept") is None
    assert await broker.last_message("never") is None


async def test_last_message_expires(broker: Broker) -> None:
    await broker.publish("short", b"soon gone", expire=1)
    assert await broker.last_message("short") == b"soon gone"
    await wait_until(
        lambda: _is_none(broker.last_message("short")), timeout=4, what="expiry of the kept message"
    )


async def _is_none(result: object) -> bool:
    return await result is None  # type: ignore[misc]


async def test_rapid_subscribe_unsubscribe_leaves_nothing(broker: Broker) -> None:
    registry = Registry(broker)
    for _ in range(200):
        sub = Recorder()
        registry.attach(sub, ["churn"])
        registry.detach(sub, ["churn"])
    assert registry.channel_count == 0
    last = Recorder()
    await asyncio.gather(*registry.attach(last, ["churn"]))
    registry.detach(last, ["churn"])
    await broker.publish("churn", b"nobody")
    assert await broker.ping()


async def test_invalid_utf8_goes_out_as_binary(broker: Broker) -> None:
    registry = Registry(broker)
    sub = Recorder()
    await asyncio.gather(*registry.attach(sub, ["bin"]))
    await broker.publish("bin", b"\xff\xfe")
    await wait_until(lambda: len(sub.frames) == 1, what="binary delivery")
    assert sub.frames[0] == b"\x82\x02\xff\xfe"


# --- Redis-only behaviour: one SUBSCRIBE per channel, restarts -------------------


async def test_redis_subscribes_once_per_channel(redis_server: RedisProcess) -> None:
    broker = RedisBroker(redis_server.url, timeout=1.0)
    await broker.start()
    try:
        registry = Registry(broker)
        subs = [Recorder() for _ in range(5)]
        for sub in subs:
            await asyncio.gather(*registry.attach(sub, ["shared"]))
        assert redis_server.numsub("shared") == 1
        for sub in subs[:4]:
            registry.detach(sub, ["shared"])
        await broker.publish("shared", b"still here")
        await wait_until(lambda: subs[4].payloads == [b"still here"], what="remaining subscriber")
        registry.detach(subs[4], ["shared"])
        await wait_until(lambda: redis_server.numsub("shared") == 0, what="UNSUBSCRIBE")
    finally:
        await broker.close()


async def test_redis_restart_resubscribes_and_publish_fails_fast(
    redis_private: RedisProcess,
) -> None:
    broker = RedisBroker(redis_private.url, timeout=0.5)
    await broker.start()
    try:
        registry = Registry(broker)
        sub = Recorder()
        await asyncio.gather(*registry.attach(sub, ["survivor"]))
        redis_private.kill()
        started = time.monotonic()
        with pytest.raises(BrokerUnavailable, match="Redis at redis://127.0.0.1:.* unavailable"):
            await broker.publish("survivor", b"lost?")
        with pytest.raises(BrokerUnavailable, match="Redis at redis://127.0.0.1:.* unavailable"):
            await broker.publish_many([("survivor", b"lost too?")])
        assert time.monotonic() - started < 3.0
        assert not await broker.ping()
        redis_private.start()
        returned = time.monotonic()
        await wait_until(
            lambda: redis_private.numsub("survivor") == 1, timeout=5, what="resubscribe"
        )
        assert time.monotonic() - returned < 5
        await broker.publish("survivor", b"after restart")
        await wait_until(lambda: sub.payloads == [b"after restart"], what="delivery after restart")
    finally:
        await broker.close()


@pytest.mark.parametrize("yields", [0, 1, 2, 3])
async def test_redis_close_never_hangs_after_unsubscribe(
    redis_server: RedisProcess, yields: int
) -> None:
    """The UNSUBSCRIBE reply racing close() must not swallow the cancellation."""
    for _ in range(10):
        broker = RedisBroker(redis_server.url, timeout=1.0)
        await broker.start()
        registry = Registry(broker)
        sub = Recorder()
        await asyncio.gather(*registry.attach(sub, ["racy"]))
        registry.detach(sub, ["racy"])
        for _ in range(yields):
            await asyncio.sleep(0)
        started = time.monotonic()
        await asyncio.wait_for(broker.close(), 5)
        assert time.monotonic() - started < 1.0
