"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from app.handlers.base import BaseHandler
from app.metrics import Metrics

__all__ = ["HealthHandler", "MetricsHandler", "ReadyHandler"]


class HealthHandler(BaseHandler):
    """``/healthz``: the process is alive and its loop answers."""

    def get(self) -> None:
        self.write_json({"status": "ok"})


class ReadyHandler(BaseHandler):
    """``/readyz``: dependencies reachable and not draining, else 503."""

    def initialize(
        self, checks: dict[str, Callable[[], Awaitable[bool]]], draining: Callable[[], bool]
    ) -> None:
        self._checks = checks
        self._draining = draining

    async def get(self) -> None:
        results = {name: await check() for name, check in self._checks.items()}
        ready = all(results.values()) and not self._draining()
        body = {"ready": ready, **results, "draining": self._draining()}
        self.write_json(body, status=200 if ready else 503)


class MetricsHandler(BaseHandler):
    """``/metrics`` in Prometheus text format."""

    def initialize(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def get(self) -> None:
        self.set_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        self.finish(self._metrics.render())
