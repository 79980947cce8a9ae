"""The game event log, appended in batches off the acknowledgement path.

A move is acknowledged once the game document (which carries the latest event)
is written; the event's copy in ``game_events`` follows here. Events queue up
while one batch is being written, so under load many events share one
``insert_many`` and a move costs the database one command, not two. A failed
batch is retried with back-off; an event already stored (a retry that did
land) is not an error.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from app.storage.games import GameEvent

__all__ = ["EventLogWriter"]

log = logging.getLogger("playhouse.events")

MAX_BATCH = 500
MAX_QUEUED = 100_000
RETRY_SECONDS = (0.05, 0.2, 1.0, 2.0)


class EventLogWriter:
    """Queues events and writes them with ``append(batch)`` (one command per batch)."""

    def __init__(self, append: Callable[[Sequence[GameEvent]], Awaitable[None]]) -> None:
        self._append = append
        self._queue: list[GameEvent] = []
        self._task: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()

    def add(self, event: GameEvent) -> None:
        """Queue ``event``; the write starts at once unless a batch is in flight."""
        if len(self._queue) >= MAX_QUEUED:
            dropped = self._queue.pop(0)
            log.error("event log queue full: %s seq %d not logged", dropped.game_id, dropped.seq)
        self._queue.append(event)
        self._idle.clear()
        if self._task is None:
            self._task = asyncio.ensure_future(self._drain())

    async def flush(self, within: float = 5.0) -> bool:
        """Wait until every queued event is written (at most ``within`` s); True if it was."""
        try:
            async with asyncio.timeout(within):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    def pending(self) -> int:
        return len(self._queue)

    async def _drain(self) -> None:
        failures = 0
        try:
            while self._queue:
                batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
                try:
                    await self._append(batch)
                    failures = 0
                except Exception as error:
                    self._queue[:0] = batch  # keep order; try again after a pause
                    delay = RETRY_SECONDS[min(failures, len(RETRY_SECONDS) - 1)]
                    if failures == 0:
                        log.warning("event log write failed (%s); retrying", error)
                    failures += 1
                    await asyncio.sleep(delay)
        finally:
            self._task = None
            if self._queue:  # cancelled with work left: a later add() starts again
                log.warning("event log writer stopped with %d events queued", len(self._queue))
            else:
                self._idle.set()
