"""Register, log in, log out: as pages and as ``/api/`` JSON calls."""

from __future__ import annotations

from typing import Any

from app.errors import Invalid, PlayhouseError, RateLimited
from app.handlers.base import http_status
from app.handlers.session import ApiHandler, PageHandler, safe_next
from app.storage.base import Session, User

__all__ = [
    "LoginApi",
    "LoginPage",
    "LogoutApi",
    "LogoutPage",
    "MeApi",
    "RegisterApi",
    "RegisterPage",
    "XsrfApi",
]

Handler = ApiHandler | PageHandler


def _me(user: User) -> dict[str, object]:
    return {"username": user.username, "role": user.role, "groups": list(user.groups)}


async def sign_in(handler: Handler, session: Session) -> None:
    """Set the new session cookie; a session the browser had before is ended (no fixation)."""
    old = handler.session_id()
    if old and old != session.id:
        await handler.web.accounts.logout(old)
    handler.remember_session(session.id, ttl=handler.web.session_ttl)


async def sign_out(handler: Handler) -> None:
    """End the session everywhere: database, cookie, and its open sockets on every instance."""
    session_id = handler.session_id()
    if session_id:
        await handler.web.accounts.logout(session_id)
        await handler.web.control.logout(session_id)
    handler.forget_session()


def render_form_error(
    handler: PageHandler, template: str, error: PlayhouseError, **namespace: Any
) -> None:
    handler.set_status(http_status(error))
    if isinstance(error, RateLimited):
        handler.set_header("Retry-After", str(error.retry_after))
    handler.render(template, error=str(error), **namespace)


class XsrfApi(ApiHandler):
    """``GET /api/xsrf``: sets the ``_xsrf`` cookie and returns the token."""

    def get(self) -> None:
        self.write_json({"xsrf": self.xsrf_token.decode()})


class MeApi(ApiHandler):
    async def get(self) -> None:
        found = await self.web.accounts.session_user(self.viewer().session_id)
        assert found is not None
        self.write_json(_me(found[1]))


class RegisterApi(ApiHandler):
    async def post(self) -> None:
        body = self.json_body()
        accounts = self.web.accounts
        user = await accounts.register(
            body.get("username"), body.get("password"), ip=self.client_ip()
        )
        await sign_in(self, await accounts.open_session(user))
        self.write_json(_me(user), status=201)


class LoginApi(ApiHandler):
    async def post(self) -> None:
        body = self.json_body()
        user, session = await self.web.accounts.login(
            body.get("username"), body.get("password"), ip=self.client_ip()
        )
        await sign_in(self, session)
        self.write_json(_me(user))


class LogoutApi(ApiHandler):
    async def post(self) -> None:
        await sign_out(self)
        self.write_json({"ok": True})


class LoginPage(PageHandler):
    def get(self) -> None:
        next_url = safe_next(self.get_argument("next", "/"))
        self.render("login.html", error=None, username="", next_url=next_url)

    async def post(self) -> None:
        username = self.get_body_argument("username", "")
        next_url = safe_next(self.get_body_argument("next", "/"))
        password = self.get_body_argument("password", "")
        try:
            _, session = await self.web.accounts.login(username, password, ip=self.client_ip())
        except PlayhouseError as error:
            render_form_error(self, "login.html", error, username=username, next_url=next_url)
            return
        await sign_in(self, session)
        self.redirect(next_url)


class RegisterPage(PageHandler):
    def get(self) -> None:
        self.render("register.html", error=None, field=None, username="")

    async def post(self) -> None:
        username = self.get_body_argument("username", "")
        password = self.get_body_argument("password", "")
        accounts = self.web.accounts
        try:
            if password != self.get_body_argument("password2", password):
                raise Invalid("password2", "the two passwords differ")
            user = await accounts.register(username, password, ip=self.client_ip())
        except PlayhouseError as error:
            field = error.field if isinstance(error, Invalid) else "username"
            render_form_error(self, "register.html", error, field=field, username=username)
            return
        await sign_in(self, await accounts.open_session(user))
        self.redirect("/")


class LogoutPage(PageHandler):
    async def post(self) -> None:
        await sign_out(self)
        self.redirect("/")
