"""The one error tree of Playhouse.

::

    PlayhouseError
     ├── BadRequest            malformed input (HTTP 400, WS close 1007/1003)
     │    └── ProtocolError    a WebSocket frame or handshake we cannot accept
     ├── Forbidden             not allowed for this identity (HTTP 403, WS 1008)
     └── Unavailable           a dependency is down (HTTP 503, WS 1011)
          └── BrokerUnavailable

Mapping to HTTP status and WebSocket close codes lives in ``handlers/base.py``.
"""

from __future__ import annotations

__all__ = [
    "BadRequest",
    "BrokerUnavailable",
    "Forbidden",
    "PlayhouseError",
    "ProtocolError",
    "Unavailable",
]


class PlayhouseError(Exception):
    """Base of every error we raise on purpose; ``code`` is machine-readable."""

    code = "error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class BadRequest(PlayhouseError):
    code = "bad_request"


class ProtocolError(BadRequest):
    code = "protocol_error"


class Forbidden(PlayhouseError):
    code = "forbidden"


class Unavailable(PlayhouseError):
    code = "unavailable"


class BrokerUnavailable(Unavailable):
    code = "broker_unavailable"
