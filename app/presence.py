"""Presence: who is online, across instances (ARCHITECTURE.md §5).

Each instance counts its own sockets per user. A user's first socket makes them
present on the instance; when their last socket closes they stay present for
``grace`` seconds, so a page reload (close, then open within the grace) changes
nothing. A user's cluster-wide status is the strongest status over all live
instances (``in_game`` beats ``online``); absent everywhere means ``offline``.

Every real transition of that status is published once on ``broadcast:lobby``
as ``{"type": "presence", "user": name, "status": "online"|"in_game"|"offline"}``
(``expire=0``: a diff is news, not state; late joiners call :meth:`Presence.online`)
and handed to the optional ``on_change`` callback.

:class:`LocalPresence` serves a single process; :class:`~app.presence_redis.RedisPresence`
mirrors the local state to Redis under an instance id with a heartbeat TTL.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Literal, Protocol

from app.errors import BrokerUnavailable
from app.pubsub import PubSub

__all__ = [
    "RANK",
    "ChangeHandler",
    "Diff",
    "LocalPresence",
    "Presence",
    "PresenceCore",
    "Sleep",
    "Status",
    "strongest",
]

log = logging.getLogger("playhouse.presence")

Status = Literal["online", "in_game"]
Diff = dict[str, str]
ChangeHandler = Callable[[Diff], None]
Sleep = Callable[[float], Awaitable[None]]

RANK: dict[str, int] = {"online": 1, "in_game": 2}
"""Status strength: a user in a game on one instance is ``in_game`` everywhere."""


def strongest(a: str | None, b: str | None) -> str | None:
    """The stronger of two statuses (``None`` = absent)."""
    if a is None:
        return b
    if b is None:
        return a
    return b if RANK[b] > RANK[a] else a


class Presence(Protocol):
    """Who is online; implemented by :class:`LocalPresence` and ``RedisPresence``.

    Callers' contract: call :meth:`connected` once per opened socket of a logged-in
    user and :meth:`disconnected` once when it closes. No method raises because
    the backing store is down (failures are logged and repaired later).
    """

    async def start(self) -> None:
        """Begin (register the instance, start background work)."""

    async def close(self) -> None:
        """Stop; this instance's users leave at once (no grace)."""

    async def connected(self, username: str) -> None:
        """A socket of ``username`` opened on this instance."""

    async def disconnected(self, username: str) -> None:
        """A socket of ``username`` closed on this instance."""

    async def set_status(self, username: str, status: Status) -> None:
        """Set ``username``'s status on this instance; ignored if absent here.

        Raises:
            ValueError: ``status`` is not ``"online"`` or ``"in_game"``.
        """

    async def online(self) -> dict[str, str]:
        """Username → status, the union over all live instances."""


class PresenceCore:
    """Local socket counts, statuses, grace timers and diff publishing.

    Subclasses implement :meth:`_sync` (push ``self._status.get(user)`` to the
    store and emit the resulting diffs) and :meth:`online`.

    Args:
        pubsub: diffs go to ``pubsub.names.broadcast("lobby")``.
        grace: seconds a user with no socket left stays present.
        sleep: awaited for the grace (inject a fake in tests).
        on_change: called with each diff before it is published; must not block.
    """

    def __init__(
        self,
        pubsub: PubSub,
        *,
        grace: float = 3.0,
        sleep: Sleep = asyncio.sleep,
        on_change: ChangeHandler | None = None,
    ) -> None:
        self._pubsub = pubsub
        self._channel = pubsub.names.broadcast("lobby")
        self._grace = grace
        self._sleep = sleep
        self.on_change = on_change
        self._counts: dict[str, int] = {}
        # Users present on this instance: open sockets, or inside their grace.
        self._status: dict[str, str] = {}
        self._leaving: dict[str, asyncio.Task[None]] = {}

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        """Cancel pending grace timers and forget local users (nothing published)."""
        tasks = list(self._leaving.values())
        self._leaving.clear()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        self._counts.clear()
        self._status.clear()

    def connections(self, username: str) -> int:
        """Open sockets of ``username`` on this instance."""
        return self._counts.get(username, 0)

    async def connected(self, username: str) -> None:
        self._counts[username] = self._counts.get(username, 0) + 1
        leaving = self._leaving.pop(username, None)
        if leaving is not None:
            leaving.cancel()  # back within the grace: a reload, nothing to say
            return
        if username in self._status:
            return  # another socket of a present user
        self._status[username] = "online"
        await self._sync(username)

    async def disconnected(self, username: str) -> None:
        count = self._counts.get(username, 0)
        if count == 0:
            log.warning("presence: disconnect of %r without a connect", username)
            return
        if count > 1:
            self._counts[username] = count - 1
            return
        del self._counts[username]
        if username in self._status and username not in self._leaving:
            self._leaving[username] = asyncio.create_task(
                self._leave(username), name=f"presence-grace-{username}"
            )

    async def set_status(self, username: str, status: Status) -> None:
        if status not in RANK:
            raise ValueError(f"unknown presence status {status!r}")
        if self._status.get(username, status) == status:
            return  # absent here, or unchanged
        self._status[username] = status
        await self._sync(username)

    async def _leave(self, username: str) -> None:
        await self._sleep(self._grace)
        if self._leaving.get(username) is not asyncio.current_task():
            return
        del self._leaving[username]
        del self._status[username]
        await self._sync(username)

    async def _sync(self, username: str) -> None:
        raise NotImplementedError

    async def _emit(self, diffs: Iterable[tuple[str, str]]) -> None:
        """Hand each ``(user, status)`` diff to ``on_change``, then publish it on the lobby."""
        for user, status in diffs:
            diff: Diff = {"type": "presence", "user": user, "status": status}
            if self.on_change is not None:
                try:
                    self.on_change(diff)
                except Exception:
                    log.exception("presence on_change failed for %r", diff)
            message = json.dumps(diff)
            for attempt in (1, 2):  # STYLE 15: retry a publish once
                try:
                    await self._pubsub.publish([self._channel], message, expire=0)
                    break
                except BrokerUnavailable as exc:
                    if attempt == 2:
                        log.error("presence diff lost: %s (%s)", message, exc)


class LocalPresence(PresenceCore):
    """Presence of a single process (``redis.url`` empty); see :class:`PresenceCore`."""

    def __init__(
        self,
        pubsub: PubSub,
        *,
        grace: float = 3.0,
        sleep: Sleep = asyncio.sleep,
        on_change: ChangeHandler | None = None,
    ) -> None:
        super().__init__(pubsub, grace=grace, sleep=sleep, on_change=on_change)
        self._published: dict[str, str] = {}

    async def _sync(self, username: str) -> None:
        before = self._published.get(username)
        after = self._status.get(username)
        if before == after:
            return
        if after is None:
            del self._published[username]
        else:
            self._published[username] = after
        await self._emit([(username, after or "offline")])

    async def online(self) -> dict[str, str]:
        return dict(self._published)

    async def close(self) -> None:
        await super().close()
        self._published.clear()
