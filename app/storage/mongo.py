"""MongoDB repositories over PyMongo's async API (``AsyncMongoClient``).

Runs unchanged against a real ``mongod`` and against the embedded ``nx-27017``
wire-protocol server. Written to that stand-in's differences (ARCHITECTURE §7):
uniqueness only through unique indexes (insert, then ``DuplicateKeyError``),
never ``find_one_and_update(upsert=True)``, indexes never dropped by name, and
expiry checked on every read because TTL sweeps differ.
"""

from __future__ import annotations

import functools
import logging
import secrets
from collections.abc import Callable, Coroutine
from datetime import datetime, timedelta
from typing import Any, ParamSpec, TypeVar

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import ConnectionFailure, DuplicateKeyError, PyMongoError

from app.errors import Conflict, StorageUnavailable
from app.storage.base import Notice, Session, User

__all__ = ["MongoStorage", "guarded"]

P = ParamSpec("P")
T = TypeVar("T")
Doc = dict[str, Any]


def guarded(call: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, Coroutine[Any, Any, T]]:
    """Turn driver failures into StorageUnavailable (and duplicates into Conflict)."""

    @functools.wraps(call)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await call(*args, **kwargs)
        except DuplicateKeyError:
            raise Conflict("already exists") from None
        except (ConnectionFailure, PyMongoError) as exc:
            raise StorageUnavailable(f"database unavailable ({type(exc).__name__})") from None

    return wrapper


def _user(doc: Doc) -> User:
    return User(
        username=doc["username"],
        key=doc["_id"],
        password_hash=bytes(doc["password_hash"]),
        role=doc.get("role", "user"),
        groups=tuple(doc.get("groups", ())),
        created_at=doc["created_at"],
    )


class MongoUsers:
    def __init__(self, collection: AsyncCollection[Doc]) -> None:
        self._c = collection

    @guarded
    async def create(self, *, username: str, key: str, password_hash: bytes, role: str) -> User:
        doc: Doc = {
            "_id": key,
            "username": username,
            "password_hash": password_hash,
            "role": role,
            "groups": [],
            "created_at": datetime.now().astimezone(),
        }
        await self._c.insert_one(doc)
        return _user(doc)

    @guarded
    async def get(self, key: str) -> User | None:
        doc = await self._c.find_one({"_id": key})
        return _user(doc) if doc else None

    @guarded
    async def set_role(self, key: str, role: str) -> bool:
        result = await self._c.update_one({"_id": key}, {"$set": {"role": role}})
        return result.matched_count == 1

    @guarded
    async def set_password(self, key: str, password_hash: bytes) -> bool:
        result = await self._c.update_one({"_id": key}, {"$set": {"password_hash": password_hash}})
        return result.matched_count == 1


class MongoSessions:
    def __init__(self, collection: AsyncCollection[Doc]) -> None:
        self._c = collection

    @guarded
    async def create(self, *, session_id: str, user_key: str, now: datetime, ttl: float) -> Session:
        session = Session(session_id, user_key, now, now + timedelta(seconds=ttl))
        await self._c.insert_one(
            {
                "_id": session.id,
                "user": user_key,
                "created_at": now,
                "expires_at": session.expires_at,
            }
        )
        return session

    @guarded
    async def get(self, session_id: str, *, now: datetime) -> Session | None:
        doc = await self._c.find_one({"_id": session_id})
        if doc is None:
            return None
        if doc["expires_at"] <= now:
            await self._c.delete_one({"_id": session_id})
            return None
        return Session(doc["_id"], doc["user"], doc["created_at"], doc["expires_at"])

    @guarded
    async def delete(self, session_id: str) -> None:
        await self._c.delete_one({"_id": session_id})


class MongoNotices:
    def __init__(self, collection: AsyncCollection[Doc]) -> None:
        self._c = collection

    @guarded
    async def add(self, *, text: str, author: str, expire: int, now: datetime) -> Notice:
        notice = Notice(secrets.token_hex(8), text, author, expire, now)
        await self._c.insert_one(
            {"_id": notice.id, "text": text, "author": author, "expire": expire, "created_at": now}
        )
        return notice

    @guarded
    async def recent(self, *, limit: int) -> list[Notice]:
        cursor = self._c.find({}).sort("created_at", DESCENDING).limit(limit)
        return [
            Notice(d["_id"], d["text"], d["author"], d["expire"], d["created_at"])
            async for d in cursor
        ]


class MongoStorage:
    """Users, sessions and notices in one MongoDB database."""

    def __init__(self, url: str, *, database: str = "playhouse", timeout: float = 2.0) -> None:
        # PyMongo's DEBUG command log carries session ids and password hashes: never
        # below INFO, whatever the root logger says (server.debug).
        logging.getLogger("pymongo").setLevel(logging.INFO)
        ms = int(timeout * 1000)
        self._client: AsyncMongoClient[Doc] = AsyncMongoClient(
            url,
            tz_aware=True,
            serverSelectionTimeoutMS=ms,
            connectTimeoutMS=ms,
            socketTimeoutMS=ms * 2,
            retryWrites=False,  # nx-27017 has no replica set; mongod standalone neither
        )
        db = self._client[database]
        self.users = MongoUsers(db["users"])
        self.sessions = MongoSessions(db["sessions"])
        self.notices = MongoNotices(db["notices"])
        self._db = db

    @property
    def database(self) -> AsyncDatabase[Doc]:
        """The database, for repositories of later features (games, challenges)."""
        return self._db

    @guarded
    async def ensure_indexes(self) -> None:
        """Create every index; idempotent, safe on each start-up."""
        await self._db["sessions"].create_index([("expires_at", ASCENDING)], expireAfterSeconds=0)
        await self._db["sessions"].create_index([("user", ASCENDING)])
        await self._db["notices"].create_index([("created_at", DESCENDING)])

    async def ping(self) -> bool:
        try:
            await self._client.admin.command("ping")
        except PyMongoError:
            return False
        return True

    async def close(self) -> None:
        await self._client.close()
