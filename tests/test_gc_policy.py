"""Full garbage collections wait for the timer; young ones stay automatic."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Iterator

import pytest

from app.gc_policy import NEVER, collect_periodically, defer_full_collections
from tests.support import wait_until


@pytest.fixture
def thresholds() -> Iterator[tuple[int, int, int]]:
    saved = gc.get_threshold()
    yield saved
    gc.set_threshold(*saved)


def test_only_the_oldest_generation_is_deferred(thresholds: tuple[int, int, int]) -> None:
    defer_full_collections()
    young, middle, oldest = gc.get_threshold()
    assert (young, middle) == thresholds[:2]
    assert oldest == NEVER


async def test_the_timer_collects_cycles_and_logs_the_pause(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="playhouse.gc")

    class Node:
        other: object = None

    a, b = Node(), Node()
    a.other, b.other = b, a  # a cycle only the collector can free
    del a, b
    task = asyncio.create_task(collect_periodically(0.01))
    try:
        await wait_until(
            lambda: any("full collection" in r.getMessage() for r in caplog.records),
            what="a timed full collection",
        )
    finally:
        task.cancel()
    assert not any(isinstance(o, Node) for o in gc.get_objects())
