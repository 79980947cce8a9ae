"""RedisBroker: the :class:`~app.pubsub.Broker` contract over Redis pub/sub.

One subscriber connection per instance. SUBSCRIBE/UNSUBSCRIBE commands are
queued and sent in call order by one writer task; one reader task parses
replies (hiredis) and hands messages to the handler. When the connection
drops, the broker reconnects with capped exponential backoff and jitter and
re-subscribes every channel that still has local subscribers. Publishing uses
a separate pooled client that fails fast (no retries) while Redis is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
from collections import deque
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from app.errors import BrokerUnavailable
from app.pubsub import MessageHandler

__all__ = ["RedisBroker", "safe_url"]

log = logging.getLogger("playhouse.redis")

_SUBSCRIBE_BATCH = 500


def safe_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for logs and errors)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


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
        self._client = aioredis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
        )
        self._handler: MessageHandler | None = None
        self._wanted: set[str] = set()
        self._pending: dict[str, deque[asyncio.Future[None]]] = {}
        self._commands: deque[tuple[bytes, str]] = deque()
        self._wake = asyncio.Event()
        self._conn: AbstractConnection | None = None
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
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._drop_connection()
        await self._client.aclose()

    async def publish(self, channel: str, message: bytes, *, expire: int = 0) -> None:
        try:
            if expire > 0:
                async with self._client.pipeline(transaction=False) as pipe:
                    pipe.publish(channel, message)
                    pipe.setex(channel, expire, message)
                    await pipe.execute()
            else:
                await self._client.publish(channel, message)
        except (RedisError, OSError) as exc:
            raise BrokerUnavailable(
                f"publish to {channel!r} failed: Redis at {safe_url(self.url)} unavailable ({exc})"
            ) from None

    def subscribe(self, channel: str) -> Awaitable[None]:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.setdefault(channel, deque()).append(done)
        self._wanted.add(channel)
        self._queue(b"SUBSCRIBE", channel)
        return done

    def unsubscribe(self, channel: str) -> None:
        self._wanted.discard(channel)
        self._queue(b"UNSUBSCRIBE", channel)

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
    def subscribed_channels(self) -> frozenset[str]:
        return frozenset(self._wanted)

    def _queue(self, command: bytes, channel: str) -> None:
        if self._conn is not None:
            self._commands.append((command, channel))
            self._wake.set()

    async def _run(self) -> None:
        """Connect, serve, and reconnect with backoff until closed."""
        attempt = 0
        while not self._closing:
            try:
                await self._connect()
                attempt = 0
                await self._serve()
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError, ConnectionError) as exc:
                if self._closing:
                    return
                log.warning("redis subscriber connection lost: %s", exc)
            except Exception:
                log.exception("redis subscriber failed")
            self.connected.clear()
            await self._drop_connection()
            delay = random.uniform(0, min(self._backoff_cap, 0.05 * 2**attempt))
            attempt += 1
            await asyncio.sleep(delay)

    async def _connect(self) -> None:
        pool = self._client.connection_pool
        conn = pool.connection_class(**pool.connection_kwargs)
        await conn.connect()  # type: ignore[no-untyped-call]
        self._commands.clear()
        self._conn = conn
        wanted = sorted(self._wanted)
        for channel in list(self._pending):
            if channel not in self._wanted:
                self._resolve(channel)
        for i in range(0, len(wanted), _SUBSCRIBE_BATCH):
            await conn.send_command("SUBSCRIBE", *wanted[i : i + _SUBSCRIBE_BATCH])
        if not wanted:
            await conn.send_command("PING")
        self.connected.set()
        if self._on_reconnect is not None and self._was_connected:
            self._on_reconnect()
        self._was_connected = True

    async def _serve(self) -> None:
        writer = asyncio.create_task(self._write_loop(), name="redis-subscriber-writer")
        try:
            await self._read_loop()
        finally:
            writer.cancel()

    async def _write_loop(self) -> None:
        conn = self._conn
        assert conn is not None
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=5.0)
            except TimeoutError:
                await conn.send_command("PING")  # keeps dead links detectable
                continue
            self._wake.clear()
            while self._commands:
                command, first = self._commands.popleft()
                channels = [first]
                while self._commands and self._commands[0][0] == command and len(channels) < 500:
                    channels.append(self._commands.popleft()[1])
                await conn.send_command(command, *channels)

    async def _read_loop(self) -> None:
        conn = self._conn
        assert conn is not None
        while True:
            reply = await conn.read_response(timeout=math.inf)
            if not isinstance(reply, list) or not reply:
                continue
            kind = reply[0]
            if kind == b"message":
                if self._handler is not None:
                    try:
                        self._handler(reply[1].decode(), reply[2])
                    except Exception:
                        log.exception("message handler failed on %r", reply[1])
            elif kind == b"subscribe":
                self._resolve(reply[1].decode())

    def _resolve(self, channel: str) -> None:
        """Wake everyone waiting for ``channel`` to become active."""
        for waiter in self._pending.pop(channel, ()):
            if not waiter.done():
                waiter.set_result(None)

    async def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(RedisError, OSError):
                await conn.disconnect()
