"""Lobby API: ``POST /api/challenges`` and its accept, decline and cancel."""

from __future__ import annotations

from typing import Any

from app.errors import Invalid
from app.games.registry import catalogue
from app.handlers.session import ApiHandler
from app.services.play import live_game

__all__ = ["LIVE_GAMES", "ChallengeActionApi", "ChallengesApi", "LobbyApi"]

LIVE_GAMES = 50
"""Most live games ``GET /api/lobby`` lists (newest first)."""


def _text(body: dict[str, Any], field: str) -> str:
    value = body.get(field)
    if not isinstance(value, str) or not value.strip():
        raise Invalid(field, f"{field} is required")
    return value.strip()


class LobbyApi(ApiHandler):
    """``GET /api/lobby?guild=``: who is online (only that guild's members, when given), the
    catalogue, my open challenges, my current game, and the games being played now (to watch)."""

    async def get(self) -> None:
        me = self.viewer().username
        online = await self.web.presence.online()
        guild = self.get_query_argument("guild", "").strip()
        members = await self.web.guilds.members(guild) if guild else None
        if members is not None:
            online = {name: status for name, status in online.items() if name in members}
        players = [{"username": name, "status": online[name]} for name in sorted(online)]
        challenges = await self.web.lobby.pending(me)
        current = await self.web.play.current_game(me)
        live = [live_game(game) for game in await self.web.games.live(limit=LIVE_GAMES)]
        self.write_json(
            {
                "me": me,
                "online": players,
                "games": catalogue(),
                "challenges": challenges,
                "current_game": current,
                "live_games": live,
                "guild": guild or None,
                "guild_members": members,
                "my_guilds": await self.web.guilds.groups_of(me),
            }
        )


class ChallengesApi(ApiHandler):
    """``POST /api/challenges {to, game}`` → 201 with the challenge."""

    async def post(self) -> None:
        me = self.viewer().username
        body = self.json_body()
        challenge = await self.web.lobby.challenge(me, _text(body, "to"), _text(body, "game"))
        self.write_json(challenge, status=201)


class ChallengeActionApi(ApiHandler):
    """``POST /api/challenges/<id>/(accept|decline|cancel)``."""

    async def post(self, challenge_id: str, action: str) -> None:
        me = self.viewer().username
        lobby = self.web.lobby
        act = {"accept": lobby.accept, "decline": lobby.decline, "cancel": lobby.cancel}[action]
        self.write_json(await act(challenge_id, me))
