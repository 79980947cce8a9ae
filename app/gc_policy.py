"""When CPython's cycle collector runs: young generations as usual, full ones on a timer.

A full collection walks every tracked object with the IOLoop stopped. With hundreds of
live games and a thousand sockets that takes tens of milliseconds, and CPython starts
one whenever the objects that survived into the oldest generation have grown by a
quarter — which the cached game states, replaced on every move, do many times a
minute under load. Every move in flight waits for it: the game relay's p99 at 300
moves/s over 500 games was 44-143 ms with the default policy and 11-21 ms with the
collector off (docs/benchmarks.md). So the oldest generation is left to a timer:
one full collection every ``server.gc_full_interval`` seconds, timed and logged.
Reference counting still frees everything that is not part of a cycle at once.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time

__all__ = ["collect_periodically", "defer_full_collections"]

log = logging.getLogger("playhouse.gc")

NEVER = 1_000_000_000
"""A third threshold no run ever reaches: the oldest generation waits for the timer."""


def defer_full_collections() -> None:
    """Keep the automatic young-generation collections; stop automatic full ones."""
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, NEVER)


async def collect_periodically(interval: float) -> None:
    """Run a full collection every ``interval`` seconds, until cancelled."""
    while True:
        await asyncio.sleep(interval)
        started = time.perf_counter()
        found = gc.collect()
        pause_ms = (time.perf_counter() - started) * 1000
        level = logging.INFO if pause_ms >= 50 else logging.DEBUG
        log.log(level, "full collection: %d unreachable objects, %.1f ms", found, pause_ms)
