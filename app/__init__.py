"""Playhouse: ``make_app`` wires routes to their dependencies, nothing else."""

from __future__ import annotations

from pathlib import Path

import tornado.web

from app.config import Settings
from app.deps import Deps
from app.handlers.health import HealthHandler, MetricsHandler, ReadyHandler
from app.handlers.pages import IndexHandler
from app.handlers.ws import Ws4RedisHandler, WsContext

__all__ = ["ROOT", "make_app"]

ROOT = Path(__file__).resolve().parent.parent


def make_app(settings: Settings, deps: Deps) -> tornado.web.Application:
    """The Tornado application for ``settings`` over already-started ``deps``."""
    ws = WsContext(
        pubsub=deps.pubsub,
        policy=deps.policy,
        identify=deps.identify,
        connections=deps.connections,
        metrics=deps.metrics,
        heartbeat=settings.ws4redis.heartbeat,
        allowed_origins=frozenset(settings.security.allowed_origins),
        max_outgoing_bytes=settings.limits.max_outgoing_bytes,
        subscribe_timeout=settings.redis.timeout,
    )
    handlers = [
        (r"/", IndexHandler, {"heartbeat": settings.ws4redis.heartbeat}),
        (r"/healthz", HealthHandler),
        (r"/readyz", ReadyHandler, {"broker": deps.pubsub.broker, "draining": deps.is_draining}),
        (r"/metrics", MetricsHandler, {"metrics": deps.metrics}),
        (r"/ws/(.*)", Ws4RedisHandler, {"ctx": ws}),
    ]
    limits = settings.limits
    return tornado.web.Application(
        handlers,  # type: ignore[arg-type]
        template_path=str(ROOT / "templates"),
        static_path=str(ROOT / "static"),
        cookie_secret=deps.cookie_secret,
        xsrf_cookies=True,
        debug=settings.server.debug,
        # Pings run in one sweep for all sockets (ConnectionSet.run_pings).
        websocket_ping_interval=None,
        websocket_max_message_size=limits.max_message_bytes,
    )
