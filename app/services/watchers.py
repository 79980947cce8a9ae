"""How many people watch a game: per-instance spectator counts, summed over instances.

Each instance counts its own spectators per game (distinct usernames with a
spectator socket open on that instance, see :class:`app.handlers.game_socket.GameSockets`)
and reports that number here. With Redis the counts of all instances add up in
the hash ``{P}watchers:<game_id>`` (one field per instance id, deleted at 0,
the whole hash expiring a day after its last change, so an instance that died
leaves a stale count for at most that long); without Redis the local count is
the total. A user watching through two instances counts twice.
"""

from __future__ import annotations

import logging
from typing import Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

__all__ = ["WATCHERS_TTL", "LocalWatchers", "RedisWatchers", "Watchers"]

log = logging.getLogger("playhouse.watchers")

WATCHERS_TTL = 86_400
"""Seconds a game's watcher hash outlives its last change."""


class Watchers(Protocol):
    """Spectator counts per game across instances; never raises."""

    async def update(self, game_id: str, local: int) -> int:
        """Record this instance's count for ``game_id``; return the total watching."""

    async def total(self, game_id: str) -> int:
        """How many watch ``game_id`` on all instances."""


class LocalWatchers:
    """One instance (LocalBroker): the total is this instance's count."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}

    async def update(self, game_id: str, local: int) -> int:
        if local > 0:
            self._counts[game_id] = local
        else:
            self._counts.pop(game_id, None)
        return local

    async def total(self, game_id: str) -> int:
        return self._counts.get(game_id, 0)


class RedisWatchers:
    """Counts of every instance in ``{P}watchers:<game_id>`` (field = instance id)."""

    def __init__(self, client: aioredis.Redis, *, instance_id: str, prefix: str = "") -> None:
        self._client = client
        self._me = instance_id
        self._prefix = f"{prefix}:" if prefix else ""
        self._local: dict[str, int] = {}

    def _key(self, game_id: str) -> str:
        return f"{self._prefix}watchers:{game_id}"

    async def update(self, game_id: str, local: int) -> int:
        if local > 0:
            self._local[game_id] = local
        else:
            self._local.pop(game_id, None)
        key = self._key(game_id)
        try:
            async with self._client.pipeline(transaction=True) as pipe:
                if local > 0:
                    pipe.hset(key, self._me, local)
                    pipe.expire(key, WATCHERS_TTL)
                else:
                    pipe.hdel(key, self._me)
                pipe.hvals(key)
                replies = await pipe.execute()
        except (RedisError, OSError) as error:
            log.warning("watchers of %s not shared: %s", game_id, error)
            return local
        return _sum(replies[-1])

    async def total(self, game_id: str) -> int:
        try:
            values = await self._client.hvals(self._key(game_id))  # type: ignore[misc]
        except (RedisError, OSError) as error:
            log.warning("watchers of %s not read: %s", game_id, error)
            return self._local.get(game_id, 0)
        return _sum(values)


def _sum(values: list[bytes | str]) -> int:
    total = 0
    for value in values:
        try:
            total += max(0, int(value))
        except ValueError:
            continue
    return total
