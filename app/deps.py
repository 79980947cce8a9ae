"""Build and close the long-lived dependencies of one instance."""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass, field

from app.channel_policy import ChannelPolicy, DefaultPolicy
from app.config import Settings
from app.connections import ConnectionSet
from app.handlers.ws import Identify, anonymous
from app.metrics import Metrics
from app.pubsub import Broker, ChannelNames, LocalBroker, PubSub, Registry
from app.redis_broker import RedisBroker

__all__ = ["Deps", "build_deps", "instance_name"]


@dataclass
class Deps:
    """What handlers and services share; built by :func:`build_deps`."""

    instance_id: str
    cookie_secret: str
    metrics: Metrics
    pubsub: PubSub
    policy: ChannelPolicy
    identify: Identify
    connections: ConnectionSet
    draining: bool = field(default=False)

    def is_draining(self) -> bool:
        return self.draining

    async def close(self) -> None:
        await self.pubsub.broker.close()


def _make_broker(settings: Settings, metrics: Metrics) -> Broker:
    if not settings.redis.url:
        return LocalBroker()
    return RedisBroker(
        settings.redis.url,
        timeout=settings.redis.timeout,
        on_reconnect=metrics.broker_reconnects.inc,
    )


def instance_name(settings: Settings) -> str:
    """``server.instance_id``, or host name and pid when it is empty."""
    return settings.server.instance_id or f"{socket.gethostname()}-{os.getpid()}"


async def build_deps(settings: Settings) -> Deps:
    """Create and start every dependency.

    Raises:
        BrokerUnavailable: Redis is configured but unreachable.
    """
    instance_id = instance_name(settings)
    metrics = Metrics(instance_id)
    broker = _make_broker(settings, metrics)
    heartbeat = settings.ws4redis.heartbeat.encode()
    registry = Registry(broker, on_fanout=metrics.on_fanout, ignored=frozenset((b"", heartbeat)))
    await broker.start()
    pubsub = PubSub(
        broker,
        ChannelNames(settings.ws4redis.prefix),
        expire=settings.ws4redis.expire,
        registry=registry,
    )
    policy = DefaultPolicy(
        public=frozenset(settings.channels.public),
        publishable=frozenset(settings.channels.publishable),
    )
    return Deps(
        instance_id=instance_id,
        cookie_secret=settings.server.cookie_secret or secrets.token_urlsafe(32),
        metrics=metrics,
        pubsub=pubsub,
        policy=policy,
        identify=anonymous,
        connections=ConnectionSet(),
    )
