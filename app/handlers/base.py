"""Shared handler plumbing: sessions in cookies, JSON bodies, and the one mapping
from our errors to HTTP status codes and WebSocket close codes."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import orjson
import tornado.web

from app.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    PlayhouseError,
    ProtocolError,
    RateLimited,
    Unauthorized,
    Unavailable,
)

__all__ = [
    "MAX_JSON_BYTES",
    "SESSION_COOKIE",
    "BaseHandler",
    "JsonHandler",
    "Viewer",
    "http_status",
    "ws_close_code",
]

log = logging.getLogger("playhouse.http")

SESSION_COOKIE = "playhouse_session"
# No inline script or style anywhere; sockets only to this origin.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'; "
    "object-src 'none'"
)
MAX_JSON_BYTES = 64 * 1024

_STATUS: tuple[tuple[type[PlayhouseError], int], ...] = (
    (Unauthorized, 401),
    (Forbidden, 403),
    (NotFound, 404),
    (Conflict, 409),
    (RateLimited, 429),
    (Unavailable, 503),
    (BadRequest, 400),
)


def http_status(error: PlayhouseError) -> int:
    """HTTP status for ``error``."""
    for kind, status in _STATUS:
        if isinstance(error, kind):
            return status
    return 500


def ws_close_code(error: PlayhouseError) -> int:
    """WebSocket close code for ``error`` (RFC 6455 §7.4.1)."""
    if isinstance(error, Forbidden):
        return 1008
    if isinstance(error, Unavailable):
        return 1011
    if isinstance(error, ProtocolError):
        return 1003
    if isinstance(error, BadRequest):
        return 1007
    return 1011


def error_body(error: PlayhouseError) -> dict[str, Any]:
    body: dict[str, Any] = {"error": error.code, "message": str(error)}
    if isinstance(error, Invalid):
        body["field"] = error.field
    return body


@dataclass(frozen=True)
class Viewer:
    """The signed-in user as templates see it."""

    username: str
    is_admin: bool
    session_id: str


class RequestsInFlight:
    """How many HTTP requests are being handled, so a drain can wait for them to end."""

    def __init__(self) -> None:
        self.count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def started(self) -> None:
        self.count += 1
        self._idle.clear()

    def ended(self) -> None:
        self.count -= 1
        if self.count == 0:
            self._idle.set()

    async def wait_idle(self, within: float) -> bool:
        """True once no request is in flight; False if ``within`` seconds pass first."""
        if self.count == 0:
            return True
        try:
            await asyncio.wait_for(self._idle.wait(), max(0.0, within))
        except TimeoutError:
            return False
        return True


class BaseHandler(tornado.web.RequestHandler):
    """Session cookie handling and error pages; never a traceback to the client."""

    current_user: Viewer | None

    async def _execute(self, *args: Any, **kwargs: Any) -> None:
        # Counted from start to end, so a draining instance answers what it accepted.
        tracker: RequestsInFlight | None = self.application.settings.get("in_flight")
        if tracker is None:
            await super()._execute(*args, **kwargs)
            return
        tracker.started()
        try:
            await super()._execute(*args, **kwargs)
        finally:
            tracker.ended()

    def session_id(self) -> str | None:
        """The session id from the signed cookie, if the signature holds."""
        raw = self.get_signed_cookie(SESSION_COOKIE, max_age_days=366)
        return raw.decode() if raw else None

    def remember_session(self, session_id: str, *, ttl: float) -> None:
        self.set_signed_cookie(
            SESSION_COOKIE,
            session_id,
            expires_days=ttl / 86400,
            httponly=True,
            samesite="Lax",
            secure=self.request.protocol == "https",
        )

    def forget_session(self) -> None:
        self.clear_cookie(SESSION_COOKIE)

    def client_ip(self) -> str:
        return self.request.remote_ip or "unknown"

    def set_default_headers(self) -> None:
        self.set_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Referrer-Policy", "same-origin")
        self.set_header("X-Frame-Options", "DENY")
        set_instance_header(self)

    def write_json(self, body: Any, *, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.finish(orjson.dumps(body))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, RateLimited):
            self.set_header("Retry-After", str(exc.retry_after))
        if isinstance(exc, PlayhouseError):
            body = error_body(exc)
        elif isinstance(exc, tornado.web.HTTPError) and "xsrf" in (exc.log_message or "").lower():
            body = {"error": "xsrf", "message": "missing or wrong XSRF token"}
        else:  # Tornado's own refusals: undecodable arguments, unknown methods
            code = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}
            body = {"error": code.get(status_code, "http_error"), "message": self._reason}
        self.set_header("Content-Type", "application/json")
        self.finish(orjson.dumps(body))

    def _handle_request_exception(self, e: BaseException) -> None:
        """Our errors become their HTTP status (with Retry-After for 429)."""
        if isinstance(e, PlayhouseError) and not self._finished:
            self.log_exception(type(e), e, e.__traceback__)
            self.send_error(http_status(e), exc_info=(type(e), e, e.__traceback__))
            return
        super()._handle_request_exception(e)

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, PlayhouseError):
            log.info("%s %s: %s", self.request.method, self.request.path, value)
        else:
            super().log_exception(typ, value, tb)


class JsonHandler(BaseHandler):
    """JSON API handlers: errors as JSON, bodies parsed and bounded."""

    def json_body(self) -> dict[str, Any]:
        """The request body as a JSON object.

        Raises:
            BadRequest: too large, not JSON, or not an object.
        """
        body = self.request.body
        if len(body) > MAX_JSON_BYTES:
            raise BadRequest(f"body larger than {MAX_JSON_BYTES} bytes", code="too_large")
        try:
            data = orjson.loads(body or b"{}")
        except orjson.JSONDecodeError:
            raise BadRequest("body is not valid JSON", code="bad_json") from None
        if not isinstance(data, dict):
            raise BadRequest("body must be a JSON object", code="bad_json")
        return data


INSTANCE_HEADER = "X-Playhouse-Instance"


def set_instance_header(handler: tornado.web.RequestHandler) -> None:
    """Name the instance that answered (which one nginx picked; for operators and tests)."""
    instance = handler.application.settings.get("instance_id")
    if instance:
        handler.set_header(INSTANCE_HEADER, instance)


class StaticFiles(tornado.web.StaticFileHandler):
    """``/static/``: Tornado's file handler with ``nosniff`` (nginx adds it too when in front)."""

    def set_default_headers(self) -> None:
        self.set_header("X-Content-Type-Options", "nosniff")
        set_instance_header(self)
