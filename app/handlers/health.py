"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from collections.abc import Callable

from app.handlers.base import BaseHandler
from app.metrics import Metrics
from app.pubsub import Broker

__all__ = ["HealthHandler", "MetricsHandler", "ReadyHandler"]


class HealthHandler(BaseHandler):
    """``/healthz``: the process is alive and its loop answers."""

    def get(self) -> None:
        self.write_json({"status": "ok"})


class ReadyHandler(BaseHandler):
    """``/readyz``: dependencies reachable and not draining, else 503."""

    def initialize(self, broker: Broker, draining: Callable[[], bool]) -> None:
        self._broker = broker
        self._draining = draining

    async def get(self) -> None:
        checks = {"broker": await self._broker.ping(), "draining": self._draining()}
        ready = checks["broker"] and not checks["draining"]
        self.write_json({"ready": ready, **checks}, status=200 if ready else 503)


class MetricsHandler(BaseHandler):
    """``/metrics`` in Prometheus text format."""

    def initialize(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def get(self) -> None:
        self.set_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        self.finish(self._metrics.render())
