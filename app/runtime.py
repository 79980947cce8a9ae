"""One running instance: HTTP server, background tasks, graceful drain."""

from __future__ import annotations

import asyncio
import gc
import logging
import random
import socket
from collections.abc import Coroutine
from typing import Any

import tornado.httpserver
import tornado.netutil

from app import make_app
from app.config import Settings
from app.deps import Deps, build_deps
from app.errors import PlayhouseError
from app.handlers.base import RequestsInFlight
from app.mongo_server import EmbeddedMongo

__all__ = ["Instance"]

log = logging.getLogger("playhouse")

STOP_TASKS_SECONDS = 5.0


def _reraise_cancellation() -> None:
    """Raise CancelledError if the current task is being cancelled (after a library
    turned the cancellation into an ordinary error, which a retry loop would swallow)."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class Instance:
    """Owns deps, the listening sockets and the periodic tasks of one process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.deps: Deps | None = None
        self.port = 0
        self._server: tornado.httpserver.HTTPServer | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._embedded: EmbeddedMongo | None = None
        self._in_flight = RequestsInFlight()
        self._stopping = False

    async def start(self, *, sockets: list[socket.socket] | None = None) -> None:
        """Build deps and listen; ``sockets`` (pre-bound) are used when given.

        Raises:
            BrokerUnavailable: Redis is configured but unreachable.
            StorageUnavailable: MongoDB is unreachable (or the embedded one failed).
        """
        settings = self.settings
        mongo_url = settings.mongodb.url
        if not mongo_url:
            self._embedded = EmbeddedMongo(settings.mongodb.data_dir)
            await self._embedded.start()
            mongo_url = self._embedded.url
        self.deps = deps = await build_deps(settings, mongo_url=mongo_url)
        app = make_app(settings, deps)
        self._in_flight = app.settings["in_flight"]
        self._server = tornado.httpserver.HTTPServer(app, xheaders=settings.server.xheaders)
        if sockets is None:
            server = settings.server
            sockets = tornado.netutil.bind_sockets(server.port, server.host, backlog=server.backlog)
        self._server.add_sockets(sockets)
        self.port = sockets[0].getsockname()[1]
        heartbeat = settings.ws4redis.heartbeat
        if heartbeat:
            interval = settings.limits.heartbeat_interval
            self._spawn(deps.connections.run_heartbeats(heartbeat, interval=interval))
        limits = settings.limits
        if limits.ping_interval > 0:
            self._spawn(
                deps.connections.run_pings(
                    interval=limits.ping_interval,
                    pong_timeout=limits.ping_timeout or limits.ping_interval,
                    on_timeout=deps.metrics.ping_timeouts.inc,
                )
            )
        self._spawn(self._watch_loop_lag(interval=settings.server.lag_probe_interval))
        games = settings.games
        self._spawn(
            self._sweep_expiries(interval=games.sweep_interval, full=games.full_sweep_interval)
        )
        # Start-up garbage is permanent: move it out of the collector's way.
        gc.collect()
        gc.freeze()
        log.info("instance %s listening on port %d", deps.instance_id, self.port)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        self._tasks.append(asyncio.create_task(coro))

    async def _watch_loop_lag(self, *, interval: float) -> None:
        assert self.deps is not None
        histogram = self.deps.metrics.ioloop_lag
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await asyncio.sleep(interval)
            histogram.observe(max(0.0, loop.time() - started - interval))

    async def _sweep_expiries(self, *, interval: float, full: float) -> None:
        """End games whose clock or absence ran out and expire old challenges.

        Every ``interval`` those this instance handled (from memory); every ``full``
        seconds all of them (a database query, which also finds those of an instance
        that died). Runs on every instance; each expiry is claimed by one
        conditional write.
        """
        assert self.deps is not None
        deps = self.deps
        loop = asyncio.get_running_loop()
        failing = False
        # Instances started together should not all query at the same moment.
        next_full = loop.time() + random.uniform(0, full)
        while not self._stopping:  # a cancellation swallowed deep inside must not keep us
            await asyncio.sleep(interval)
            everywhere = loop.time() >= next_full
            if everywhere:
                next_full = loop.time() + full
            try:
                await deps.play.expire_due(everywhere=everywhere)
                await deps.lobby.expire_due(everywhere=everywhere)
                if everywhere:
                    await deps.play.retry_finish_hooks()
            except PlayhouseError as error:
                _reraise_cancellation()  # the driver may turn a cancellation into an error
                if not failing:
                    log.warning("expiry sweep failed: %s (retrying every %.1fs)", error, interval)
                failing = True
                continue
            except Exception:
                _reraise_cancellation()
                log.exception("expiry sweep failed")
                continue
            if failing:
                log.info("expiry sweep working again")
                failing = False

    async def drain(self) -> bool:
        """Fail readiness, stop accepting, close sockets with 1001 once their frame in hand
        is answered, and let HTTP requests in flight finish; True if all that happened
        within ``server.drain_seconds``."""
        assert self.deps is not None
        self.deps.draining = True
        if self._server is not None:
            self._server.stop()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.server.drain_seconds
        closed = await self.deps.connections.drain(deadline=self.settings.server.drain_seconds)
        answered = await self._in_flight.wait_idle(deadline - loop.time())
        if not answered:
            log.warning("drain deadline passed with %d requests in flight", self._in_flight.count)
        return closed and answered

    async def stop(self) -> None:
        """Stop tasks and close dependencies (after :meth:`drain` for a clean exit)."""
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            _, stuck = await asyncio.wait(self._tasks, timeout=STOP_TASKS_SECONDS)
            for task in stuck:
                log.error("background task %s did not stop", task.get_coro())
        self._tasks.clear()
        if self._server is not None:
            self._server.stop()
            await self._server.close_all_connections()
        if self.deps is not None:
            await self.deps.close()
        if self._embedded is not None:
            self._embedded.stop()
