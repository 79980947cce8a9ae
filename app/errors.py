"""The one error tree of Playhouse.

::

    PlayhouseError
     ├── BadRequest            malformed input (HTTP 400, WS close 1007/1003)
     │    └── ProtocolError    a WebSocket frame or handshake we cannot accept
     │    └── Invalid          a field that breaks a rule (HTTP 400, ``field`` named)
     ├── Unauthorized          not signed in, or bad credentials (HTTP 401)
     ├── Forbidden             not allowed for this identity (HTTP 403, WS 1008)
     ├── NotFound              (HTTP 404)
     ├── Conflict              a unique name is taken (HTTP 409)
     ├── RateLimited           too many attempts (HTTP 429 + Retry-After)
     └── Unavailable           a dependency is down (HTTP 503, WS 1011)
          ├── BrokerUnavailable
          └── StorageUnavailable

Mapping to HTTP status and WebSocket close codes lives in ``handlers/base.py``.
"""

from __future__ import annotations

__all__ = [
    "BadRequest",
    "BrokerUnavailable",
    "Conflict",
    "Forbidden",
    "Invalid",
    "NotFound",
    "PlayhouseError",
    "ProtocolError",
    "RateLimited",
    "StorageUnavailable",
    "Unauthorized",
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


class Invalid(BadRequest):
    """A field breaks a rule; ``field`` names it for forms and API clients."""

    code = "invalid"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class Unauthorized(PlayhouseError):
    code = "unauthorized"


class NotFound(PlayhouseError):
    code = "not_found"


class Conflict(PlayhouseError):
    code = "conflict"


class RateLimited(PlayhouseError):
    """Too many attempts; retry after ``retry_after`` seconds."""

    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StorageUnavailable(Unavailable):
    code = "storage_unavailable"
