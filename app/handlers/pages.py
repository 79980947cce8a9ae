"""Server-rendered pages."""

from __future__ import annotations

from app.handlers.base import BaseHandler

__all__ = ["IndexHandler"]


class IndexHandler(BaseHandler):
    """``/``: a live view of ``/ws/notifications?subscribe-broadcast``."""

    def initialize(self, heartbeat: str) -> None:
        self._heartbeat = heartbeat

    def get(self) -> None:
        self.render("index.html", title="Playhouse", heartbeat=self._heartbeat)
