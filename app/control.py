"""Instance-to-instance control messages over the broker (e.g. close a session's sockets).

The channel name cannot collide with ws4redis channels, which all start with
``broadcast:``, ``user:``, ``group:`` or ``session:`` after the prefix.
"""

from __future__ import annotations

import logging

import orjson

from app.connections import ConnectionSet
from app.pubsub import PubSub

__all__ = ["ControlChannel"]

log = logging.getLogger("playhouse.control")


class ControlChannel:
    """Publishes and applies control operations on every instance."""

    def __init__(self, pubsub: PubSub, connections: ConnectionSet) -> None:
        self._pubsub = pubsub
        self._connections = connections
        self.channel = f"{pubsub.names.prefix}playhouse:control"

    async def start(self) -> None:
        for ready in self._pubsub.registry.attach(self, [self.channel]):
            await ready

    async def logout(self, session_key: str) -> None:
        """Close every socket of ``session_key`` on every instance."""
        message = orjson.dumps({"op": "logout", "session": session_key})
        await self._pubsub.publish([self.channel], message, expire=0)

    def deliver(self, frame: bytes, payload: bytes) -> None:
        try:
            op = orjson.loads(payload)
            if op.get("op") == "logout":
                closed = self._connections.close_session(str(op["session"]))
                log.info("closed %d sockets of a logged-out session", closed)
        except (orjson.JSONDecodeError, KeyError, AttributeError, TypeError):
            log.warning("ignored malformed control message")
