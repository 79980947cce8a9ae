"""Bare, idiomatic Tornado fan-out server used as the benchmark baseline.

Same URL contract as Playhouse (ws4redis): ``/ws/<facility>?subscribe-broadcast`` keeps the
connection in a per-facility set; every text message from a ``?publish-broadcast`` connection is
sent to each subscriber with ``handler.write_message(text)``. ``/healthz`` answers 200.

Run: ``python bench/baseline_tornado.py --port 8888``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import resource

import tornado.web
import tornado.websocket

SUBSCRIBERS: dict[str, set[BroadcastHandler]] = {}


class BroadcastHandler(tornado.websocket.WebSocketHandler):
    """One WebSocket connection: subscriber, publisher, or both."""

    facility: str = ""
    publisher: bool = False

    def check_origin(self, origin: str) -> bool:
        """Accept any origin (benchmark only)."""
        return True

    def open(self, facility: str) -> None:  # type: ignore[override]
        """Register the connection according to its query string."""
        query = self.request.query
        self.facility = facility
        self.publisher = "publish-broadcast" in query
        if "subscribe-broadcast" in query:
            SUBSCRIBERS.setdefault(facility, set()).add(self)

    def on_message(self, message: str | bytes) -> None:
        """Send a publisher's text message to every subscriber of the facility."""
        if not self.publisher or not isinstance(message, str):
            return
        for handler in list(SUBSCRIBERS.get(self.facility, ())):
            with contextlib.suppress(tornado.websocket.WebSocketClosedError):
                handler.write_message(message)

    def on_close(self) -> None:
        """Forget the connection."""
        SUBSCRIBERS.get(self.facility, set()).discard(self)


class HealthHandler(tornado.web.RequestHandler):
    """Liveness probe."""

    def get(self) -> None:
        """Answer 200."""
        self.write("ok")


def raise_nofile_limit() -> None:
    """Raise the soft file-descriptor limit to the hard limit."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def main(port: int) -> None:
    """Serve until killed."""
    raise_nofile_limit()
    app = tornado.web.Application(
        [(r"/ws/([^/]+)", BroadcastHandler), (r"/healthz", HealthHandler)]
    )
    app.listen(port, address="127.0.0.1", backlog=4096)
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8888)
    asyncio.run(main(parser.parse_args().port))
