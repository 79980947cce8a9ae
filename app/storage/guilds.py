"""Guilds: the records, the repository protocol and its MongoDB implementation.

Membership lives in one place, the user's ``groups`` array (what ws4redis calls a
user's groups and what fills the group channels), changed with single-document
``$addToSet`` / ``$pull`` whose ``modified_count`` says whether *this* call made
the change — so a join or a removal happens once however many race. The guild
document holds the name, description, openness, owner and a member count.

Three collections: ``guilds`` (``_id`` the case-folded name, so names are unique
in any letter case), ``guild_requests`` (``_id`` ``<guild>/<user>``: one pending
request per user and guild; deleting it is how exactly one of accept and decline
wins) and ``guild_chat`` (the last messages of each guild, numbered by a counter
on the guild document).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from app.storage.mongo import guarded

__all__ = ["ChatMessage", "Guild", "GuildRepo", "JoinRequest", "MongoGuilds"]

Doc = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Guild:
    """A guild; ``key`` is the case-folded ``name``."""

    key: str
    name: str
    description: str
    open: bool
    owner: str
    members: int
    created_ms: int

    @classmethod
    def from_doc(cls, doc: Doc) -> Guild:
        return cls(
            key=doc["_id"],
            name=doc["name"],
            description=doc.get("description", ""),
            open=bool(doc.get("open", True)),
            owner=doc["owner"],
            members=int(doc.get("members", 0)),
            created_ms=int(doc.get("created_ms", 0)),
        )


@dataclass(frozen=True, slots=True)
class JoinRequest:
    guild: str
    username: str
    created_ms: int


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One guild chat line; ``seq`` counts up from 1 per guild."""

    seq: int
    sender: str
    text: str
    at_ms: int


class GuildRepo(Protocol):
    async def ensure_indexes(self) -> None: ...

    async def create(self, guild: Guild) -> None:
        """Insert; Conflict when the name is taken in any letter case."""

    async def get(self, key: str) -> Guild | None: ...

    async def listing(self, *, limit: int) -> list[Guild]:
        """Biggest first, then by name."""

    async def delete(self, key: str) -> bool: ...

    async def add_member(self, user_key: str, name: str, *, max_guilds: int) -> bool:
        """Put guild ``name`` in the user's groups; True only if this call added it."""

    async def remove_member(self, user_key: str, name: str) -> bool:
        """Take ``name`` out of the user's groups; True only if this call removed it."""

    async def is_member(self, user_key: str, name: str) -> bool: ...

    async def groups_of(self, user_key: str) -> tuple[str, ...]: ...

    async def members(self, name: str) -> list[str]:
        """Usernames in guild ``name``."""

    async def count_members(self, key: str, delta: int) -> None: ...

    async def set_owner(self, key: str, *, old: str, new: str) -> bool:
        """Owner ``old`` → ``new`` if ``old`` still owns it; True when this call did it."""

    async def owner_of(self, key: str) -> str | None: ...

    async def add_request(self, request: JoinRequest, *, guild_key: str, user_key: str) -> bool:
        """True when added; False when that request is already pending."""

    async def take_request(self, guild_key: str, user_key: str) -> JoinRequest | None:
        """Remove and return a pending request (exactly one caller gets it)."""

    async def requests(self, guild_key: str) -> list[JoinRequest]: ...

    async def has_request(self, guild_key: str, user_key: str) -> bool: ...

    async def add_chat(
        self, guild_key: str, sender: str, text: str, *, at_ms: int, keep: int
    ) -> ChatMessage: ...

    async def chat(self, guild_key: str, *, limit: int) -> list[ChatMessage]:
        """The last ``limit`` lines, oldest first."""


def _request_id(guild_key: str, user_key: str) -> str:
    return f"{guild_key}/{user_key}"


class MongoGuilds:
    def __init__(self, database: AsyncDatabase[Doc]) -> None:
        self._guilds = database["guilds"]
        self._users = database["users"]
        self._requests = database["guild_requests"]
        self._chat = database["guild_chat"]

    @guarded
    async def ensure_indexes(self) -> None:
        await self._guilds.create_index([("members", DESCENDING), ("name", ASCENDING)])
        await self._users.create_index([("groups", ASCENDING)])
        await self._requests.create_index([("guild", ASCENDING), ("created_ms", ASCENDING)])
        await self._chat.create_index([("guild", ASCENDING), ("seq", DESCENDING)])

    @guarded
    async def create(self, guild: Guild) -> None:
        await self._guilds.insert_one(
            {
                "_id": guild.key,
                "name": guild.name,
                "description": guild.description,
                "open": guild.open,
                "owner": guild.owner,
                "members": guild.members,
                "created_ms": guild.created_ms,
                "chat_seq": 0,
            }
        )

    @guarded
    async def get(self, key: str) -> Guild | None:
        doc = await self._guilds.find_one({"_id": key})
        return Guild.from_doc(doc) if doc else None

    @guarded
    async def listing(self, *, limit: int) -> list[Guild]:
        cursor = self._guilds.find({}).sort([("members", DESCENDING), ("name", ASCENDING)])
        return [Guild.from_doc(d) async for d in cursor.limit(limit)]

    @guarded
    async def delete(self, key: str) -> bool:
        result = await self._guilds.delete_one({"_id": key})
        await self._requests.delete_many({"guild": key})
        await self._chat.delete_many({"guild": key})
        return result.deleted_count == 1

    @guarded
    async def add_member(self, user_key: str, name: str, *, max_guilds: int) -> bool:
        # "groups.<max-1>" absent: fewer than max_guilds groups (checked in the same write).
        result = await self._users.update_one(
            {"_id": user_key, f"groups.{max_guilds - 1}": {"$exists": False}},
            {"$addToSet": {"groups": name}},
        )
        return result.modified_count == 1

    @guarded
    async def remove_member(self, user_key: str, name: str) -> bool:
        result = await self._users.update_one({"_id": user_key}, {"$pull": {"groups": name}})
        return result.modified_count == 1

    @guarded
    async def is_member(self, user_key: str, name: str) -> bool:
        doc = await self._users.find_one({"_id": user_key}, {"groups": 1})
        return doc is not None and name in doc.get("groups", ())

    @guarded
    async def groups_of(self, user_key: str) -> tuple[str, ...]:
        doc = await self._users.find_one({"_id": user_key}, {"groups": 1})
        return tuple(doc.get("groups", ())) if doc else ()

    @guarded
    async def members(self, name: str) -> list[str]:
        # "$all", not plain equality: nx-27017 misses array elements by equality once
        # the field is indexed; both servers answer "$all" alike, from the multikey index.
        cursor = self._users.find({"groups": {"$all": [name]}}, {"username": 1})
        return [d["username"] async for d in cursor]

    @guarded
    async def count_members(self, key: str, delta: int) -> None:
        await self._guilds.update_one({"_id": key}, {"$inc": {"members": delta}})

    @guarded
    async def set_owner(self, key: str, *, old: str, new: str) -> bool:
        result = await self._guilds.update_one({"_id": key, "owner": old}, {"$set": {"owner": new}})
        return result.modified_count == 1

    @guarded
    async def owner_of(self, key: str) -> str | None:
        doc = await self._guilds.find_one({"_id": key}, {"owner": 1})
        return str(doc["owner"]) if doc else None

    @guarded
    async def add_request(self, request: JoinRequest, *, guild_key: str, user_key: str) -> bool:
        try:
            await self._requests.insert_one(
                {
                    "_id": _request_id(guild_key, user_key),
                    "guild": guild_key,
                    "username": request.username,
                    "created_ms": request.created_ms,
                }
            )
        except DuplicateKeyError:
            return False
        return True

    @guarded
    async def take_request(self, guild_key: str, user_key: str) -> JoinRequest | None:
        doc = await self._requests.find_one_and_delete({"_id": _request_id(guild_key, user_key)})
        return _join_request(doc) if doc else None

    @guarded
    async def requests(self, guild_key: str) -> list[JoinRequest]:
        cursor = self._requests.find({"guild": guild_key}).sort("created_ms", ASCENDING)
        return [_join_request(d) async for d in cursor.limit(200)]

    @guarded
    async def has_request(self, guild_key: str, user_key: str) -> bool:
        return await self._requests.find_one({"_id": _request_id(guild_key, user_key)}) is not None

    @guarded
    async def add_chat(
        self, guild_key: str, sender: str, text: str, *, at_ms: int, keep: int
    ) -> ChatMessage:
        counter = await self._guilds.find_one_and_update(
            {"_id": guild_key},
            {"$inc": {"chat_seq": 1}},
            projection={"chat_seq": 1},
            return_document=ReturnDocument.AFTER,
        )
        if counter is None:
            raise LookupError(guild_key)
        seq = int(counter["chat_seq"])
        await self._chat.insert_one(
            {
                "_id": f"{guild_key}/{seq:012d}",
                "guild": guild_key,
                "seq": seq,
                "from": sender,
                "text": text,
                "at_ms": at_ms,
            }
        )
        if seq > keep and seq % 10 == 0:  # trim now and then, not on every line
            await self._chat.delete_many({"guild": guild_key, "seq": {"$lte": seq - keep}})
        return ChatMessage(seq, sender, text, at_ms)

    @guarded
    async def chat(self, guild_key: str, *, limit: int) -> list[ChatMessage]:
        cursor = self._chat.find({"guild": guild_key}).sort("seq", DESCENDING).limit(limit)
        lines = [ChatMessage(d["seq"], d["from"], d["text"], d["at_ms"]) async for d in cursor]
        lines.reverse()
        return lines


def _join_request(doc: Doc) -> JoinRequest:
    return JoinRequest(
        guild=doc["guild"], username=doc["username"], created_ms=int(doc["created_ms"])
    )
