"""Accounts: registration, login, sessions, roles. No Tornado, no HTTP.

Usernames appear in Redis channel names (``user:<name>:<facility>``), so they
are NFKC-normalised and limited to ASCII letters, digits, ``_`` and ``-``;
uniqueness is case-insensitive (the case-folded name is the user's key).
"""

from __future__ import annotations

import re
import secrets
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from app.errors import Conflict, Invalid, RateLimited, Unauthorized
from app.passwords import PasswordHasher
from app.ratelimit import RateLimiter
from app.storage.base import ROLE_ADMIN, ROLE_USER, Session, Storage, User
from app.types import ANONYMOUS, Identity, Username

__all__ = [
    "MAX_PASSWORD_CHARS",
    "MIN_PASSWORD_CHARS",
    "Accounts",
    "LoginLimits",
    "normalize_username",
    "validate_password",
]

MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_CHARS = 1024
_USERNAME = re.compile(r"[A-Za-z0-9_-]{3,32}")


def normalize_username(raw: object) -> str:
    """The canonical spelling of ``raw``, or Invalid naming the rule it breaks."""
    if not isinstance(raw, str) or not raw.strip():
        raise Invalid("username", "username is required")
    if len(raw) > 64:
        raise Invalid("username", "username must be 3-32 characters")
    name = unicodedata.normalize("NFKC", raw.strip())
    if not 3 <= len(name) <= 32:
        raise Invalid("username", "username must be 3-32 characters")
    if not _USERNAME.fullmatch(name):
        raise Invalid("username", "username may contain only letters, digits, '_' and '-'")
    return name


def validate_password(raw: object) -> str:
    """``raw`` if it is an acceptable password, else Invalid."""
    if not isinstance(raw, str) or not raw:
        raise Invalid("password", "password is required")
    if len(raw) < MIN_PASSWORD_CHARS:
        raise Invalid("password", f"password must be at least {MIN_PASSWORD_CHARS} characters")
    if len(raw) > MAX_PASSWORD_CHARS:
        raise Invalid("password", f"password must be at most {MAX_PASSWORD_CHARS} characters")
    return raw


@dataclass(frozen=True)
class LoginLimits:
    """Attempts allowed per window (seconds) before 429."""

    per_user: int = 10
    per_ip: int = 50
    registrations_per_ip: int = 20
    window: int = 60


class Accounts:
    """The account use cases over a Storage, a PasswordHasher and a RateLimiter."""

    def __init__(
        self,
        storage: Storage,
        hasher: PasswordHasher,
        limiter: RateLimiter,
        *,
        session_ttl: float,
        limits: LoginLimits,
        now: Callable[[], datetime] = lambda: datetime.now().astimezone(),
    ) -> None:
        self._storage = storage
        self._hasher = hasher
        self._limiter = limiter
        self._ttl = session_ttl
        self._limits = limits
        self._now = now

    async def register(self, username: object, password: object, *, ip: str) -> User:
        """Create a user with role ``user``.

        Raises:
            Invalid: a field breaks a rule (nothing is stored).
            Conflict: the name is taken, in any letter case.
            RateLimited: too many registrations from ``ip``.
        """
        name = normalize_username(username)
        secret = validate_password(password)
        await self._limit(f"register:ip:{ip}", self._limits.registrations_per_ip)
        hashed = await self._hasher.hash(secret)
        try:
            return await self._storage.users.create(
                username=name, key=name.casefold(), password_hash=hashed, role=ROLE_USER
            )
        except Conflict:
            raise Conflict(f"username {name!r} is taken", code="username_taken") from None

    async def login(self, username: object, password: object, *, ip: str) -> tuple[User, Session]:
        """Check credentials and open a new session (a fresh id every time).

        Raises:
            Unauthorized: unknown user or wrong password, indistinguishably.
            RateLimited: too many attempts for this name or from ``ip``.
        """
        if not isinstance(username, str) or not isinstance(password, str):
            raise Invalid("username", "username and password are required")
        key = unicodedata.normalize("NFKC", username.strip()).casefold()[:64]
        await self._limit(f"login:ip:{ip}", self._limits.per_ip)
        await self._limit(f"login:user:{key}", self._limits.per_user)
        user = await self._storage.users.get(key) if _USERNAME.fullmatch(key) else None
        hashed = user.password_hash if user is not None else None
        ok = await self._hasher.verify(password[:MAX_PASSWORD_CHARS], hashed)
        if user is None or not ok:
            raise Unauthorized("wrong username or password", code="bad_credentials")
        return user, await self.open_session(user)

    async def open_session(self, user: User) -> Session:
        return await self._storage.sessions.create(
            session_id=secrets.token_hex(32), user_key=user.key, now=self._now(), ttl=self._ttl
        )

    async def logout(self, session_id: str) -> None:
        await self._storage.sessions.delete(session_id)

    async def session_user(self, session_id: str | None) -> tuple[Session, User] | None:
        """The live session and its user, or None (unknown, expired, user gone)."""
        if not session_id:
            return None
        session = await self._storage.sessions.get(session_id, now=self._now())
        if session is None:
            return None
        user = await self._storage.users.get(session.user_key)
        return (session, user) if user is not None else None

    async def identity(self, session_id: str | None) -> Identity:
        """What the channels know of a session: name, groups, session key, role."""
        found = await self.session_user(session_id)
        if found is None:
            return ANONYMOUS
        session, user = found
        return Identity(
            username=Username(user.username),
            groups=user.groups,
            session_key=session.id,
            is_admin=user.is_admin,
        )

    async def create_admin(self, username: object, password: object) -> User:
        """Create ``username`` as an admin, or promote it and reset its password."""
        name = normalize_username(username)
        hashed = await self._hasher.hash(validate_password(password))
        users = self._storage.users
        try:
            return await users.create(
                username=name, key=name.casefold(), password_hash=hashed, role=ROLE_ADMIN
            )
        except Conflict:
            await users.set_role(name.casefold(), ROLE_ADMIN)
            await users.set_password(name.casefold(), hashed)
            user = await users.get(name.casefold())
            assert user is not None
            return user

    async def _limit(self, key: str, limit: int) -> None:
        retry_after = await self._limiter.hit(key, limit=limit, window=self._limits.window)
        if retry_after:
            raise RateLimited(
                f"too many attempts; try again in {retry_after} s", retry_after=retry_after
            )
