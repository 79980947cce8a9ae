"""Admin broadcast: ``POST /api/admin/broadcast`` (admin session + XSRF, or the
operator bearer token) and the ``/admin`` page."""

from __future__ import annotations

import hmac

from app.errors import Invalid, Unauthorized
from app.handlers.session import ApiHandler, PageHandler

__all__ = ["AdminPage", "BroadcastApi"]


class BroadcastApi(ApiHandler):
    """Publish a notice; an operator token skips the session and XSRF."""

    def _bearer(self) -> str | None:
        header = self.request.headers.get("Authorization", "")
        return header[7:].strip() if header.lower().startswith("bearer ") else None

    def _operator(self) -> bool:
        token, expected = self._bearer(), self.web.admin_token
        if token is None:
            return False
        if not expected or not hmac.compare_digest(token.encode(), expected.encode()):
            raise Unauthorized("wrong operator token", code="bad_token")
        return True

    def check_xsrf_cookie(self) -> None:
        if self._bearer() is None:
            super().check_xsrf_cookie()

    async def prepare(self) -> None:
        if self._bearer() is None:
            await super().prepare()

    async def post(self) -> None:
        author = "operator" if self._operator() else self.admin().username
        body = self.json_body()
        notice = await self.web.notices.broadcast(
            body.get("text"), body.get("expire", 3600), author=author
        )
        self.write_json({"id": notice.id, "text": notice.text, "expire": notice.expire}, status=201)


class AdminPage(PageHandler):
    """The form, the history of notices and the connected-clients count."""

    async def get(self) -> None:
        self.admin()
        sent = self.get_argument("sent", "") == "1"
        await self._render(flash="Notice sent." if sent else None, error=None, text="")

    async def post(self) -> None:
        viewer = self.admin()
        text = self.get_body_argument("text", "")
        try:
            expire = int(self.get_body_argument("expire", "3600"))
        except ValueError:
            expire = -1
        try:
            if expire < 0:
                raise Invalid("expire", "expire must be a whole number of seconds")
            await self.web.notices.broadcast(text, expire, author=viewer.username)
        except Invalid as error:
            self.set_status(400)
            await self._render(flash=None, error=str(error), text=text)
            return
        self.redirect("/admin?sent=1")  # post/redirect/get: a reload sends nothing again

    async def _render(self, *, flash: str | None, error: str | None, text: str) -> None:
        notices = await self.web.notices.recent()
        self.render(
            "admin.html",
            notices=notices,
            flash=flash,
            error=error,
            text=text,
            connections=len(self.web.connections),
        )
