"""Lobby use cases: challenge, accept (start the game), decline, cancel, expire — and tell both.

Every new challenge and every outcome goes to both players' ``user:<name>:lobby``
channel; an accept starts the game idempotently (its id is derived from the
challenge) and sends ``game_started`` to both. Notifications are best effort:
a stored outcome stands even when the broker is down.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import orjson

from app.pubsub import PubSub
from app.services.challenges import Challenges
from app.services.play import Play
from app.storage.challenges import Challenge

__all__ = ["LOBBY_FACILITY", "Lobby", "challenge_json"]

log = logging.getLogger("playhouse.lobby")

LOBBY_FACILITY = "lobby"


def _iso(moment: datetime) -> str:
    # UTC to the millisecond, as stored: a challenge reads the same when it is
    # created and when it is listed later from MongoDB.
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def challenge_json(challenge: Challenge) -> dict[str, Any]:
    """The wire form of a challenge (API answers and lobby socket messages)."""
    return {
        "id": challenge.id,
        "from": challenge.from_user,
        "to": challenge.to_user,
        "game": challenge.game,
        "status": challenge.status.value,
        "created_at": _iso(challenge.created_at),
        "expires_at": _iso(challenge.expires_at),
        "game_id": challenge.game_id,
    }


class Lobby:
    """Challenges plus game creation plus the lobby notifications."""

    def __init__(
        self,
        challenges: Challenges,
        play: Play,
        pubsub: PubSub,
        *,
        find_user: Callable[[str], Awaitable[str | None]],
    ) -> None:
        self._challenges = challenges
        self._play = play
        self._pubsub = pubsub
        self._find_user = find_user

    async def challenge(self, me: str, to: str, game: str) -> dict[str, Any]:
        """Create a challenge (``to`` in any letter case) and tell both players."""
        to = await self._find_user(to) or to
        challenge = await self._challenges.create(me, to, game)
        body = challenge_json(challenge)
        await self._notify(challenge, {"type": "challenge", **body})
        return body

    async def accept(self, challenge_id: str, by: str) -> dict[str, Any]:
        """Accept, start the game under the derived id, announce ``game_started``.

        Repeating it (double click, second tab, another instance) returns the
        same game and creates nothing new.
        """
        challenge = await self._challenges.accept(challenge_id, by)
        game_id = challenge.game_id
        assert game_id is not None, "an accepted challenge always has a game id"
        players = [challenge.from_user, challenge.to_user]
        await self._play.create(game_id, challenge.game, players, int(game_id[:8], 16))
        await self._notify(challenge, {"type": "challenge_update", **challenge_json(challenge)})
        started = {"type": "game_started", "game_id": game_id, "url": f"/game/{game_id}"}
        await self._notify(challenge, started)
        return started

    async def decline(self, challenge_id: str, by: str) -> dict[str, Any]:
        return await self._settle(await self._challenges.decline(challenge_id, by))

    async def cancel(self, challenge_id: str, by: str) -> dict[str, Any]:
        return await self._settle(await self._challenges.cancel(challenge_id, by))

    async def pending(self, user: str) -> dict[str, list[dict[str, Any]]]:
        """``{"incoming": [...], "outgoing": [...]}``: ``user``'s open challenges, newest first."""
        found = await self._challenges.pending_for(user)
        return {
            "incoming": [challenge_json(c) for c in found.incoming],
            "outgoing": [challenge_json(c) for c in found.outgoing],
        }

    async def expire_due(self, now: datetime | None = None, *, everywhere: bool = True) -> int:
        """Expire pending challenges past their deadline and tell both players; for a sweeper.

        Safe on every instance at once: only the instance whose conditional write
        expired a challenge gets it back, so each expiry is announced once.

        Returns:
            How many challenges this call expired.
        """
        expired = await self._challenges.expire_due(now, everywhere=everywhere)
        for challenge in expired:
            await self._notify(challenge, {"type": "challenge_update", **challenge_json(challenge)})
        return len(expired)

    async def _settle(self, challenge: Challenge) -> dict[str, Any]:
        body = challenge_json(challenge)
        await self._notify(challenge, {"type": "challenge_update", **body})
        return body

    async def _notify(self, challenge: Challenge, message: dict[str, Any]) -> None:
        users = [challenge.from_user, challenge.to_user]
        try:
            # expire=0: a lobby opened later must not replay a stale challenge or game.
            await self._pubsub.publisher(LOBBY_FACILITY, users=users).publish(
                orjson.dumps(message), expire=0
            )
        except Exception:
            log.exception("challenge %s: %s not published", challenge.id, message["type"])
