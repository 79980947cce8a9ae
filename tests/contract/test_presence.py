"""One Presence contract, run against LocalPresence and RedisPresence, plus Redis-only cases."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from app.presence import LocalPresence, PresenceCore
from app.presence_redis import RedisPresence
from app.pubsub import Broker, ChannelNames, LocalBroker, PubSub, Registry
from app.redis_broker import RedisBroker
from tests.support import RedisProcess, wait_until


class Recorder:
    """A lobby subscriber that keeps the decoded diffs."""

    def __init__(self) -> None:
        self.diffs: list[dict[str, str]] = []

    def deliver(self, frame: bytes, payload: bytes) -> None:
        self.diffs.append(json.loads(payload))

    def of(self, user: str) -> list[str]:
        return [d["status"] for d in self.diffs if d["user"] == user]


class ManualSleep:
    """A sleep that ends only when the test says so: grace periods on demand."""

    def __init__(self) -> None:
        self.waiting: list[asyncio.Future[None]] = []

    async def __call__(self, seconds: float) -> None:
        future = asyncio.get_running_loop().create_future()
        self.waiting.append(future)
        await future

    def pending(self) -> int:
        return sum(not f.done() for f in self.waiting)

    def release(self) -> None:
        for future in self.waiting:
            if not future.done():
                future.set_result(None)
        self.waiting.clear()


class Cluster:
    """A broker, a lobby recorder, and the presences made on them."""

    def __init__(self, broker: Broker, redis: bool) -> None:
        self.broker = broker
        self.redis = redis
        self.names = ChannelNames("ph")
        self.pubsub = PubSub(broker, self.names, expire=0, registry=Registry(broker))
        self.lobby = Recorder()
        self.made: list[PresenceCore] = []

    async def start(self) -> None:
        await self.broker.start()
        await asyncio.gather(
            *self.pubsub.registry.attach(self.lobby, [self.names.broadcast("lobby")])
        )

    async def make(self, instance_id: str = "a", **kwargs: Any) -> Any:
        presence: PresenceCore
        if self.redis:
            assert isinstance(self.broker, RedisBroker)
            kwargs = {"heartbeat": 0.2, "ttl": 0.5, **kwargs}
            presence = RedisPresence(
                self.pubsub, self.broker.client, instance_id=instance_id, **kwargs
            )
        else:
            presence = LocalPresence(self.pubsub, **kwargs)
        await presence.start()
        self.made.append(presence)
        return presence

    async def marker(self, presence: Any, name: str = "zz-marker") -> None:
        """Publish a diff and wait for it: everything published before it has arrived."""
        await presence.connected(name)
        await wait_until(lambda: self.lobby.of(name) == ["online"], what="marker diff")

    async def close(self) -> None:
        for presence in reversed(self.made):
            await presence.close()
        await self.broker.close()


async def _cluster(broker: Broker, redis: bool) -> AsyncIterator[Cluster]:
    cluster = Cluster(broker, redis)
    await cluster.start()
    yield cluster
    await cluster.close()


@pytest.fixture(params=["local", "redis"])
async def cluster(request: pytest.FixtureRequest) -> AsyncIterator[Cluster]:
    if request.param == "local":
        broker: Broker = LocalBroker()
    else:
        server: RedisProcess = request.getfixturevalue("redis_server")
        broker = RedisBroker(server.url, timeout=1.0)
    async for value in _cluster(broker, request.param == "redis"):
        yield value


@pytest.fixture
async def redis_cluster(redis_server: RedisProcess) -> AsyncIterator[Cluster]:
    async for value in _cluster(RedisBroker(redis_server.url, timeout=1.0), True):
        yield value


async def test_connect_publishes_online_once(cluster: Cluster) -> None:
    presence = await cluster.make()
    await presence.connected("alice")
    await presence.connected("alice")  # a second tab
    await wait_until(lambda: cluster.lobby.of("alice") == ["online"], what="online diff")
    assert cluster.lobby.diffs[0] == {"type": "presence", "user": "alice", "status": "online"}
    assert await presence.online() == {"alice": "online"}
    await cluster.marker(presence)
    assert cluster.lobby.of("alice") == ["online"]


async def test_offline_only_after_last_socket_and_grace(cluster: Cluster) -> None:
    sleep = ManualSleep()
    presence = await cluster.make(sleep=sleep)
    await presence.connected("alice")
    await presence.connected("alice")
    await presence.disconnected("alice")
    assert sleep.pending() == 0 and presence.connections("alice") == 1
    await presence.disconnected("alice")
    await wait_until(lambda: sleep.pending() == 1, what="grace timer")
    assert await presence.online() == {"alice": "online"}  # inside the grace
    sleep.release()
    await wait_until(lambda: cluster.lobby.of("alice") == ["online", "offline"], what="offline")
    assert await presence.online() == {}
    await cluster.marker(presence)
    assert cluster.lobby.of("alice") == ["online", "offline"]


async def test_reload_within_grace_publishes_nothing(cluster: Cluster) -> None:
    sleep = ManualSleep()
    presence = await cluster.make(sleep=sleep)
    await presence.connected("alice")
    await presence.disconnected("alice")
    await wait_until(lambda: sleep.pending() == 1, what="grace timer")
    await presence.connected("alice")  # the reloaded page
    sleep.release()
    await cluster.marker(presence)
    assert cluster.lobby.of("alice") == ["online"]
    assert (await presence.online())["alice"] == "online"


async def test_real_grace_ends_in_exactly_one_offline(cluster: Cluster) -> None:
    presence = await cluster.make(grace=0.2)
    await presence.connected("alice")
    await presence.disconnected("alice")
    await wait_until(lambda: cluster.lobby.of("alice") == ["online", "offline"], what="offline")
    await cluster.marker(presence)
    assert cluster.lobby.of("alice") == ["online", "offline"]


async def test_status_changes_are_published_on_transitions(cluster: Cluster) -> None:
    seen: list[dict[str, str]] = []
    presence = await cluster.make(on_change=seen.append)
    await presence.connected("alice")
    await presence.set_status("alice", "in_game")
    await presence.set_status("alice", "in_game")  # no transition
    assert await presence.online() == {"alice": "in_game"}
    await presence.set_status("alice", "online")
    await presence.set_status("bob", "in_game")  # not here: ignored
    with pytest.raises(ValueError, match="unknown presence status 'away'"):
        await presence.set_status("alice", "away")
    expected = ["online", "in_game", "online"]
    await wait_until(lambda: cluster.lobby.of("alice") == expected, what="status diffs")
    await cluster.marker(presence)
    assert cluster.lobby.of("alice") == expected and cluster.lobby.of("bob") == []
    assert [d["status"] for d in seen if d["user"] == "alice"] == expected
    assert await presence.online() == {"alice": "online", "zz-marker": "online"}


async def test_unknown_disconnect_is_ignored(cluster: Cluster) -> None:
    presence = await cluster.make()
    await presence.disconnected("ghost")
    assert await presence.online() == {}


# --- Redis only: several instances on one Redis ----------------------------------


async def test_user_on_two_instances_stays_until_both_leave(redis_cluster: Cluster) -> None:
    sleep = ManualSleep()
    a = await redis_cluster.make("a", sleep=sleep)
    b = await redis_cluster.make("b", sleep=sleep)
    await a.connected("alice")
    await b.connected("alice")
    await b.set_status("alice", "in_game")
    assert await a.online() == {"alice": "in_game"}
    await b.disconnected("alice")
    await wait_until(lambda: sleep.pending() == 1, what="grace on b")
    sleep.release()
    await wait_until(lambda: redis_cluster.lobby.of("alice")[-1:] == ["online"], what="back")
    assert await b.online() == {"alice": "online"}
    await a.disconnected("alice")
    await wait_until(lambda: sleep.pending() == 1, what="grace on a")
    sleep.release()
    await wait_until(lambda: redis_cluster.lobby.of("alice")[-1:] == ["offline"], what="offline")
    await redis_cluster.marker(a)
    assert redis_cluster.lobby.of("alice") == ["online", "in_game", "online", "offline"]
    assert "alice" not in await b.online()


async def test_dead_instance_users_go_offline_exactly_once(redis_cluster: Cluster) -> None:
    dead = await redis_cluster.make("dead")
    survivors = [await redis_cluster.make("b"), await redis_cluster.make("c")]
    await dead.connected("alice")
    await dead.connected("carol")
    await survivors[0].connected("carol")
    await survivors[1].connected("bob")
    await dead.kill()  # no cleanup, as kill -9
    assert (await survivors[0].online()).keys() >= {"alice", "carol"}  # TTL not passed yet
    await wait_until(lambda: redis_cluster.lobby.of("alice") == ["online", "offline"], what="reap")
    assert await survivors[1].online() == {"bob": "online", "carol": "online"}
    await redis_cluster.marker(survivors[1])
    assert redis_cluster.lobby.of("alice") == ["online", "offline"]
    assert redis_cluster.lobby.of("carol") == ["online"]
    assert redis_cluster.lobby.of("bob") == ["online"]


async def test_redis_outage_keeps_local_state_and_remirrors(redis_private: RedisProcess) -> None:
    broker = RedisBroker(redis_private.url, timeout=0.5)
    cluster = Cluster(broker, True)
    await cluster.start()
    try:
        presence = await cluster.make("a", sleep=ManualSleep())  # alice's grace never ends
        await presence.connected("alice")
        redis_private.kill()
        await presence.connected("bob")  # must not raise
        await presence.disconnected("alice")
        assert await presence.online() == {"alice": "online", "bob": "online"}
        redis_private.start()
        viewer = await cluster.make("viewer")
        await wait_until(
            lambda: _online_is(viewer, {"alice": "online", "bob": "online"}),
            what="re-mirror after the outage",
        )
    finally:
        await cluster.close()


async def _online_is(presence: Any, expected: dict[str, str]) -> bool:
    return bool(await presence.online() == expected)
