"""Guilds over HTTP: the JSON API and the two pages (the list and one guild).

Every endpoint needs a signed-in user; state changes are POSTs with the XSRF
token like the rest of the API. The handlers only parse and delegate to
:class:`~app.services.guilds.Guilds`.
"""

from __future__ import annotations

from app.errors import NotFound
from app.handlers.session import ApiHandler, PageHandler

__all__ = [
    "GUILD_NAME",
    "GuildActionApi",
    "GuildApi",
    "GuildChatApi",
    "GuildMemberApi",
    "GuildPage",
    "GuildsApi",
    "GuildsPage",
]

GUILD_NAME = r"[A-Za-z0-9_-]{1,64}"


class GuildsApi(ApiHandler):
    """``GET /api/guilds`` → every guild and mine; ``POST {name, description, open}`` → 201."""

    async def get(self) -> None:
        self.write_json(await self.web.guilds.listing(self.viewer().username))

    async def post(self) -> None:
        me = self.viewer().username
        body = self.json_body()
        guild = await self.web.guilds.create(
            me, body.get("name"), body.get("description"), open_=body.get("open", True)
        )
        self.write_json(guild, status=201)


class GuildApi(ApiHandler):
    """``GET /api/guilds/<name>`` → the guild, its members with status, my standing."""

    async def get(self, name: str) -> None:
        self.write_json(await self.web.guilds.view(name, self.viewer().username))


class GuildActionApi(ApiHandler):
    """``POST /api/guilds/<name>/(join|leave)``, and ``/owner {username}`` (hand over)."""

    async def post(self, name: str, action: str) -> None:
        me = self.viewer().username
        guilds = self.web.guilds
        if action == "join":
            result = await guilds.join(name, me)
        elif action == "leave":
            result = await guilds.leave(name, me)
        else:
            result = await guilds.hand_over(name, me, self.json_body().get("username"))
        self.write_json(result)


class GuildMemberApi(ApiHandler):
    """Owner actions: ``POST /api/guilds/<name>/requests/<user>/(accept|decline)``
    and ``/members/<user>/remove``."""

    async def post(self, name: str, kind: str, user: str, action: str) -> None:
        me = self.viewer().username
        if kind == "members" and action == "remove":
            self.write_json(await self.web.guilds.remove(name, me, user))
        elif kind == "requests" and action in ("accept", "decline"):
            self.write_json(await self.web.guilds.answer(name, me, user, accept=action == "accept"))
        else:
            raise NotFound(f"no action {action!r} on {kind}", code="no_route")


class GuildChatApi(ApiHandler):
    """``GET /api/guilds/<name>/chat`` → the last 100 lines; ``POST {text}`` → the line."""

    async def get(self, name: str) -> None:
        self.write_json(await self.web.guilds.chat_history(name, self.viewer().username))

    async def post(self, name: str) -> None:
        me = self.viewer().username
        self.write_json(
            await self.web.guilds.chat(name, me, self.json_body().get("text")), status=201
        )


class GuildsPage(PageHandler):
    """``/guilds``: every guild, mine marked, and a form to found one."""

    async def get(self) -> None:
        me = self.viewer().username
        self.render("guilds.html", me=me, listing=await self.web.guilds.listing(me))


class GuildPage(PageHandler):
    """``/guilds/<name>``: members with live status, requests, chat, challenges."""

    async def get(self, name: str) -> None:
        me = self.viewer().username
        view = await self.web.guilds.view(name, me)
        self.render("guild.html", me=me, guild=view["guild"], view=view)
