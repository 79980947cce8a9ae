"""Ratings storage: one document per player and game kind, and one claim per rated game.

``ratings``: ``_id`` = ``f"{user_key}|{kind}"`` with ``username``, ``kind``, ``rating``,
``games``, ``wins``, ``draws``, ``losses``. A document is created whole by an insert
(a duplicate means it exists already) and changed only by ``$inc`` on those
top-level numbers, so concurrent updates for different games never lose one
another (ARCHITECTURE §7: no ``$setOnInsert`` upserts, no ``$push``).

``rating_updates``: ``_id`` = the game id. Inserting it claims the game's rating
update; the unique ``_id`` lets exactly one of any number of concurrent claimers
(on any instance) win, on nx-27017 too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from app.storage.mongo import guarded

__all__ = ["MongoRatings", "Rating", "RatingRepo", "rating_id"]

Doc = dict[str, Any]


def rating_id(user_key: str, kind: str) -> str:
    """The ``_id`` of ``user_key``'s rating at ``kind``."""
    return f"{user_key}|{kind}"


@dataclass(frozen=True, slots=True)
class Rating:
    """One player's standing at one game kind."""

    username: str
    kind: str
    rating: int
    games: int
    wins: int
    draws: int
    losses: int

    @classmethod
    def from_doc(cls, doc: Doc) -> Rating:
        return cls(
            doc["username"],
            doc["kind"],
            int(doc["rating"]),
            int(doc["games"]),
            int(doc["wins"]),
            int(doc["draws"]),
            int(doc["losses"]),
        )


class RatingRepo(Protocol):
    """Storage of ratings; raises StorageUnavailable when the database is down."""

    async def ensure_indexes(self) -> None: ...

    async def claim(self, game_id: str, *, now: datetime) -> bool:
        """Mark ``game_id`` as rated; True for the one caller that did it first."""

    async def get(self, user_key: str, kind: str) -> Rating | None: ...

    async def ensure(self, user_key: str, username: str, kind: str, *, start: int) -> Rating:
        """The stored rating, created at ``start`` with no games when missing."""

    async def add_result(
        self, user_key: str, kind: str, *, delta: int, wins: int, draws: int, losses: int
    ) -> None:
        """Add ``delta`` to the rating, one game, and the given result counts."""

    async def of_kind(self, kind: str) -> list[Rating]:
        """Every rating at ``kind`` (unordered)."""

    async def everything(self) -> list[Rating]:
        """Every rating (unordered)."""

    async def of_user(self, user_key: str) -> list[Rating]:
        """``user_key``'s ratings, one per kind played (unordered)."""


class MongoRatings:
    """:class:`RatingRepo` over one MongoDB database (``ratings``, ``rating_updates``)."""

    def __init__(self, database: AsyncDatabase[Doc]) -> None:
        self._ratings = database["ratings"]
        self._claims = database["rating_updates"]

    @guarded
    async def ensure_indexes(self) -> None:
        """Idempotent. nx-27017 scans anyway; a real mongod uses these."""
        await self._ratings.create_index([("kind", ASCENDING)])
        await self._ratings.create_index([("user", ASCENDING)])

    @guarded
    async def claim(self, game_id: str, *, now: datetime) -> bool:
        try:
            await self._claims.insert_one({"_id": game_id, "at": now})
        except DuplicateKeyError:
            return False
        return True

    @guarded
    async def get(self, user_key: str, kind: str) -> Rating | None:
        doc = await self._ratings.find_one({"_id": rating_id(user_key, kind)})
        return Rating.from_doc(doc) if doc else None

    @guarded
    async def ensure(self, user_key: str, username: str, kind: str, *, start: int) -> Rating:
        doc: Doc = {
            "_id": rating_id(user_key, kind),
            "user": user_key,
            "username": username,
            "kind": kind,
            "rating": start,
            "games": 0,
            "wins": 0,
            "draws": 0,
            "losses": 0,
        }
        try:
            await self._ratings.insert_one(doc)
        except DuplicateKeyError:
            existing = await self._ratings.find_one({"_id": doc["_id"]})
            if existing is not None:
                return Rating.from_doc(existing)
            raise
        return Rating.from_doc(doc)

    @guarded
    async def add_result(
        self, user_key: str, kind: str, *, delta: int, wins: int, draws: int, losses: int
    ) -> None:
        counts = {"rating": delta, "games": 1, "wins": wins, "draws": draws, "losses": losses}
        await self._ratings.update_one({"_id": rating_id(user_key, kind)}, {"$inc": counts})

    @guarded
    async def of_kind(self, kind: str) -> list[Rating]:
        return [Rating.from_doc(d) async for d in self._ratings.find({"kind": kind})]

    @guarded
    async def everything(self) -> list[Rating]:
        return [Rating.from_doc(d) async for d in self._ratings.find({})]

    @guarded
    async def of_user(self, user_key: str) -> list[Rating]:
        return [Rating.from_doc(d) async for d in self._ratings.find({"user": user_key})]
