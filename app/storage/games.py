"""Games and their event log: the ``games`` and ``game_events`` collections.

A game document holds the rules' state with a ``version`` (optimistic
concurrency) and ``seq`` (number of the last accepted event). The only write
to a game after creation is :meth:`GameRepo.save`, one conditional
``find_one_and_update`` on ``{_id, version}``: of any number of concurrent
writers of one version exactly one wins. Events are keyed
``f"{game_id}:{seq:08d}"`` so ``_id`` alone makes (game_id, seq) unique, on
nx-27017 too (ARCHITECTURE §7: uniqueness only through unique indexes).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.asynchronous.cursor import AsyncCursor
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from app.errors import NotFound
from app.storage.mongo import guarded

__all__ = [
    "ChatLine",
    "GameEvent",
    "GameRecord",
    "GameRepo",
    "GameStatus",
    "MongoGames",
    "event_id",
    "finished_key",
]

Doc = dict[str, Any]
DUPLICATE_KEY = 11000


class GameStatus(enum.StrEnum):
    """A game's lifecycle: created active, finished once (by the rules or a resignation)."""

    ACTIVE = "active"
    FINISHED = "finished"


@dataclass(frozen=True, slots=True)
class GameEvent:
    """One accepted event; ``version`` is the game's version after it."""

    game_id: str
    seq: int
    player: str
    type: str  # "move" | "resign" | "offer_draw" | "accept_draw" | "decline_draw" | ...
    move: dict[str, Any] | None
    version: int
    at: datetime
    result: dict[str, Any] | None = None  # set on the event that ends the game

    def to_doc(self) -> Doc:
        return {
            "_id": event_id(self.game_id, self.seq),
            "game_id": self.game_id,
            "seq": self.seq,
            "player": self.player,
            "type": self.type,
            "move": self.move,
            "version": self.version,
            "at": self.at,
            "result": self.result,
        }

    @classmethod
    def from_doc(cls, doc: Doc) -> GameEvent:
        return cls(
            doc["game_id"],
            doc["seq"],
            doc["player"],
            doc["type"],
            doc.get("move"),
            doc["version"],
            doc["at"],
            doc.get("result"),
        )


@dataclass(frozen=True, slots=True)
class GameRecord:
    """A stored game. ``last`` is the latest event, written with the state it produced."""

    id: str
    kind: str
    players: tuple[str, ...]
    seed: int
    state: dict[str, Any]
    version: int
    seq: int
    status: GameStatus
    result: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime
    last: GameEvent | None = None
    clock: dict[str, Any] | None = None
    away: dict[str, int] = field(default_factory=dict)  # player -> epoch ms they left
    draw_offer: str | None = None
    chat: int = 0  # number of chat lines
    expires_at: int | None = None  # epoch ms of the next clock or abandonment deadline

    @classmethod
    def from_doc(cls, doc: Doc) -> GameRecord:
        last = doc.get("last")
        return cls(
            id=doc["_id"],
            kind=doc["kind"],
            players=tuple(doc["players"]),
            seed=doc["seed"],
            state=doc["state"],
            version=doc["version"],
            seq=doc["seq"],
            status=GameStatus(doc["status"]),
            result=doc.get("result"),
            created_at=stored_time(doc["created_at"]),
            updated_at=stored_time(doc["updated_at"]),
            last=GameEvent.from_doc(last) if last else None,
            clock=doc.get("clock"),
            away=doc.get("away") or {},
            draw_offer=doc.get("draw_offer"),
            chat=doc.get("chat", 0),
            expires_at=doc.get("expires_at"),
        )


def stored_time(raw: datetime | str) -> datetime:
    """A stored time as an aware UTC datetime to the millisecond.

    nx-27017 stores a datetime given to a top-level ``$set`` as a naive string.
    """
    moment = datetime.fromisoformat(raw) if isinstance(raw, str) else raw
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def event_id(game_id: str, seq: int) -> str:
    """The ``_id`` of event ``seq`` of ``game_id``; sorts in seq order within a game."""
    return f"{game_id}:{seq:08d}"


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def finished_key(at: datetime | str, game_id: str | None = None) -> str:
    """The history sort key of a game finished at ``at``: ``"<epoch ms, 13 digits>~<game id>"``.

    Stored on a game as ``finished_key`` when it finishes, so that "newest first, then
    ``_id`` descending" is one indexed field on both servers: a string compares the same
    on a real mongod and on nx-27017 (which keeps a ``$set`` datetime as a naive string),
    and nx-27017 cannot index ``_id`` inside a compound index. Without ``game_id`` it is
    the bound of a bare time: every game finished in that millisecond sorts above it.
    """
    ms = (stored_time(at) - _EPOCH) // _MS
    return f"{ms:013d}" if game_id is None else f"{ms:013d}~{game_id}"


@dataclass(frozen=True, slots=True)
class ChatLine:
    """One in-game chat message, numbered ``n`` from 1 per game."""

    game_id: str
    n: int
    sender: str
    text: str
    at: datetime


class GameRepo(Protocol):
    """Storage of games; raises StorageUnavailable when the database is down."""

    async def ensure_indexes(self) -> None: ...

    async def create(
        self,
        *,
        game_id: str,
        kind: str,
        players: tuple[str, ...],
        seed: int,
        state: Doc,
        now: datetime,
        extra: Doc | None = None,
    ) -> tuple[GameRecord, bool]:
        """Insert at version 0 (plus ``extra`` fields); if ``game_id`` exists, the stored
        game. True when inserted."""

    async def get(self, game_id: str) -> GameRecord | None: ...

    async def save(
        self, game_id: str, *, expected_version: int, fields: Doc, event: GameEvent | None
    ) -> GameRecord | None:
        """Write ``fields`` as version ``expected_version + 1`` (and ``event`` as the
        latest, with its seq, when given).

        Returns the updated game, or None when the stored version is no longer
        ``expected_version`` (another writer won; nothing was written).
        """

    async def append_events(self, events: Sequence[GameEvent]) -> None:
        """Store ``events`` in one command; ones already stored are skipped."""

    async def events_since(self, game_id: str, seq: int, *, limit: int) -> list[GameEvent]:
        """Events with seq greater than ``seq``, in seq order, at most ``limit``."""

    async def add_chat(self, game_id: str, sender: str, text: str, now: datetime) -> ChatLine:
        """Number and store a chat line."""

    async def chat_since(self, game_id: str, n: int, *, limit: int) -> list[ChatLine]:
        """Chat lines after ``n``, in order, at most ``limit``."""

    async def due(self, *, now_ms: int, limit: int) -> list[GameRecord]:
        """Active games whose ``expires_at`` has passed."""

    async def active_for(self, player: str) -> GameRecord | None:
        """The newest active game of ``player``, if any."""

    async def live(self, *, limit: int = 50) -> list[GameRecord]:
        """Active games, newest first (``created_at``, then ``_id``, desc), at most ``limit``."""

    async def store_moves(self, game_id: str, moves: list[Doc]) -> None:
        """Keep a finished game's move list on the game document."""

    async def mark_finish_done(self, game_id: str) -> None:
        """The finish hook (ratings) ran for this finished game."""

    async def finish_pending(self, *, limit: int) -> list[GameRecord]:
        """Finished games whose finish hook has not run (it failed, or its instance died)."""

    async def finished_for(
        self,
        player: str,
        *,
        kind: str | None = None,
        outcome: str | None = None,
        before: tuple[datetime, str | None] | None = None,
        limit: int,
    ) -> list[tuple[GameRecord, int | None]]:
        """Finished games of ``player``, newest first (``updated_at``, then ``_id``, desc:
        the order of their stored ``finished_key``).

        ``kind`` keeps one game kind; ``outcome`` (``win``/``loss``/``draw``, seen from
        ``player``) one outcome. ``before`` is the cursor ``(updated_at, game_id)`` of the
        last game of the previous page: only games strictly older come back (with a None
        id, every game finished at that very millisecond is skipped too). Each game comes
        with its number of moves, None when its move list was never stored.
        """


class MongoGames:
    """:class:`GameRepo` over one MongoDB database (``games``, ``game_events``,
    ``game_chat``)."""

    def __init__(self, database: AsyncDatabase[Doc]) -> None:
        self._games = database["games"]
        self._events = database["game_events"]
        self._chat = database["game_chat"]

    @guarded
    async def ensure_indexes(self) -> None:
        """Idempotent; (game_id, seq) unique as well as the ``_id`` it is derived from.

        History (:meth:`finished_for`) is one equality prefix and one sort key:
        ``(players, status, finished_key desc)``, and with a kind filter
        ``(players, kind, status, finished_key desc)``; the first also serves
        :meth:`active_for` by its ``(players, status)`` prefix. Finished games stored
        before ``finished_key`` existed get it here (once; later starts find none).
        nx-27017 matches equality on the *last* field of any index as a plain scalar
        (no array membership): ``players`` must never end an index, and ``_id`` cannot
        be in one there at all.
        """
        await self._events.create_index([("game_id", ASCENDING), ("seq", ASCENDING)], unique=True)
        await self._chat.create_index([("game_id", ASCENDING), ("n", ASCENDING)], unique=True)
        await self._games.create_index(
            [("players", ASCENDING), ("status", ASCENDING), ("finished_key", DESCENDING)]
        )
        await self._games.create_index(
            [
                ("players", ASCENDING),
                ("kind", ASCENDING),
                ("status", ASCENDING),
                ("finished_key", DESCENDING),
            ]
        )
        await self._games.create_index([("status", ASCENDING), ("expires_at", ASCENDING)])
        await self._games.create_index([("finish_done", ASCENDING), ("status", ASCENDING)])
        unkeyed = {"status": GameStatus.FINISHED.value, "finished_key": {"$exists": False}}
        async for doc in self._games.find(unkeyed, projection={"updated_at": 1}):
            key = finished_key(doc["updated_at"], str(doc["_id"]))
            await self._games.update_one({"_id": doc["_id"]}, {"$set": {"finished_key": key}})

    @guarded
    async def create(
        self,
        *,
        game_id: str,
        kind: str,
        players: tuple[str, ...],
        seed: int,
        state: Doc,
        now: datetime,
        extra: Doc | None = None,
    ) -> tuple[GameRecord, bool]:
        doc: Doc = {
            "_id": game_id,
            "kind": kind,
            "players": list(players),
            "seed": seed,
            "state": state,
            "version": 0,
            "seq": 0,
            "status": GameStatus.ACTIVE.value,
            "result": None,
            "created_at": now,
            "updated_at": now,
            "last": None,
            "away": {},
            "draw_offer": None,
            "chat": 0,
            **(extra or {}),
        }
        try:
            await self._games.insert_one(doc)
        except DuplicateKeyError:
            # Insert + duplicate key, not an upsert: nx-27017 drops $setOnInsert fields.
            existing = await self._games.find_one({"_id": game_id})
            if existing is not None:
                return GameRecord.from_doc(existing), False
            raise  # deleted in between: a real failure, reported by guarded
        return GameRecord.from_doc(doc), True

    @guarded
    async def get(self, game_id: str) -> GameRecord | None:
        doc = await self._games.find_one({"_id": game_id})
        return GameRecord.from_doc(doc) if doc else None

    @guarded
    async def save(
        self, game_id: str, *, expected_version: int, fields: Doc, event: GameEvent | None
    ) -> GameRecord | None:
        changes = {**fields, "version": expected_version + 1}
        if event is not None:
            changes.update(seq=event.seq, updated_at=event.at, last=event.to_doc())
        if changes.get("status") == GameStatus.FINISHED.value:
            at = event.at if event is not None else datetime.now(UTC)
            changes["finished_key"] = finished_key(at, game_id)  # the history sort key
        doc = await self._games.find_one_and_update(
            {"_id": game_id, "version": expected_version},
            {"$set": changes},
            return_document=ReturnDocument.AFTER,
        )
        return GameRecord.from_doc(doc) if doc else None

    @guarded
    async def append_events(self, events: Sequence[GameEvent]) -> None:
        try:
            await self._events.insert_many([e.to_doc() for e in events], ordered=False)
        except BulkWriteError as error:
            errors = error.details.get("writeErrors", [])
            if any(e.get("code") != DUPLICATE_KEY for e in errors) or not errors:
                raise

    @guarded
    async def events_since(self, game_id: str, seq: int, *, limit: int) -> list[GameEvent]:
        cursor = self._events.find({"game_id": game_id, "seq": {"$gt": seq}})
        return [GameEvent.from_doc(d) async for d in cursor.sort("seq", ASCENDING).limit(limit)]

    @guarded
    async def add_chat(self, game_id: str, sender: str, text: str, now: datetime) -> ChatLine:
        doc = await self._games.find_one_and_update(
            {"_id": game_id},
            {"$inc": {"chat": 1}},
            projection={"chat": 1},
            return_document=ReturnDocument.AFTER,
        )
        if doc is None:
            raise NotFound(f"no game {game_id!r}")
        line = ChatLine(game_id, doc["chat"], sender, text, now)
        await self._chat.insert_one(
            {
                "_id": f"{game_id}:{line.n:06d}",
                "game_id": game_id,
                "n": line.n,
                "from": sender,
                "text": text,
                "at": now,
            }
        )
        return line

    @guarded
    async def chat_since(self, game_id: str, n: int, *, limit: int) -> list[ChatLine]:
        cursor = self._chat.find({"game_id": game_id, "n": {"$gt": n}})
        return [
            ChatLine(d["game_id"], d["n"], d["from"], d["text"], d["at"])
            async for d in cursor.sort("n", ASCENDING).limit(limit)
        ]

    @guarded
    async def due(self, *, now_ms: int, limit: int) -> list[GameRecord]:
        query = {"status": GameStatus.ACTIVE.value, "expires_at": {"$lte": now_ms}}
        return [GameRecord.from_doc(d) async for d in self._games.find(query).limit(limit)]

    @guarded
    async def active_for(self, player: str) -> GameRecord | None:
        cursor = self._games.find({"players": player, "status": GameStatus.ACTIVE.value})
        docs = await cursor.sort("created_at", DESCENDING).limit(1).to_list()
        return GameRecord.from_doc(docs[0]) if docs else None

    @guarded
    async def live(self, *, limit: int = 50) -> list[GameRecord]:
        # Ordered here from stored_time: nx-27017 may hold times as strings (see finished_for).
        query = {"status": GameStatus.ACTIVE.value}
        keys = [
            (stored_time(d["created_at"]), str(d["_id"]))
            async for d in self._games.find(query, projection={"created_at": 1})
        ]
        keys.sort(reverse=True)
        page = [game_id for _, game_id in keys[:limit]]
        docs = {d["_id"]: d async for d in self._games.find({"_id": {"$in": page}, **query})}
        return [GameRecord.from_doc(docs[i]) for i in page if i in docs]

    @guarded
    async def store_moves(self, game_id: str, moves: list[Doc]) -> None:
        await self._games.update_one({"_id": game_id}, {"$set": {"moves": moves}})

    @guarded
    async def mark_finish_done(self, game_id: str) -> None:
        await self._games.update_one({"_id": game_id}, {"$set": {"finish_done": True}})

    @guarded
    async def finish_pending(self, *, limit: int) -> list[GameRecord]:
        query = {"finish_done": False, "status": GameStatus.FINISHED.value}
        return [GameRecord.from_doc(d) async for d in self._games.find(query).limit(limit)]

    def finished_cursor(
        self,
        player: str,
        *,
        kind: str | None = None,
        outcome: str | None = None,
        before: tuple[datetime, str | None] | None = None,
        limit: int,
    ) -> AsyncCursor[Doc]:
        """The query of :meth:`finished_for`, not yet run (tests ``explain`` it)."""
        query: Doc = {"players": player, "status": GameStatus.FINISHED.value}
        if kind is not None:
            query["kind"] = kind
        if outcome == "win":
            query["result.winner"] = player
        elif outcome == "loss":
            query["result.status"] = "win"
            query["result.winner"] = {"$ne": player}
        elif outcome == "draw":
            query["result.status"] = "draw"
        elif outcome is not None:
            raise ValueError(f"unknown outcome {outcome!r}")
        if before is not None:
            at, last_id = before
            if last_id is None and at.microsecond % 1000:  # a bare time inside a millisecond:
                at += timedelta(microseconds=1000 - at.microsecond % 1000)  # that one is older
            query["finished_key"] = {"$lt": finished_key(at, last_id)}
        return self._games.find(query).sort("finished_key", DESCENDING).limit(limit)

    @guarded
    async def finished_for(
        self,
        player: str,
        *,
        kind: str | None = None,
        outcome: str | None = None,
        before: tuple[datetime, str | None] | None = None,
        limit: int,
    ) -> list[tuple[GameRecord, int | None]]:
        cursor = self.finished_cursor(
            player, kind=kind, outcome=outcome, before=before, limit=limit
        )
        found: list[tuple[GameRecord, int | None]] = []
        async for doc in cursor:
            moves = doc.get("moves")
            count = None if moves is None else sum(1 for m in moves if m.get("type") == "move")
            found.append((GameRecord.from_doc(doc), count))  # from_doc reads times as stored_time
        return found
