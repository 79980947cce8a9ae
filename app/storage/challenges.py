"""Challenges: the record, the repository protocol and its MongoDB implementation.

Two collections. ``challenges`` holds one document per challenge, for ever.
``challenge_pending`` holds one *pending key* per pair of players and game kind,
``{"_id": "<lower>|<higher>|<game>", "challenge": <id>}``: its ``_id`` is what
makes "at most one pending challenge per pair and game" hold, because nx-27017
enforces uniqueness only through unique indexes and ``_id`` is always one
(ARCHITECTURE §7). A key is inserted after its challenge, so it never points at
a missing document, and released (conditionally) once the challenge leaves
``pending``. Expiry is checked in every query, never left to a TTL sweep.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, Protocol

from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from app.storage.mongo import guarded

__all__ = [
    "Challenge",
    "ChallengeRepo",
    "ChallengeStatus",
    "MongoChallenges",
    "PendingChallenges",
]

Doc = dict[str, Any]


class ChallengeStatus(enum.StrEnum):
    """Lifecycle: ``pending`` then exactly one of the four final states."""

    PENDING = "pending"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class Challenge:
    """One challenge. ``game_id`` is set when, and only when, it was accepted.

    A rematch names the finished game in ``rematch_of`` and carries the new game's
    seat order in ``seats`` (None: ``[from_user, to_user]``).
    """

    id: str
    from_user: str
    to_user: str
    game: str
    status: ChallengeStatus
    created_at: datetime
    expires_at: datetime
    game_id: str | None = None
    rematch_of: str | None = None
    seats: tuple[str, ...] | None = None


class PendingChallenges(NamedTuple):
    """One user's open challenges, each list newest first."""

    incoming: list[Challenge]
    """Sent to the user."""
    outgoing: list[Challenge]
    """Sent by the user."""


class ChallengeRepo(Protocol):
    """Storage of challenges; every transition is one conditional write."""

    async def insert(self, challenge: Challenge) -> None:
        """Store a new challenge document (no uniqueness check of the pair)."""

    async def remove(self, challenge_id: str) -> None:
        """Delete a challenge that never got its pending key (a refused create)."""

    async def get(self, challenge_id: str) -> Challenge | None: ...

    async def claim_pending(self, key: str, challenge_id: str) -> str | None:
        """Make ``challenge_id`` the pending one for ``key``.

        Returns None on success, else the id of the challenge already holding ``key``.
        """

    async def pending_holder(self, key: str) -> str | None:
        """The challenge id ``key`` points at, if any."""

    async def release_pending(self, key: str, challenge_id: str) -> None:
        """Delete ``key`` only if it still points at ``challenge_id``."""

    async def transition(
        self,
        challenge_id: str,
        status: ChallengeStatus,
        *,
        now: datetime,
        game_id: str | None = None,
    ) -> Challenge | None:
        """Move a pending, unexpired challenge to ``status`` (one atomic write).

        Returns the updated challenge, or None when it was not pending or had
        expired at ``now``: the caller lost the race and should re-read.
        """

    async def expire(self, challenge_id: str, *, now: datetime) -> Challenge | None:
        """Mark a pending challenge whose ``expires_at <= now`` expired; None if not so."""

    async def due(self, *, now: datetime, limit: int) -> list[Challenge]:
        """Pending challenges with ``expires_at <= now``, oldest deadline first."""

    async def pending_for(self, user: str, *, now: datetime, limit: int) -> PendingChallenges:
        """``user``'s pending challenges not expired at ``now``, at most ``limit`` each way.

        ``user`` is the canonical spelling (as stored in ``from`` and ``to``).
        """


def _challenge(doc: Doc) -> Challenge:
    return Challenge(
        id=doc["_id"],
        from_user=doc["from"],
        to_user=doc["to"],
        game=doc["game"],
        status=ChallengeStatus(doc["status"]),
        created_at=doc["created_at"],
        expires_at=doc["expires_at"],
        game_id=doc.get("game_id"),
        rematch_of=doc.get("rematch_of"),
        seats=tuple(doc["seats"]) if doc.get("seats") else None,
    )


class MongoChallenges:
    """:class:`ChallengeRepo` over two collections of one MongoDB database."""

    def __init__(self, database: AsyncDatabase[Doc]) -> None:
        self._c = database["challenges"]
        self._keys = database["challenge_pending"]

    @guarded
    async def ensure_indexes(self) -> None:
        """Indexes for the sweeper and per-user listings; idempotent."""
        await self._c.create_index([("status", ASCENDING), ("expires_at", ASCENDING)])
        await self._c.create_index([("to", ASCENDING), ("status", ASCENDING)])
        await self._c.create_index([("from", ASCENDING), ("status", ASCENDING)])

    @guarded
    async def insert(self, challenge: Challenge) -> None:
        doc: Doc = {
            "_id": challenge.id,
            "from": challenge.from_user,
            "to": challenge.to_user,
            "game": challenge.game,
            "status": challenge.status.value,
            "created_at": challenge.created_at,
            "expires_at": challenge.expires_at,
        }
        if challenge.rematch_of is not None:
            doc["rematch_of"] = challenge.rematch_of
        if challenge.seats is not None:
            doc["seats"] = list(challenge.seats)
        await self._c.insert_one(doc)

    @guarded
    async def remove(self, challenge_id: str) -> None:
        await self._c.delete_one({"_id": challenge_id})

    @guarded
    async def get(self, challenge_id: str) -> Challenge | None:
        doc = await self._c.find_one({"_id": challenge_id})
        return _challenge(doc) if doc else None

    @guarded
    async def claim_pending(self, key: str, challenge_id: str) -> str | None:
        try:
            await self._keys.insert_one({"_id": key, "challenge": challenge_id})
        except DuplicateKeyError:
            doc = await self._keys.find_one({"_id": key})
            # Released between our insert and this read: report an unknown holder
            # ("") so the caller retries rather than believing it won.
            return str(doc["challenge"]) if doc else ""
        return None

    @guarded
    async def pending_holder(self, key: str) -> str | None:
        doc = await self._keys.find_one({"_id": key})
        return str(doc["challenge"]) if doc else None

    @guarded
    async def release_pending(self, key: str, challenge_id: str) -> None:
        await self._keys.delete_one({"_id": key, "challenge": challenge_id})

    @guarded
    async def transition(
        self,
        challenge_id: str,
        status: ChallengeStatus,
        *,
        now: datetime,
        game_id: str | None = None,
    ) -> Challenge | None:
        update: Doc = {"status": status.value, "closed_at": now}
        if game_id is not None:
            update["game_id"] = game_id
        doc = await self._c.find_one_and_update(
            {
                "_id": challenge_id,
                "status": ChallengeStatus.PENDING.value,
                "expires_at": {"$gt": now},
            },
            {"$set": update},
            return_document=ReturnDocument.AFTER,
        )
        return _challenge(doc) if doc else None

    @guarded
    async def expire(self, challenge_id: str, *, now: datetime) -> Challenge | None:
        doc = await self._c.find_one_and_update(
            {
                "_id": challenge_id,
                "status": ChallengeStatus.PENDING.value,
                "expires_at": {"$lte": now},
            },
            {"$set": {"status": ChallengeStatus.EXPIRED.value, "closed_at": now}},
            return_document=ReturnDocument.AFTER,
        )
        return _challenge(doc) if doc else None

    @guarded
    async def due(self, *, now: datetime, limit: int) -> list[Challenge]:
        cursor = (
            self._c.find({"status": ChallengeStatus.PENDING.value, "expires_at": {"$lte": now}})
            .sort("expires_at", ASCENDING)
            .limit(limit)
        )
        return [_challenge(doc) async for doc in cursor]

    @guarded
    async def pending_for(self, user: str, *, now: datetime, limit: int) -> PendingChallenges:
        # Names are stored in their canonical spelling (the session's, and the one
        # find_user resolves), so an exact match is a case-insensitive one.
        async def side(field: str) -> list[Challenge]:
            query = {
                field: user,
                "status": ChallengeStatus.PENDING.value,
                "expires_at": {"$gt": now},
            }
            newest = [("created_at", DESCENDING), ("_id", DESCENDING)]
            cursor = self._c.find(query).sort(newest).limit(limit)
            return [_challenge(doc) async for doc in cursor]

        return PendingChallenges(incoming=await side("to"), outgoing=await side("from"))
