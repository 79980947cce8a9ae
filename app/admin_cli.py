"""``python server.py create-admin NAME``: create or promote an administrator.

The password is read from a prompt (twice) or, when stdin is not a terminal,
from its first line — never from the command line, where ``ps`` would show it.
"""

from __future__ import annotations

import getpass
import sys

from app.config import Settings
from app.mongo_server import EmbeddedMongo
from app.passwords import PasswordHasher
from app.ratelimit import LocalRateLimiter
from app.services.accounts import Accounts, LoginLimits
from app.storage.mongo import MongoStorage

__all__ = ["create_admin", "read_password"]


def read_password() -> str:
    """Prompt twice on a terminal; otherwise the first line of stdin."""
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if first != getpass.getpass("Password (again): "):
            raise SystemExit("playhouse: error: the two passwords differ")
        return first
    return sys.stdin.readline().rstrip("\r\n")


async def create_admin(settings: Settings, username: str, password: str) -> str:
    """Create ``username`` as admin (or promote it); returns the stored name.

    Raises:
        PlayhouseError: invalid name or password, or the database is unreachable.
    """
    embedded = None
    url = settings.mongodb.url
    if not url:
        embedded = EmbeddedMongo(settings.mongodb.data_dir)
        await embedded.start()
        url = embedded.url
    storage = MongoStorage(
        url, database=settings.mongodb.database, timeout=settings.mongodb.timeout
    )
    hasher = PasswordHasher(rounds=settings.security.bcrypt_rounds)
    try:
        await storage.ensure_indexes()
        accounts = Accounts(
            storage, hasher, LocalRateLimiter(), session_ttl=1.0, limits=LoginLimits()
        )
        user = await accounts.create_admin(username, password)
        return user.username
    finally:
        hasher.close()
        await storage.close()
        if embedded is not None:
            embedded.stop()
