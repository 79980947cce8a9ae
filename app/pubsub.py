"""ws4redis channels, the in-process subscription registry, and the Broker contract.

Delivery is broker-only (as in ws4redis): a publisher's own instance gets its
message back from the broker like every other instance, so each channel has
one order. The :class:`Registry` is the broker's message handler: it encodes a
message's frame once and hands the same bytes to every local subscriber, and it
ref-counts channels so the broker is subscribed only to channels that have a
local subscriber.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Protocol

from app.frames import frame_for_payload
from app.types import Channel

__all__ = [
    "Broker",
    "ChannelNames",
    "LocalBroker",
    "MessageHandler",
    "PubSub",
    "Publisher",
    "Registry",
    "Subscriber",
]

MessageHandler = Callable[[str, bytes], None]


class ChannelNames:
    """ws4redis channel naming, the only place that spells a channel.

    ``P`` is ``"<prefix>:"`` when a prefix is configured, else empty:
    ``{P}broadcast:{facility}``, ``{P}user:{username}:{facility}``,
    ``{P}group:{group}:{facility}``, ``{P}session:{session_key}:{facility}``.
    """

    __slots__ = ("prefix",)

    def __init__(self, prefix: str = "") -> None:
        self.prefix = f"{prefix}:" if prefix else ""

    def broadcast(self, facility: str) -> Channel:
        return Channel(f"{self.prefix}broadcast:{facility}")

    def user(self, username: str, facility: str) -> Channel:
        return Channel(f"{self.prefix}user:{username}:{facility}")

    def group(self, group: str, facility: str) -> Channel:
        return Channel(f"{self.prefix}group:{group}:{facility}")

    def session(self, session_key: str, facility: str) -> Channel:
        return Channel(f"{self.prefix}session:{session_key}:{facility}")

    def audience(
        self,
        facility: str,
        *,
        broadcast: bool = False,
        users: Iterable[str] = (),
        groups: Iterable[str] = (),
        sessions: Iterable[str] = (),
    ) -> list[Channel]:
        """All channels of an audience, in ws4redis' order."""
        channels = [self.broadcast(facility)] if broadcast else []
        channels += [self.user(u, facility) for u in users]
        channels += [self.group(g, facility) for g in groups]
        channels += [self.session(s, facility) for s in sessions]
        return channels


class Broker(Protocol):
    """Moves messages between publishers and the instances holding subscribers.

    Guarantees: at-most-once delivery; per-channel order as the broker received
    the publishes; the handler runs on the event loop, one message at a time.
    ``subscribe``/``unsubscribe`` calls for one channel take effect in call order.
    """

    def set_handler(self, handler: MessageHandler) -> None:
        """Route every message of a subscribed channel to ``handler``."""

    async def start(self) -> None:
        """Connect; raise :class:`~app.errors.BrokerUnavailable` if impossible."""

    async def close(self) -> None: ...

    async def publish(self, channel: str, message: bytes, *, expire: int = 0) -> None:
        """Publish; when ``expire > 0`` also keep it as the channel's last message.

        Raises:
            BrokerUnavailable: the broker cannot take the message now.
        """

    async def publish_many(self, messages: Sequence[tuple[str, bytes]]) -> None:
        """Publish each ``(channel, message)`` in order, nothing kept (one round trip).

        Raises:
            BrokerUnavailable: the broker cannot take the messages now.
        """

    def subscribe(self, channel: str) -> Awaitable[None]:
        """Start receiving ``channel``; the awaitable resolves once active."""

    def unsubscribe(self, channel: str) -> None: ...

    async def last_message(self, channel: str) -> bytes | None:
        """The message kept for ``channel`` by a publish with ``expire``, if any."""

    async def ping(self) -> bool:
        """True when the broker is reachable now."""


class LocalBroker:
    """In-process broker for a single instance (``redis.url`` empty)."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._handler: MessageHandler | None = None
        self._channels: set[str] = set()
        self._kept: dict[str, tuple[bytes, float]] = {}
        self._clock = clock

    def set_handler(self, handler: MessageHandler) -> None:
        self._handler = handler

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self._channels.clear()

    async def publish(self, channel: str, message: bytes, *, expire: int = 0) -> None:
        if expire > 0:
            self._kept[channel] = (message, self._clock() + expire)
            if len(self._kept) > 10_000:
                self._purge()
        if channel in self._channels and self._handler is not None:
            self._handler(channel, message)

    async def publish_many(self, messages: Sequence[tuple[str, bytes]]) -> None:
        for channel, message in messages:
            await self.publish(channel, message)

    def subscribe(self, channel: str) -> Awaitable[None]:
        self._channels.add(channel)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)

    async def last_message(self, channel: str) -> bytes | None:
        kept = self._kept.get(channel)
        if kept is None:
            return None
        if kept[1] <= self._clock():
            del self._kept[channel]
            return None
        return kept[0]

    async def ping(self) -> bool:
        return True

    def _purge(self) -> None:
        now = self._clock()
        for channel in [c for c, (_, exp) in self._kept.items() if exp <= now]:
            del self._kept[channel]


class Subscriber(Protocol):
    """A local receiver of channel messages (an open WebSocket)."""

    def deliver(self, frame: bytes, payload: bytes) -> None:
        """Write the pre-encoded ``frame``; must not block or raise."""


class Registry:
    """Channel → local subscribers; the broker's message handler.

    Args:
        broker: subscribed on a channel's first local subscriber and
            unsubscribed after its last.
        on_fanout: optional ``(subscriber_count, seconds)`` observer.
        ignored: payloads never delivered; ws4redis drops empty messages and
            messages equal to the heartbeat (``RedisMessage`` turns them into None).
    """

    def __init__(
        self,
        broker: Broker,
        *,
        on_fanout: Callable[[int, float], None] | None = None,
        ignored: frozenset[bytes] = frozenset((b"",)),
    ) -> None:
        self._broker = broker
        self.ignored = ignored
        self._subs: dict[str, dict[Subscriber, None]] = {}
        self._ready: dict[str, Awaitable[None]] = {}
        self._on_fanout = on_fanout
        # Every message the broker handed us, dispatched or not: with routed delivery a
        # message without local subscribers should never arrive (see /metrics).
        self.received = 0
        broker.set_handler(self.dispatch)

    def attach(self, subscriber: Subscriber, channels: Sequence[str]) -> list[Awaitable[None]]:
        """Add ``subscriber`` to ``channels``; await the result for broker readiness."""
        waits = []
        for channel in channels:
            subs = self._subs.get(channel)
            if subs is None:
                subs = self._subs[channel] = {}
                self._ready[channel] = self._broker.subscribe(channel)
            subs[subscriber] = None
            waits.append(self._ready[channel])
        return waits

    def detach(self, subscriber: Subscriber, channels: Sequence[str]) -> None:
        """Remove ``subscriber``; unsubscribe the broker from emptied channels."""
        for channel in channels:
            subs = self._subs.get(channel)
            if subs is None:
                continue
            subs.pop(subscriber, None)
            if not subs:
                del self._subs[channel]
                del self._ready[channel]
                self._broker.unsubscribe(channel)

    def dispatch(self, channel: str, payload: bytes) -> None:
        """Encode ``payload`` once and deliver it to every local subscriber."""
        self.received += 1
        subs = self._subs.get(channel)
        if not subs or payload in self.ignored:
            return
        started = time.perf_counter()
        frame = frame_for_payload(payload)
        for subscriber in tuple(subs):
            subscriber.deliver(frame, payload)
        if self._on_fanout is not None:
            self._on_fanout(len(subs), time.perf_counter() - started)

    def subscribers(self, channel: str) -> int:
        return len(self._subs.get(channel, ()))

    @property
    def channel_count(self) -> int:
        return len(self._subs)


class PubSub:
    """The pub/sub facade services use: names, registry, broker, default expiry."""

    def __init__(
        self, broker: Broker, names: ChannelNames, *, expire: int, registry: Registry
    ) -> None:
        self.broker = broker
        self.names = names
        self.expire = expire
        self.registry = registry

    def publisher(
        self,
        facility: str,
        *,
        broadcast: bool = False,
        users: Sequence[str] = (),
        groups: Sequence[str] = (),
        sessions: Sequence[str] = (),
    ) -> Publisher:
        return Publisher(
            self, facility, broadcast=broadcast, users=users, groups=groups, sessions=sessions
        )

    async def publish(
        self, channels: Iterable[str], message: str | bytes, *, expire: int | None = None
    ) -> None:
        """Publish ``message`` to each channel (ws4redis: PUBLISH, then SETEX if expire > 0)."""
        payload = message.encode() if isinstance(message, str) else message
        keep = self.expire if expire is None else expire
        for channel in channels:
            await self.broker.publish(channel, payload, expire=keep)

    async def publish_many(self, messages: Sequence[tuple[Iterable[str], bytes]]) -> None:
        """Publish each payload to its channels, nothing kept, in one broker round trip
        (a game's per-player states after a move, say)."""
        await self.broker.publish_many(
            [(channel, payload) for channels, payload in messages for channel in channels]
        )


class Publisher:
    """Mirror of ws4redis' ``RedisPublisher`` on any broker.

    ``Publisher(pubsub, "notifications", broadcast=True).publish("hi", expire=60)``
    reaches every ``/ws/notifications?subscribe-broadcast`` socket of the cluster.
    """

    def __init__(
        self,
        pubsub: PubSub,
        facility: str,
        *,
        broadcast: bool = False,
        users: Sequence[str] = (),
        groups: Sequence[str] = (),
        sessions: Sequence[str] = (),
    ) -> None:
        self._pubsub = pubsub
        self.channels = pubsub.names.audience(
            facility, broadcast=broadcast, users=users, groups=groups, sessions=sessions
        )

    async def publish(self, message: str | bytes, *, expire: int | None = None) -> None:
        """Publish to every channel of the audience; ``expire`` defaults to config.

        Raises:
            BrokerUnavailable: the broker is down; nothing was lost silently.
        """
        await self._pubsub.publish(self.channels, message, expire=expire)
