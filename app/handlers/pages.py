"""Server-rendered pages that are not about accounts."""

from __future__ import annotations

from app.handlers.session import PageHandler

__all__ = ["IndexHandler", "NotFoundHandler"]


class IndexHandler(PageHandler):
    """``/``: live notices, and the way in for visitors."""

    def get(self) -> None:
        self.render("index.html")


class NotFoundHandler(PageHandler):
    """Every unknown path: a 404 page, not a stack trace."""

    async def prepare(self) -> None:
        await super().prepare()
        self.set_status(404)
        self.render("error.html", status_code=404, message="This page does not exist.")
