"""Repository protocols and the records they return.

Every implementation raises :class:`~app.errors.StorageUnavailable` when its
database cannot be reached and :class:`~app.errors.Conflict` when a unique key
is taken; callers never see driver exceptions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

__all__ = [
    "Notice",
    "NoticeRepo",
    "Session",
    "SessionRepo",
    "Storage",
    "User",
    "UserRepo",
]

ROLE_USER = "user"
ROLE_ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class User:
    """An account. ``key`` is the case-folded username, unique."""

    username: str
    key: str
    password_hash: bytes
    role: str
    groups: tuple[str, ...]
    created_at: datetime

    @property
    def is_admin(self) -> bool:
        return self.role == ROLE_ADMIN


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in browser: a random 256-bit id bound to a user until ``expires_at``."""

    id: str
    user_key: str
    created_at: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Notice:
    """An admin broadcast as stored for the admin page."""

    id: str
    text: str
    author: str
    expire: int
    created_at: datetime


class UserRepo(Protocol):
    async def create(self, *, username: str, key: str, password_hash: bytes, role: str) -> User:
        """Insert a user; raises Conflict when ``key`` is taken."""

    async def get(self, key: str) -> User | None: ...

    async def set_role(self, key: str, role: str) -> bool:
        """True when the user exists (whatever its previous role)."""

    async def set_password(self, key: str, password_hash: bytes) -> bool: ...


class SessionRepo(Protocol):
    async def create(
        self, *, session_id: str, user_key: str, now: datetime, ttl: float
    ) -> Session: ...

    async def get(self, session_id: str, *, now: datetime) -> Session | None:
        """The session, or None when unknown or expired (checked on every read)."""

    async def delete(self, session_id: str) -> None: ...


class NoticeRepo(Protocol):
    async def add(self, *, text: str, author: str, expire: int, now: datetime) -> Notice: ...

    async def recent(self, *, limit: int) -> list[Notice]:
        """Newest first."""


class Storage(Protocol):
    @property
    def users(self) -> UserRepo: ...

    @property
    def sessions(self) -> SessionRepo: ...

    @property
    def notices(self) -> NoticeRepo: ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...
