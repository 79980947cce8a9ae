"""RedisBroker: the :class:`~app.pubsub.Broker` contract over Redis pub/sub.

One subscriber connection per instance (:class:`~app.redis_link.SubscriberLink`).
SUBSCRIBE/UNSUBSCRIBE commands are written in call order; one reader task
parses replies (hiredis) and hands messages to the handler. When the connection
drops, the broker reconnects with capped exponential backoff and jitter and
re-subscribes every channel that still has local subscribers. Publishing uses
a separate pooled client that fails fast (no retries) while Redis is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import deque
from collections.abc import Awaitable, Callable, Sequence

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from app.config import safe_url
from app.errors import BrokerUnavailable
from app.pubsub import MessageHandler
from app.redis_link import SubscriberLink

__all__ = ["RedisBroker"]

log = logging.getLogger("playhouse.redis")

_SUBSCRIBE_BATCH = 500
_KEEPALIVE = 5.0  # seconds of silence before a PING on the subscriber link


class RedisBroker:
    """Broker over Redis; see the module docstring for the design.

    Args:
        url: ``redis://`` URL.
        timeout: seconds before a publish or connect attempt fails.
        backoff_cap: longest pause between reconnect attempts, in seconds.
        on_reconnect: called after every successful re-connection.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 2.0,
        backoff_cap: float = 2.0,
        on_reconnect: Callable[[], None] | None = None,
    ) -> None:
        self.url = url
        self._timeout = timeout
        self._backoff_cap = backoff_cap
        self._on_reconnect = on_reconnect
        # A blocking pool: a burst of sockets waits for a connection instead of
        # failing with "Too many connections" (redis-py's plain pool is capped).
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=64,
            timeout=timeout,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            # One immediate retry: a pooled connection may be stale after a Redis
            # restart; a Redis that is really down still fails fast (twice).
            retry=Retry(NoBackoff(), 1),
            health_check_interval=0,
            protocol=2,
        )
        self._client = aioredis.Redis(connection_pool=pool)
        self._handler: MessageHandler | None = None
        self._wanted: set[str] = set()
        self._pending: dict[str, deque[asyncio.Future[None]]] = {}
        self._link: SubscriberLink | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._was_connected = False
        self.connected = asyncio.Event()

    def set_handler(self, handler: MessageHandler) -> None:
        self._handler = handler

    async def start(self) -> None:
        """Check Redis is reachable, then run the subscriber loop in the background."""
        if not await self.ping():
            raise BrokerUnavailable(f"cannot reach Redis at {safe_url(self.url)}")
        self._task = asyncio.create_task(self._run(), name="redis-subscriber")
        await asyncio.wait_for(self.connected.wait(), timeout=self._timeout * 2)

    async def close(self) -> None:
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            # wait() never raises, so a cancellation aimed at *our* caller
            # is not swallowed here.
            await asyncio.wait([self._task], timeout=self._timeout + 1)
        await self._drop_connection()
        await self._client.aclose()

    async def publish(self, channel: str, message: bytes, *, expire: int = 0) -> None:
        try:
            if expire > 0:
                async with self._client.pipeline(transaction=False) as pipe:
                    pipe.publish(channel, message)
                    pipe.set(channel, message, ex=expire)  # SETEX, as ws4redis
                    await pipe.execute()
            else:
                await self._client.publish(channel, message)
        except (RedisError, OSError) as exc:
            raise BrokerUnavailable(
                f"publish to {channel!r} failed: Redis at {safe_url(self.url)} unavailable ({exc})"
            ) from None

    async def publish_many(self, messages: Sequence[tuple[str, bytes]]) -> None:
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for channel, message in messages:
                    pipe.publish(channel, message)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise BrokerUnavailable(
                f"publish failed: Redis at {safe_url(self.url)} unavailable ({exc})"
            ) from None

    def subscribe(self, channel: str) -> Awaitable[None]:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.setdefault(channel, deque()).append(done)
        self._wanted.add(channel)
        self._queue("SUBSCRIBE", channel)
        return done

    def unsubscribe(self, channel: str) -> None:
        self._wanted.discard(channel)
        self._queue("UNSUBSCRIBE", channel)

    async def last_message(self, channel: str) -> bytes | None:
        try:
            value = await self._client.get(channel)
        except (RedisError, OSError) as exc:
            raise BrokerUnavailable(f"Redis at {safe_url(self.url)} unavailable ({exc})") from None
        return value if isinstance(value, bytes) else None

    async def ping(self) -> bool:
        try:
            return bool(await self._client.ping())
        except (RedisError, OSError):
            return False

    @property
    def client(self) -> aioredis.Redis:
        """The pooled command client (shared with rate limiting)."""
        return self._client

    def _queue(self, command: str, channel: str) -> None:
        link = self._link
        if link is None:
            return  # re-subscribed from ``_wanted`` on connect
        # On a dead link the reader notices and reconnects from ``_wanted``.
        with contextlib.suppress(ConnectionError, OSError):
            link.send(command, channel)

    async def _run(self) -> None:
        """Connect, serve, and reconnect with backoff until closed."""
        attempt = 0
        while not self._closing:
            try:
                await self._connect()
                attempt = 0
                await self._read_loop()
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError, ConnectionError, TimeoutError) as exc:
                if self._closing:
                    return
                log.warning("redis subscriber connection lost: %s", exc)
            except Exception:
                if self._closing:
                    return
                log.exception("redis subscriber failed")
            self.connected.clear()
            await self._drop_connection()
            delay = random.uniform(0, min(self._backoff_cap, 0.05 * 2**attempt))
            attempt += 1
            await asyncio.sleep(delay)

    async def _connect(self) -> None:
        link = SubscriberLink(self.url, timeout=self._timeout)
        await link.connect()
        self._link = link
        wanted = sorted(self._wanted)
        for channel in list(self._pending):
            if channel not in self._wanted:
                self._resolve(channel)
        for i in range(0, len(wanted), _SUBSCRIBE_BATCH):
            link.send("SUBSCRIBE", *wanted[i : i + _SUBSCRIBE_BATCH])
        self.connected.set()
        if self._on_reconnect is not None and self._was_connected:
            self._on_reconnect()
        self._was_connected = True

    async def _read_loop(self) -> None:
        link = self._link
        assert link is not None
        silent = 0
        while True:
            replies = await link.read_replies(idle=_KEEPALIVE)
            if not replies:
                silent += 1
                if silent > 2:
                    raise ConnectionError("no reply to PING from Redis")
                link.send("PING")  # a dead link shows up as a timeout
                continue
            silent = 0
            for reply in replies:
                kind = reply[0] if isinstance(reply, list) and reply else None
                if kind == b"message":
                    handler = self._handler
                    if handler is not None:
                        try:
                            handler(reply[1].decode(), reply[2])
                        except Exception:
                            log.exception("message handler failed on %r", reply[1])
                elif kind == b"subscribe":
                    self._resolve(reply[1].decode())
                elif isinstance(reply, Exception):
                    log.warning("redis subscriber error reply: %s", reply)

    def _resolve(self, channel: str) -> None:
        """Wake everyone waiting for ``channel`` to become active."""
        for waiter in self._pending.pop(channel, ()):
            if not waiter.done():
                waiter.set_result(None)

    async def _drop_connection(self) -> None:
        link, self._link = self._link, None
        if link is not None:
            await link.close()
