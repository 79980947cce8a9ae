"""Fixed-window attempt counters: in Redis when configured, in-process otherwise."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

__all__ = ["LocalRateLimiter", "RateLimiter", "RedisRateLimiter"]


class RateLimiter(Protocol):
    async def hit(self, key: str, *, limit: int, window: int) -> int:
        """Count one attempt; 0 if allowed, else seconds until the window resets."""


class LocalRateLimiter:
    """One process's counters (LocalBroker deployments)."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._windows: dict[str, tuple[float, int]] = {}
        self._clock = clock

    async def hit(self, key: str, *, limit: int, window: int) -> int:
        now = self._clock()
        started, count = self._windows.get(key, (now, 0))
        if now - started >= window:
            started, count = now, 0
        count += 1
        self._windows[key] = (started, count)
        if len(self._windows) > 100_000:
            self._forget(now, window)
        if count > limit:
            return max(1, int(started + window - now + 0.999))
        return 0

    def _forget(self, now: float, window: int) -> None:
        for key in [k for k, (s, _) in self._windows.items() if now - s >= window]:
            del self._windows[key]


class RedisRateLimiter:
    """Counters shared by every instance: ``INCR`` + ``EXPIRE`` on first hit.

    When Redis is down the attempt is allowed (fail open): rate limiting must
    not turn a Redis outage into a login outage.
    """

    def __init__(self, client: aioredis.Redis, *, prefix: str = "") -> None:
        self._client = client
        self._prefix = f"{prefix}:ratelimit:" if prefix else "ratelimit:"

    async def hit(self, key: str, *, limit: int, window: int) -> int:
        name = self._prefix + key
        try:
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.incr(name)
                pipe.expire(name, window, nx=True)
                pipe.ttl(name)
                count, _, ttl = await pipe.execute()
        except (RedisError, OSError):
            return 0
        return max(1, int(ttl)) if int(count) > limit else 0
