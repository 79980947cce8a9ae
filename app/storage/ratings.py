"""Ratings storage: one document per player and game kind, and one claim per rated game.

``ratings``: ``_id`` = ``f"{user_key}|{kind}"`` with ``username``, ``kind``, ``rating``,
``games``, ``wins``, ``draws``, ``losses``. A document is created whole by an insert
(a duplicate means it exists already) and changed only by ``$inc`` on those
top-level numbers, so concurrent updates for different games never lose one
another (ARCHITECTURE §7: no ``$setOnInsert`` upserts, no ``$push``).

``rating_updates``: ``_id`` = the game id. Inserting it claims the game's rating
update; the unique ``_id`` lets exactly one of any number of concurrent claimers
(on any instance) win, on nx-27017 too.

``ratings_overall``: ``_id`` = the user key; one row of the overall leaderboard with
``username``, ``rating`` (the rounded mean of the player's ratings over the kinds
they have played), the summed ``games``/``wins``/``draws``/``losses``, ``kinds`` and
a write counter ``v``. It is *derived* from the player's ``ratings`` documents, never
incremented itself: :meth:`MongoRatings.sync_overall` re-reads those documents and
writes the aggregate conditionally on ``v`` (insert when missing), retrying when
another writer came in between. Whichever sync writes last read the per-kind
documents after every increment before it, so the row converges to the exact
aggregate, adds nothing twice, and a crash before it is repaired by the player's
next rated game (or the start-up backfill of players without a row).

Indexes (all sorts are served by an index on a real mongod, no in-memory SORT):
``ratings (kind, rating desc, games desc, user)`` for a kind's leaderboard,
``ratings (user)`` for a profile, ``ratings_overall (rating desc, games desc, user)``
for the overall leaderboard.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.cursor import AsyncCursor
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from app.errors import StorageUnavailable
from app.storage.mongo import guarded

__all__ = ["BOARD_ORDER", "MongoRatings", "Rating", "RatingRepo", "rating_id"]

Doc = dict[str, Any]
logger = logging.getLogger(__name__)

BOARD_ORDER = [("rating", DESCENDING), ("games", DESCENDING), ("user", ASCENDING)]
"""Leaderboard order: rating, then games, both descending, then the user key (casefolded
name). Each leaderboard index is this order behind its equality prefix."""
SYNC_ATTEMPTS = 50
RECENT = 200
"""Games remembered per rating to apply each once (a retry comes within minutes)."""
DUPLICATE_KEY = 11000


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

    async def claim(self, game_id: str, *, now: datetime, plan: Doc) -> Doc:
        """Record ``plan`` (what rating ``game_id`` does) unless a plan is recorded
        already; return the recorded one, so every caller applies the same plan."""

    async def get(self, user_key: str, kind: str) -> Rating | None: ...

    async def ensure(self, user_key: str, username: str, kind: str, *, start: int) -> Rating:
        """The stored rating, created at ``start`` with no games when missing."""

    async def add_result(
        self,
        user_key: str,
        kind: str,
        *,
        game_id: str,
        delta: int,
        wins: int,
        draws: int,
        losses: int,
    ) -> bool:
        """Add ``delta`` to the rating, one game, and the given result counts, once per
        ``game_id`` however often it is called; True when this call added them."""

    async def of_kind(self, kind: str) -> list[Rating]:
        """Every rating at ``kind`` (unordered)."""

    async def top(self, kind: str, limit: int) -> list[Rating]:
        """The first ``limit`` players with games at ``kind``, in :data:`BOARD_ORDER`."""

    async def top_overall(self, limit: int) -> list[Rating]:
        """The first ``limit`` overall rows (``kind`` ""), in :data:`BOARD_ORDER`."""

    async def sync_overall(self, user_key: str) -> None:
        """Bring ``user_key``'s overall row up to date with their per-kind ratings."""

    async def of_user(self, user_key: str) -> list[Rating]:
        """``user_key``'s ratings, one per kind played (unordered)."""


class MongoRatings:
    """:class:`RatingRepo` over one MongoDB database (``ratings``, ``rating_updates``)."""

    def __init__(self, database: AsyncDatabase[Doc]) -> None:
        self._ratings = database["ratings"]
        self._claims = database["rating_updates"]
        self._overall = database["ratings_overall"]

    @guarded
    async def ensure_indexes(self) -> None:
        """Idempotent. nx-27017 scans anyway; a real mongod uses these.

        Also builds the overall row of every rated player who has none (a database
        from before ``ratings_overall``): one read of ``ratings``, one bulk insert.
        """
        await self._ratings.create_index([("kind", ASCENDING), *BOARD_ORDER])
        await self._ratings.create_index([("user", ASCENDING)])
        await self._overall.create_index(BOARD_ORDER)
        await self._backfill_overall()

    async def _backfill_overall(self) -> None:
        have = {d["_id"] async for d in self._overall.find({}, projection={"_id": 1})}
        mine: dict[str, list[Doc]] = {}
        async for doc in self._ratings.find({"games": {"$gt": 0}}):
            if doc["user"] not in have:
                mine.setdefault(doc["user"], []).append(doc)
        rows = [{"_id": key, "v": 1, **_aggregate(key, docs)} for key, docs in mine.items()]
        if not rows:
            return
        try:  # a concurrent sync_overall may insert some first: its row is as fresh
            await self._overall.insert_many(rows, ordered=False)
        except BulkWriteError as error:
            errors = error.details.get("writeErrors", [])
            if not errors or any(e.get("code") != DUPLICATE_KEY for e in errors):
                raise
        logger.info("built %d overall rating rows", len(rows))

    @guarded
    async def claim(self, game_id: str, *, now: datetime, plan: Doc) -> Doc:
        try:
            await self._claims.insert_one({"_id": game_id, "at": now, "plan": plan})
        except DuplicateKeyError:
            recorded = await self._claims.find_one({"_id": game_id})
            # A claim from before plans were recorded was applied in one go back then.
            return dict(recorded.get("plan") or {"applied": True}) if recorded else plan
        return plan

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
        self,
        user_key: str,
        kind: str,
        *,
        game_id: str,
        delta: int,
        wins: int,
        draws: int,
        losses: int,
    ) -> bool:
        # Read, check the game is not among the recent ones applied, write conditionally on
        # the version read: a retry after a crash cannot count a game twice. (Array query
        # operators are not used: nx-27017 gets $ne on arrays wrong.)
        key = rating_id(user_key, kind)
        counts = {"rating": delta, "games": 1, "wins": wins, "draws": draws, "losses": losses}
        for _ in range(SYNC_ATTEMPTS):
            doc = await self._ratings.find_one({"_id": key})
            if doc is None:
                return False
            recent = list(doc.get("recent_games", ()))
            if game_id in recent:
                return False
            version = doc.get("v")
            query: Doc = {"_id": key, "v": version if version is not None else {"$exists": False}}
            change = {
                "$inc": counts,
                "$set": {"v": (version or 0) + 1, "recent_games": [*recent, game_id][-RECENT:]},
            }
            result = await self._ratings.update_one(query, change)
            if result.modified_count == 1:
                return True
        raise StorageUnavailable(f"rating {key} too busy to update")

    @guarded
    async def of_kind(self, kind: str) -> list[Rating]:
        return [Rating.from_doc(d) async for d in self._ratings.find({"kind": kind})]

    def board_cursor(self, kind: str | None, limit: int) -> AsyncCursor[Doc]:
        """The query of :meth:`top` (``kind``) or :meth:`top_overall` (None), not yet run."""
        if kind is None:
            return self._overall.find({}).sort(BOARD_ORDER).limit(limit)
        query = {"kind": kind, "games": {"$gt": 0}}
        return self._ratings.find(query).sort(BOARD_ORDER).limit(limit)

    @guarded
    async def top(self, kind: str, limit: int) -> list[Rating]:
        return [Rating.from_doc(d) async for d in self.board_cursor(kind, limit)]

    @guarded
    async def top_overall(self, limit: int) -> list[Rating]:
        return [Rating.from_doc({**d, "kind": ""}) async for d in self.board_cursor(None, limit)]

    @guarded
    async def sync_overall(self, user_key: str) -> None:
        for _ in range(SYNC_ATTEMPTS):
            current = await self._overall.find_one({"_id": user_key}, projection={"v": 1})
            played = [d async for d in self._ratings.find({"user": user_key, "games": {"$gt": 0}})]
            if not played:
                return
            row = _aggregate(user_key, played)
            if current is None:
                try:
                    await self._overall.insert_one({"_id": user_key, "v": 1, **row})
                except DuplicateKeyError:
                    continue  # another sync inserted it: read it again
                return
            written = await self._overall.update_one(
                {"_id": user_key, "v": current["v"]}, {"$set": row, "$inc": {"v": 1}}
            )
            if written.matched_count:
                return
        # Every failed attempt is another sync's success; the next game repairs the row.
        logger.warning("overall rating of %s not written (busy)", user_key)

    @guarded
    async def of_user(self, user_key: str) -> list[Rating]:
        return [Rating.from_doc(d) async for d in self._ratings.find({"user": user_key})]


def _aggregate(user_key: str, played: list[Doc]) -> Doc:
    """The overall row of a player from their per-kind documents with games."""
    played = sorted(played, key=lambda d: d["kind"])
    row: Doc = {
        "user": user_key,
        "username": played[0]["username"],
        "rating": round(sum(int(d["rating"]) for d in played) / len(played)),
        "kinds": len(played),
    }
    for field in ("games", "wins", "draws", "losses"):
        row[field] = sum(int(d[field]) for d in played)
    return row
