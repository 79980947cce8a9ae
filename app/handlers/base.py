"""Shared handler plumbing: the one mapping from our errors to HTTP and WS codes."""

from __future__ import annotations

import logging
from typing import Any

import orjson
import tornado.web

from app.errors import BadRequest, Forbidden, PlayhouseError, ProtocolError, Unavailable

__all__ = ["BaseHandler", "http_status", "ws_close_code"]

log = logging.getLogger("playhouse.http")


def http_status(error: PlayhouseError) -> int:
    """HTTP status for ``error``."""
    if isinstance(error, Forbidden):
        return 403
    if isinstance(error, Unavailable):
        return 503
    if isinstance(error, BadRequest):
        return 400
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


class BaseHandler(tornado.web.RequestHandler):
    """JSON errors, never a traceback to the client."""

    def write_json(self, body: Any, *, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(orjson.dumps(body))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, PlayhouseError):
            body = {"error": exc.code, "message": str(exc)}
        else:
            body = {"error": "http_error", "message": self._reason}
        self.set_header("Content-Type", "application/json")
        self.finish(orjson.dumps(body))

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, PlayhouseError):
            log.info("%s %s: %s", self.request.method, self.request.uri, value)
        else:
            super().log_exception(typ, value, tb)

    def send_playhouse_error(self, error: PlayhouseError) -> None:
        self.write_json({"error": error.code, "message": str(error)}, status=http_status(error))
