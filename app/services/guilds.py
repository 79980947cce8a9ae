"""Guild use cases: create, join or request, accept/decline, leave, remove, hand over, chat.

A guild is a ws4redis group: its members have its name in their ``groups``, so
``/ws/<facility>?subscribe-group`` reaches every guild of theirs on
``{P}group:<guild>:<facility>``, and ws4redis' ``RedisPublisher(groups=[...])``
reaches them from any process. Membership changes are single-document writes
(see :mod:`app.storage.guilds`); an ownership hand-over racing with the new
owner's leaving (or removal) is settled by both sides re-reading what the other
writes after their own write and undoing on a clash, so a guild is never owned by
a non-member. Events go out on ``group:<guild>:guild`` (members) and
``user:<name>:guild`` (the owner's requests, the requester's answer).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from app.errors import Conflict, Forbidden, Invalid, NotFound, RateLimited
from app.presence import Presence
from app.pubsub import PubSub
from app.ratelimit import RateLimiter
from app.services.play import clean_chat
from app.storage.guilds import ChatMessage, Guild, GuildRepo, JoinRequest

__all__ = ["GUILD_FACILITY", "GuildLimits", "Guilds", "normalize_guild_name"]

log = logging.getLogger("playhouse.guilds")

GUILD_FACILITY = "guild"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{2,31}")
MAX_DESCRIPTION = 280


def normalize_guild_name(raw: object) -> str:
    """A guild name as given (trimmed), or Invalid: 3-32 letters, digits, ``_``, ``-``.

    The name is part of channel names (``group:<name>:<facility>``), hence the alphabet.
    """
    if not isinstance(raw, str) or not raw.strip():
        raise Invalid("name", "a guild name is required")
    name = raw.strip()
    if not _NAME.fullmatch(name):
        raise Invalid(
            "name", "a guild name is 3-32 letters, digits, '_' or '-', starting with a letter"
        )
    return name


def _description(raw: object) -> str:
    if raw is None:
        return ""
    if not isinstance(raw, str):
        raise Invalid("description", "description must be text")
    text = " ".join("".join(ch for ch in raw if ch.isprintable() or ch.isspace()).split())
    if len(text) > MAX_DESCRIPTION:
        raise Invalid("description", f"description is at most {MAX_DESCRIPTION} characters")
    return text


@dataclass
class GuildLimits:
    """Bounds: guilds per user, chat length, history kept, chat rate (per window of s)."""

    max_guilds: int = 20
    chat_max_chars: int = 500
    chat_history: int = 100
    chat_per_window: int = 20
    chat_window: int = 10


def _guild_json(guild: Guild) -> dict[str, Any]:
    return {
        "name": guild.name,
        "description": guild.description,
        "open": guild.open,
        "owner": guild.owner,
        "members": guild.members,
        "url": f"/guilds/{guild.name}",
    }


def _chat_json(guild: str, line: ChatMessage) -> dict[str, Any]:
    return {
        "type": "guild_chat",
        "guild": guild,
        "seq": line.seq,
        "from": line.sender,
        "text": line.text,
        "at": line.at_ms,
    }


class Guilds:
    """The guild use cases over a :class:`GuildRepo` and :class:`PubSub`. No HTTP."""

    def __init__(
        self,
        repo: GuildRepo,
        pubsub: PubSub,
        presence: Presence,
        limiter: RateLimiter,
        *,
        find_user: Callable[[str], Awaitable[str | None]],
        regroup: Callable[[str], Awaitable[None]],
        limits: GuildLimits | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._repo = repo
        self._pubsub = pubsub
        self._presence = presence
        self._limiter = limiter
        self._find_user = find_user
        self._regroup = regroup
        self.limits = limits or GuildLimits()
        self._clock = clock

    # -- reading -------------------------------------------------------------------------

    async def listing(self, viewer: str) -> dict[str, Any]:
        """Every guild (biggest first, up to 200) and which of them ``viewer`` is in."""
        mine = set(await self._repo.groups_of(viewer.casefold()))
        guilds = await self._repo.listing(limit=200)
        return {
            "guilds": [{**_guild_json(g), "member": g.name in mine} for g in guilds],
            "mine": sorted(mine, key=str.casefold),
        }

    async def view(self, name: str, viewer: str) -> dict[str, Any]:
        """The guild page's data: members with live status, requests (owner), my standing."""
        guild = await self._guild(name)
        members = await self._repo.members(guild.name)
        online = await self._presence.online()
        member = viewer in members
        owner = guild.owner == viewer
        pending = not member and await self._repo.has_request(guild.key, viewer.casefold())
        requests = await self._repo.requests(guild.key) if owner else []
        return {
            "guild": _guild_json(guild),
            "members": [
                {
                    "username": m,
                    "role": "owner" if m == guild.owner else "member",
                    "status": online.get(m, "offline"),
                }
                for m in sorted(members, key=lambda m: (m != guild.owner, m.casefold()))
            ],
            "requests": [{"username": r.username, "at": r.created_ms} for r in requests],
            "me": {"member": member, "owner": owner, "pending": pending},
        }

    async def groups_of(self, user: str) -> list[str]:
        """The guilds ``user`` belongs to, by name."""
        return sorted(await self._repo.groups_of(user.casefold()), key=str.casefold)

    async def members(self, name: str) -> list[str]:
        """Usernames of guild ``name`` (lobby filter)."""
        guild = await self._guild(name)
        return await self._repo.members(guild.name)

    async def chat_history(self, name: str, viewer: str) -> dict[str, Any]:
        """The last messages (members only), oldest first."""
        guild = await self._member_guild(name, viewer)
        lines = await self._repo.chat(guild.key, limit=self.limits.chat_history)
        return {"guild": guild.name, "messages": [_chat_json(guild.name, x) for x in lines]}

    # -- membership ----------------------------------------------------------------------

    async def create(
        self, owner: str, name: object, description: object, *, open_: object = True
    ) -> dict[str, Any]:
        """Found a guild owned (and joined) by ``owner``.

        Raises:
            Invalid: bad name or description.
            Conflict: ``guild_taken``, or ``too_many_guilds``.
        """
        canonical = normalize_guild_name(name)
        text = _description(description)
        if not isinstance(open_, bool):
            raise Invalid("open", "open must be true or false")
        if len(await self._repo.groups_of(owner.casefold())) >= self.limits.max_guilds:
            raise self._too_many()
        guild = Guild(
            key=canonical.casefold(),
            name=canonical,
            description=text,
            open=open_,
            owner=owner,
            members=1,
            created_ms=self._now_ms(),
        )
        try:
            await self._repo.create(guild)
        except Conflict:
            raise Conflict(f"the name {canonical!r} is taken", code="guild_taken") from None
        if not await self._repo.add_member(
            owner.casefold(), canonical, max_guilds=self.limits.max_guilds
        ):
            await self._repo.delete(guild.key)
            raise self._too_many()
        await self._regroup(owner)
        return _guild_json(guild)

    async def join(self, name: str, user: str) -> dict[str, Any]:
        """Join an open guild, or ask to join a closed one (the owner is told at once).

        Returns ``{"state": "member" | "pending"}``.
        """
        guild = await self._guild(name)
        user_key = user.casefold()
        if await self._repo.is_member(user_key, guild.name):
            raise Conflict(f"you are already in {guild.name}", code="already_member")
        if not guild.open:
            request = JoinRequest(guild.key, user, self._now_ms())
            if await self._repo.add_request(request, guild_key=guild.key, user_key=user_key):
                await self._tell_users(
                    [guild.owner], {"type": "guild_request", "guild": guild.name, "username": user}
                )
            return {"state": "pending", "guild": guild.name}
        await self._admit(guild, user)
        return {"state": "member", "guild": guild.name}

    async def answer(
        self, name: str, owner: str, requester: str, *, accept: bool
    ) -> dict[str, Any]:
        """The owner accepts or declines a pending request; exactly one answer wins.

        Raises:
            Forbidden: ``not_owner``.
            Conflict: ``no_request`` (answered already, withdrawn, or never made).
        """
        guild = await self._owned_guild(name, owner)
        request = await self._repo.take_request(guild.key, requester.casefold())
        if request is None:
            raise Conflict(f"{requester} has no pending request", code="no_request")
        if accept:
            await self._admit(guild, request.username)
        await self._tell_users(
            [request.username],
            {"type": "guild_answer", "guild": guild.name, "accepted": accept},
        )
        return {"username": request.username, "accepted": accept}

    async def leave(self, name: str, user: str) -> dict[str, Any]:
        """Leave (or withdraw a pending request). The owner hands over first, unless
        they are the last member: then the guild is dissolved.

        Raises:
            Conflict: ``owner_must_hand_over``, ``not_member``.
        """
        guild = await self._guild(name)
        user_key = user.casefold()
        if guild.owner == user:
            members = await self._repo.members(guild.name)
            if [m for m in members if m != user]:
                raise Conflict("hand the guild over to a member first", code="owner_must_hand_over")
            await self._dissolve(guild)
            return {"left": guild.name, "dissolved": True}
        if not await self._repo.remove_member(user_key, guild.name):
            if await self._repo.take_request(guild.key, user_key) is not None:
                return {"left": guild.name, "withdrawn": True}
            raise Conflict(f"you are not in {guild.name}", code="not_member")
        if await self._repo.owner_of(guild.key) == user:  # handed to us meanwhile: undo
            await self._repo.add_member(user_key, guild.name, max_guilds=self.limits.max_guilds)
            raise Conflict("you were just made the owner; hand over first", code="owner_changed")
        await self._left(guild, user, "left")
        return {"left": guild.name}

    async def remove(self, name: str, owner: str, member: str) -> dict[str, Any]:
        """The owner removes a member.

        Raises:
            Forbidden: ``not_owner``. Conflict: ``not_member``, ``owner_changed``.
        """
        guild = await self._owned_guild(name, owner)
        target = await self._find_user(member) or member
        if target == owner:
            raise Conflict("the owner cannot remove themselves; leave instead", code="is_owner")
        if not await self._repo.remove_member(target.casefold(), guild.name):
            raise Conflict(f"{target} is not in {guild.name}", code="not_member")
        if await self._repo.owner_of(guild.key) == target:  # handed to them meanwhile: undo
            await self._repo.add_member(
                target.casefold(), guild.name, max_guilds=self.limits.max_guilds
            )
            raise Conflict(f"{target} now owns {guild.name}", code="owner_changed")
        await self._left(guild, target, "removed")
        return {"removed": target}

    async def hand_over(self, name: str, owner: str, new_owner: object) -> dict[str, Any]:
        """Make another member the owner.

        Raises:
            Forbidden: ``not_owner``. Conflict: ``not_member``, ``owner_changed``.
        """
        if not isinstance(new_owner, str) or not new_owner.strip():
            raise Invalid("username", "the new owner's name is required")
        guild = await self._owned_guild(name, owner)
        target = await self._find_user(new_owner.strip()) or new_owner.strip()
        if target == owner:
            raise Conflict("you already own it", code="is_owner")
        if not await self._repo.is_member(target.casefold(), guild.name):
            raise Conflict(f"{target} is not in {guild.name}", code="not_member")
        if not await self._repo.set_owner(guild.key, old=owner, new=target):
            raise Conflict("the guild changed hands meanwhile", code="owner_changed")
        if not await self._repo.is_member(target.casefold(), guild.name):  # left meanwhile
            await self._repo.set_owner(guild.key, old=target, new=owner)
            raise Conflict(f"{target} left {guild.name}", code="not_member")
        await self._tell_guild(guild.name, {"type": "guild_owner", "owner": target})
        return {"owner": target}

    # -- chat ----------------------------------------------------------------------------

    async def chat(self, name: str, sender: str, text: object) -> dict[str, Any]:
        """Post to the guild chat (members only, rate-limited) and fan it out."""
        guild = await self._member_guild(name, sender)
        clean = clean_chat(text, self.limits.chat_max_chars)
        retry = await self._limiter.hit(
            f"guild-chat:{sender.casefold()}",
            limit=self.limits.chat_per_window,
            window=self.limits.chat_window,
        )
        if retry:
            raise RateLimited(f"slow down: try again in {retry} s", retry_after=retry)
        line = await self._repo.add_chat(
            guild.key, sender, clean, at_ms=self._now_ms(), keep=self.limits.chat_history
        )
        message = _chat_json(guild.name, line)
        await self._publish_guild(guild.name, message)
        return message

    # -- internals -----------------------------------------------------------------------

    async def _admit(self, guild: Guild, user: str) -> None:
        user_key = user.casefold()
        if not await self._repo.add_member(user_key, guild.name, max_guilds=self.limits.max_guilds):
            if await self._repo.is_member(user_key, guild.name):
                raise Conflict(f"{user} is already in {guild.name}", code="already_member")
            raise self._too_many()
        if await self._repo.get(guild.key) is None:  # dissolved meanwhile: undo
            await self._repo.remove_member(user_key, guild.name)
            raise NotFound(f"no guild {guild.name!r}", code="no_guild")
        await self._repo.count_members(guild.key, +1)
        await self._regroup(user)
        await self._tell_guild(
            guild.name, {"type": "guild_member", "username": user, "change": "joined"}
        )

    async def _left(self, guild: Guild, user: str, change: str) -> None:
        await self._repo.count_members(guild.key, -1)
        await self._regroup(user)
        message = {"type": "guild_member", "username": user, "change": change}
        await self._tell_guild(guild.name, message)
        await self._tell_users([user], {**message, "guild": guild.name})

    async def _dissolve(self, guild: Guild) -> None:
        await self._repo.delete(guild.key)
        for member in await self._repo.members(guild.name):  # incl. anyone admitted meanwhile
            await self._repo.remove_member(member.casefold(), guild.name)
            await self._regroup(member)

    async def _guild(self, name: str) -> Guild:
        guild = await self._repo.get(name.strip().casefold()) if name.strip() else None
        if guild is None:
            raise NotFound(f"no guild {name[:40]!r}", code="no_guild")
        return guild

    async def _owned_guild(self, name: str, owner: str) -> Guild:
        guild = await self._guild(name)
        if guild.owner != owner:
            raise Forbidden(f"only the owner of {guild.name} may do that", code="not_owner")
        return guild

    async def _member_guild(self, name: str, user: str) -> Guild:
        guild = await self._guild(name)
        if not await self._repo.is_member(user.casefold(), guild.name):
            raise Forbidden(f"only members of {guild.name} may do that", code="not_member")
        return guild

    def _too_many(self) -> Conflict:
        return Conflict(
            f"a player can be in at most {self.limits.max_guilds} guilds", code="too_many_guilds"
        )

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    async def _tell_guild(self, guild: str, message: dict[str, Any]) -> None:
        await self._publish_guild(guild, {**message, "guild": guild})

    async def _publish_guild(self, guild: str, message: dict[str, Any]) -> None:
        try:
            publisher = self._pubsub.publisher(GUILD_FACILITY, groups=[guild])
            await publisher.publish(orjson.dumps(message), expire=0)
        except Exception:
            log.exception("guild %s: %s not sent", guild, message.get("type"))

    async def _tell_users(self, users: list[str], message: dict[str, Any]) -> None:
        try:
            publisher = self._pubsub.publisher(GUILD_FACILITY, users=users)
            await publisher.publish(orjson.dumps(message), expire=0)
        except Exception:
            log.exception("guild event %s not sent to %s", message.get("type"), users)
