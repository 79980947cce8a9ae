"""The game event log, appended in batches off the acknowledgement path.

A move is acknowledged once the game document (which carries the latest event)
is written; the event's copy in ``game_events`` follows here. Events queue up
while one batch is being written, so under load many events share one
``insert_many`` and a move costs the database one command, not two. A failed
batch is retried with back-off; an event already stored (a retry that did
land) is not an error.

An instance killed before its batch lands loses its copies; the game document
still holds the latest event, so whoever writes the game's next event queues the
previous one too (unless this writer already took care of it) and the log heals.
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
MAX_TRACKED_GAMES = 50_000
RETRY_SECONDS = (0.05, 0.2, 1.0, 2.0)


class EventLogWriter:
    """Queues events and writes them with ``append(batch)`` (one command per batch)."""

    def __init__(self, append: Callable[[Sequence[GameEvent]], Awaitable[None]]) -> None:
        self._append = append
        self._queue: list[GameEvent] = []
        # game id -> highest seq this writer queued (so knows to be, or to become, logged)
        self._mine: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()

    def add(self, event: GameEvent, *, previous: GameEvent | None = None) -> None:
        """Queue ``event`` (and ``previous``, the game's event before it, unless this
        writer queued that one itself: it may be the lost copy of a dead instance);
        the write starts at once unless a batch is in flight."""
        mine = self._mine.pop(event.game_id, 0)
        if previous is not None and previous.seq > mine:
            self._enqueue(previous)
        self._enqueue(event)
        self._mine[event.game_id] = event.seq
        if len(self._mine) > MAX_TRACKED_GAMES:
            del self._mine[next(iter(self._mine))]  # the game not written for longest
        if self._task is None:
            self._task = asyncio.ensure_future(self._drain())

    def _enqueue(self, event: GameEvent) -> None:
        if len(self._queue) >= MAX_QUEUED:
            dropped = self._queue.pop(0)
            log.error("event log queue full: %s seq %d not logged", dropped.game_id, dropped.seq)
        self._queue.append(event)
        self._idle.clear()

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
