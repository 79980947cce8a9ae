"""Handlers that know who is signed in: JSON API and server-rendered pages."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from app.errors import Forbidden, PlayhouseError, Unauthorized
from app.handlers.base import BaseHandler, JsonHandler, Viewer
from app.handlers.context import WebContext

__all__ = ["ApiHandler", "PageHandler", "safe_next"]


def safe_next(raw: str | None) -> str:
    """A same-site path to go to after login; anything else becomes ``/``."""
    if not raw or not raw.startswith("/") or raw.startswith("//") or "\\" in raw:
        return "/"
    parts = urlsplit(raw)
    if parts.scheme or parts.netloc:
        return "/"
    return raw


class _SessionMixin(BaseHandler):
    web: WebContext

    def initialize(self, web: WebContext) -> None:
        self.web = web

    async def prepare(self) -> None:
        self.current_user = None
        found = await self.web.accounts.session_user(self.session_id())
        if found is not None:
            session, user = found
            self.current_user = Viewer(user.username, user.is_admin, session.id)

    def viewer(self) -> Viewer:
        """The signed-in user, or Unauthorized."""
        if self.current_user is None:
            raise Unauthorized("sign in first", code="not_signed_in")
        return self.current_user

    def admin(self) -> Viewer:
        viewer = self.viewer()
        if not viewer.is_admin:
            raise Forbidden("admins only", code="not_admin")
        return viewer


class ApiHandler(_SessionMixin, JsonHandler):
    """``/api/...``: JSON in, JSON out."""


class PageHandler(_SessionMixin):
    """Server-rendered pages; errors render ``error.html``."""

    def get_template_namespace(self) -> dict[str, Any]:
        namespace = super().get_template_namespace()
        namespace.update(heartbeat=self.web.heartbeat, title="Playhouse")
        return namespace

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, Unauthorized) and self.request.method == "GET":
            self.redirect(f"/login?next={self.request.path}")
            return
        message = str(exc) if isinstance(exc, PlayhouseError) else (self._reason or "error")
        self.render("error.html", status_code=status_code, message=message)
