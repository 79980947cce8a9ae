"""Admin notices: validate, keep, and broadcast on ``broadcast:notifications``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import orjson

from app.errors import Invalid
from app.pubsub import PubSub
from app.storage.base import Notice, Storage

__all__ = ["MAX_EXPIRE", "MAX_NOTICE_CHARS", "NOTICE_FACILITY", "Notices"]

NOTICE_FACILITY = "notifications"
MAX_NOTICE_CHARS = 1000
MAX_EXPIRE = 7 * 24 * 3600


def _validated(text: object, expire: object) -> tuple[str, int]:
    if not isinstance(text, str) or not text.strip():
        raise Invalid("text", "text is required")
    text = text.strip()
    if len(text) > MAX_NOTICE_CHARS:
        raise Invalid("text", f"text must be at most {MAX_NOTICE_CHARS} characters")
    if isinstance(expire, bool) or not isinstance(expire, int) or not 0 <= expire <= MAX_EXPIRE:
        raise Invalid("expire", f"expire must be a whole number of seconds, 0-{MAX_EXPIRE}")
    return text, expire


class Notices:
    """Broadcasts reach every ``/ws/notifications?subscribe-broadcast`` socket."""

    def __init__(
        self,
        storage: Storage,
        pubsub: PubSub,
        *,
        now: Callable[[], datetime] = lambda: datetime.now().astimezone(),
    ) -> None:
        self._storage = storage
        self._pubsub = pubsub
        self._now = now

    async def broadcast(self, text: object, expire: object, *, author: str) -> Notice:
        """Store, then publish with ``expire`` so late joiners within it still see it.

        Raises:
            Invalid: empty or overlong text, a bad expiry (nothing stored).
            StorageUnavailable / BrokerUnavailable: a dependency is down.
        """
        body, seconds = _validated(text, expire)
        notice = await self._storage.notices.add(
            text=body, author=author, expire=seconds, now=self._now()
        )
        message = orjson.dumps(
            {
                "type": "notice",
                "id": notice.id,
                "text": notice.text,
                "author": notice.author,
                "at": notice.created_at.isoformat(),
            }
        )
        await self._pubsub.publisher(NOTICE_FACILITY, broadcast=True).publish(
            message, expire=seconds
        )
        return notice

    async def recent(self, *, limit: int = 50) -> list[Notice]:
        return await self._storage.notices.recent(limit=limit)
