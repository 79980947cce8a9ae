"""Instance-to-instance control messages over the broker: close a session's sockets,
set a player's presence status where their sockets are, re-plan a user's group
channels after a guild membership change, and re-check a player marked away from a
game where they still have a socket.

The channel name cannot collide with ws4redis channels, which all start with
``broadcast:``, ``user:``, ``group:`` or ``session:`` after the prefix.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import orjson

from app.connections import ConnectionSet
from app.presence import Presence
from app.pubsub import PubSub

__all__ = ["ControlChannel"]

log = logging.getLogger("playhouse.control")


class ControlChannel:
    """Publishes and applies control operations on every instance."""

    def __init__(self, pubsub: PubSub, connections: ConnectionSet, presence: Presence) -> None:
        self._pubsub = pubsub
        self._connections = connections
        self._presence = presence
        self._tasks: set[asyncio.Task[None]] = set()
        self.channel = f"{pubsub.names.prefix}playhouse:control"
        # Set by the wiring: a user's current groups, read when a regroup arrives.
        self.groups_of: Callable[[str], Awaitable[tuple[str, ...]]] | None = None
        self._regrouping = asyncio.Lock()
        # Set by the wiring: "is (game, player) still connected here? then say so".
        self.on_game_left: Callable[[str, str], None] | None = None

    async def start(self) -> None:
        for ready in self._pubsub.registry.attach(self, [self.channel]):
            await ready

    async def logout(self, session_key: str) -> None:
        """Close every socket of ``session_key`` on every instance."""
        message = orjson.dumps({"op": "logout", "session": session_key})
        await self._pubsub.publish([self.channel], message, expire=0)

    async def set_status(self, users: list[str], status: str) -> None:
        """Set presence ``status`` (``in_game`` / ``online``) of ``users`` on every instance.

        Only the instances holding a user's sockets change anything.
        """
        message = orjson.dumps({"op": "status", "users": users, "status": status})
        await self._pubsub.publish([self.channel], message, expire=0)

    async def regroup(self, user: str) -> None:
        """Re-plan ``user``'s group sockets on every instance from their stored groups.

        Sent after the membership write, and applied in arrival order with a fresh
        read each time, so the last one always leaves the sockets on the last state.
        """
        message = orjson.dumps({"op": "regroup", "user": user})
        await self._pubsub.publish([self.channel], message, expire=0)

    async def game_left(self, game_id: str, player: str) -> None:
        """``player``'s last game socket on one instance closed and they were marked away:
        every instance that still holds one of their sockets marks them back."""
        message = orjson.dumps({"op": "game_left", "game": game_id, "player": player})
        await self._pubsub.publish([self.channel], message, expire=0)

    async def _apply_regroup(self, user: str) -> None:
        if self.groups_of is None:
            return
        async with self._regrouping:
            try:
                groups = await self.groups_of(user)
            except Exception:
                log.exception("groups of %s not read; their sockets keep their channels", user)
                return
            self._connections.regroup(user, groups)

    def deliver(self, frame: bytes, payload: bytes) -> None:
        try:
            op = orjson.loads(payload)
            if op.get("op") == "logout":
                closed = self._connections.close_session(str(op["session"]))
                log.info("closed %d sockets of a logged-out session", closed)
            elif op.get("op") == "status" and op["status"] in ("online", "in_game"):
                for user in op["users"]:
                    self._spawn(self._presence.set_status(str(user), op["status"]))
            elif op.get("op") == "regroup":
                self._spawn(self._apply_regroup(str(op["user"])))
            elif op.get("op") == "game_left" and self.on_game_left is not None:
                self.on_game_left(str(op["game"]), str(op["player"]))
        except (orjson.JSONDecodeError, KeyError, AttributeError, TypeError):
            log.warning("ignored malformed control message")

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
